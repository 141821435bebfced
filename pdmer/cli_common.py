"""What the ``pdmer`` command and its subcommands in other packages (``export``, ``profile``, ``train``) and
``pdmer-stream`` share. It lives below all of them, so that they import it and never each other: ``pdmer.cli``
registers those subcommands, and a subcommand importing ``pdmer.cli`` back would be an import cycle."""

from __future__ import annotations

import functools
import sys

import click

from pdmer.errors import PdmerError

# Listed here, not imported, to keep torch out of `pdmer --help`; tests check it matches the real list.
SCALES = ("[-1,1]", "[0,1]", "[1,9]")  # pdmer.data.curves.SCALES


def user_errors(command, program: str = "pdmer"):
    """Report a PdmerError as one line on stderr with exit code 2, instead of a traceback. ``program`` starts the line:
    the name the user typed (pdmer-stream's errors say pdmer-stream)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except PdmerError as error:
            click.echo(f"{program}: error: {error}", err=True)
            sys.exit(2)

    return wrapper
