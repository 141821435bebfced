"""One exception family for everything pdmer reports to a user.

Catch ``PdmerError`` to handle any of them; the CLI turns them into a one-line message and a non-zero exit code
instead of a traceback. Messages name the bad value and, where there is one, the fix.
"""


class PdmerError(Exception):
    """Base class of every error pdmer raises on purpose."""


class InputError(PdmerError, ValueError):
    """A tensor, waveform or argument has the wrong shape, size or value."""


class CheckpointError(PdmerError):
    """A checkpoint is missing, unreadable, or does not hold what the model needs."""
