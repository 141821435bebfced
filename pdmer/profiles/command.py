"""``pdmer profile create|list|show|delete|export|import``."""

from __future__ import annotations

import json
import sys

import click

from pdmer.cli import SCALES
from pdmer.train.config import PARAMS


def errors(function):
    from pdmer.cli import user_errors

    return user_errors(function)


@click.group("profile")
def profile() -> None:
    """Listener profiles: the model adapted to one listener from one song and their V-A curve for it.

    Stored under $PDMER_HOME/profiles (default: the user data directory). The profile "default" is the base
    model itself. Workflow: pdmer predict SONG --csv mine.csv, edit the curve, pdmer profile create NAME."""


@profile.command("create")
@click.argument("name")
@click.option("--audio", required=True, type=click.Path(dir_okay=False), help="The support song.")
@click.option("--curve", required=True, type=click.Path(dir_okay=False),
              help="CSV time_s,valence,arousal: the listener's curve for the song (any time step).")
@click.option("--base", type=click.Path(dir_okay=False),
              help="The base model checkpoint (.safetensors; default: the embedded default model).")
@click.option("--scale", type=click.Choice(SCALES), default="[-1,1]", show_default=True,
              help="The scale the curve's values are on.")
@click.option("--steps", type=click.IntRange(min=0), help="Adaptation steps (default: as the base was meta-trained).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Adaptation learning rate (default: likewise).")
@click.option("--params", type=click.Choice(PARAMS),
              help="What adapts: all parameters, all but the front end, the last layer, or its bias alone (an offset) "
                   "(default: likewise).")
@click.option("--force", is_flag=True, help="Replace a profile of the same name.")
def create(name, audio, curve, base, scale, steps, lr, params, force) -> None:
    """Make profile NAME from one song (--audio) and the listener's curve for it (--curve)."""
    errors(_create)(name, audio, curve, base, scale, steps, lr, params, force)


def _create(name, audio, curve, base, scale, steps, lr, params, force) -> None:
    from pdmer.profiles.profile import create as create_profile
    from pdmer.profiles.store import check_name

    check_name(name, creating=True)  # before any slow work
    if base is None:
        from pdmer.defaults import default_checkpoint

        base = default_checkpoint()
    made = create_profile(name, audio, curve, base=base, steps=steps, lr=lr, params=params, scale=scale, force=force)
    click.echo(f"profile {name!r} created in {made.folder}")
    print_fit(made.info)


def print_fit(info: dict) -> None:
    before, after = info["fit"]["before"], info["fit"]["after"]
    click.echo(f"fit on the support song ({info['support']['steps']} steps), before -> after adaptation:")
    for key in before:
        click.echo(f"  {key:<14} {before[key]:+.3f} -> {after[key]:+.3f}")


@profile.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_command(as_json) -> None:
    """The stored profiles (and "default", the base model)."""
    errors(_list)(as_json)


def _list(as_json) -> None:
    from pdmer.profiles.profile import list_profiles

    profiles = list_profiles()
    if as_json:
        click.echo(json.dumps([p.info for p in profiles], indent=1))
        return
    click.echo("default      the base model, unadapted")
    for item in profiles:
        info = item.info
        click.echo(f"{item.name:<12} {info['created']}  song {info['support']['audio']}  "
                   f"base {info['base']['source']} ({info['base']['weights_sha256'][:12]})")


@profile.command("show")
@click.argument("name")
def show(name) -> None:
    """A profile's metadata and its fit on the support song before and after adaptation."""
    errors(_show)(name)


def _show(name) -> None:
    from pdmer.profiles.profile import load

    item = load(name)
    if item.folder is None:
        click.echo("default: the base model itself, unadapted")
        return
    click.echo(json.dumps({k: v for k, v in item.info.items() if k != "fit"}, indent=1))
    print_fit(item.info)


@profile.command("delete")
@click.argument("name")
def delete(name) -> None:
    """Delete profile NAME."""
    errors(_delete)(name)


def _delete(name) -> None:
    from pdmer.profiles.profile import delete as delete_profile

    delete_profile(name)
    click.echo(f"profile {name!r} deleted")


@profile.command("export")
@click.argument("name")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="A new folder.")
def export(name, output) -> None:
    """Copy profile NAME's files into a folder (to move it to another machine: pdmer profile import FOLDER)."""
    errors(_export)(name, output)


def _export(name, output) -> None:
    from pdmer.profiles.profile import export_profile

    click.echo(f"exported {name!r} to {export_profile(name, output)}")


@profile.command("import")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--name", help="Store it under this name (default: its own).")
@click.option("--force", is_flag=True, help="Replace a profile of the same name.")
def import_command(folder, name, force) -> None:
    """Store a profile exported with pdmer profile export."""
    errors(_import)(folder, name, force)


def _import(folder, name, force) -> None:
    from pdmer.profiles.profile import import_profile

    made = import_profile(folder, name=name, force=force)
    click.echo(f"imported profile {made.name!r}", file=sys.stdout)
