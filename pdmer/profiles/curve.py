"""A listener's own V-A curve for their support song: read from CSV, checked, resampled onto the 0.5 s grid.

Format: a header ``time_s,valence,arousal`` and one row per point, times increasing, at any step (the CSV of
``pdmer predict`` is one, ready to edit). ``scale`` names the scale the values were given on; they are mapped
onto [-1, 1]. The curve is linearly interpolated at the start of each whole 0.5 s slice it spans.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pdmer.data.curves import STEP_SECONDS, to_unit_scale
from pdmer.errors import InputError

COLUMNS = ("time_s", "valence", "arousal")
MIN_COVERAGE = 0.5  # the curve must span at least half of the song: one-shot adaptation needs a whole song
OVERHANG_SECONDS = 2.0  # times this far past the audio's end mean the curve belongs to another (longer) file


@dataclass(frozen=True)
class SupportCurve:
    first_step: int  # the 0.5 s step of the first label
    va: np.ndarray  # [T, 2] (valence, arousal) in [-1, 1], one row per step from first_step
    points: int  # rows in the file


def read_curve(path: str | Path, *, scale: str = "[-1,1]") -> tuple[np.ndarray, np.ndarray]:
    """(times [N], values [N, 2] on [-1, 1]) from a curve CSV, with errors that name the row and the fix."""
    path = Path(path)
    try:
        with open(path, newline="") as file:
            rows = list(csv.reader(file))
    except OSError as error:
        raise InputError(f"cannot read curve {path}: {error}") from None
    except UnicodeDecodeError:
        raise InputError(f"curve {path} is not a text CSV file") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows or tuple(cell.strip() for cell in rows[0]) != COLUMNS:
        raise InputError(f"curve {path} must start with the header {','.join(COLUMNS)} (the CSV of pdmer predict "
                         "is a valid starting point)")
    if len(rows) < 3:
        raise InputError(f"curve {path} has {len(rows) - 1} point(s); give the whole song's curve")
    values = np.empty((len(rows) - 1, 3))
    for index, row in enumerate(rows[1:], start=2):
        try:
            if len(row) != 3:
                raise ValueError(f"{len(row)} columns")
            values[index - 2] = [float(cell) for cell in row]
        except ValueError as error:
            raise InputError(f"{path} line {index}: not three numbers time_s,valence,arousal ({error})") from None
        if not np.isfinite(values[index - 2]).all():
            raise InputError(f"{path} line {index}: {','.join(row)} is not finite; every value must be a number")
    times = values[:, 0]
    backwards = np.flatnonzero(np.diff(times) <= 0)
    if backwards.size:
        line = int(backwards[0]) + 3
        raise InputError(f"{path} line {line}: time {times[backwards[0] + 1]} s does not come after "
                         f"{times[backwards[0]]} s; times must increase")
    if times[0] < 0:
        raise InputError(f"{path} line 2: negative time {times[0]} s")
    return times, to_unit_scale(values[:, 1:], scale, where=str(path))


def support_curve(path: str | Path, audio_seconds: float, *, scale: str = "[-1,1]") -> SupportCurve:
    """The curve on the song's 0.5 s grid: one label at the start of every whole slice the curve spans."""
    times, values = read_curve(path, scale=scale)
    if times[-1] > audio_seconds + OVERHANG_SECONDS:
        raise InputError(f"curve {path} runs to {times[-1]:.1f} s but the audio is {audio_seconds:.1f} s long: "
                         "is it the curve of another song?")
    slices = int(audio_seconds / STEP_SECONDS)
    first = int(np.ceil(times[0] / STEP_SECONDS - 1e-9))
    last = min(slices - 1, int(np.floor(times[-1] / STEP_SECONDS + 1e-9)))
    span = (last - first + 1) * STEP_SECONDS
    if last < first or span < MIN_COVERAGE * audio_seconds:
        raise InputError(f"curve {path} covers {max(span, 0):.1f} s of the {audio_seconds:.1f} s song; a profile "
                         f"needs the curve of at least {MIN_COVERAGE:.0%} of it")
    grid = np.arange(first, last + 1) * STEP_SECONDS
    va = np.stack([np.interp(grid, times, values[:, d]) for d in range(2)], axis=1).astype(np.float32)
    return SupportCurve(first, va, len(times))
