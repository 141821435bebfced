"""A listener's own V-A curve for their support song: read from CSV, checked, resampled onto the 0.5 s grid.

Format: a header ``time_s,valence,arousal`` and one row per point, times increasing, at any step (the CSV of
``pdmer predict`` is one, ready to edit), or as a spreadsheet saves it (:func:`pdmer.data.plain.read_rows`).
``scale`` names the scale the values were given on; they are mapped onto [-1, 1]. The curve is linearly
interpolated at the start of each whole 0.5 s slice it spans.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pdmer.data.curves import STEP_SECONDS, to_unit_scale
from pdmer.data.plain import read_points
from pdmer.errors import InputError

MIN_COVERAGE = 0.5  # the curve must span at least half of the song: one-shot adaptation needs a whole song
OVERHANG_SECONDS = 2.0  # times this far past the audio's end mean the curve belongs to another (longer) file


@dataclass(frozen=True)
class SupportCurve:
    first_step: int  # the 0.5 s step of the first label
    va: np.ndarray  # [T, 2] (valence, arousal) in [-1, 1], one row per step from first_step
    points: int  # rows in the file


def read_curve(path: str | Path, *, scale: str = "[-1,1]") -> tuple[np.ndarray, np.ndarray]:
    """(times [N], values [N, 2] on [-1, 1]) from a curve CSV, with errors that name the row and the fix. Read by
    the plain format's one reader, so a curve saved by a spreadsheet (BOM, ';', decimal comma) reads as well."""
    path = Path(path)
    points = read_points(path)
    if len(points) < 2:
        raise InputError(f"curve {path} has {len(points)} point(s); give the whole song's curve")
    lines = [point[0] for point in points]
    values = np.array([point[1:] for point in points])
    times = values[:, 0]
    backwards = np.flatnonzero(np.diff(times) <= 0)
    if backwards.size:
        at = int(backwards[0])
        raise InputError(f"{path}:{lines[at + 1]}: time {times[at + 1]} s does not come after {times[at]} s "
                         f"(line {lines[at]}); times must increase")
    if times[0] < 0:
        raise InputError(f"{path}:{lines[0]}: negative time {times[0]} s")
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
