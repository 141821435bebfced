"""What every dataset loader yields: V-A curves at 2 Hz, per listener (or averaged), tied to a song's audio.

Conventions (the same for DEAM, PMEmo, users' own data and the synthetic benchmark):
- values are (valence, arousal) in [-1, 1], float32, shape [T, 2];
- label i is at ``start_s + 0.5 i`` seconds of the song's audio and describes the slice
  [start_s + 0.5 i, start_s + 0.5 i + 0.5) (DEAM pairs ``sample_15000ms`` with the slice 15.0-15.5 s);
- ``start_s`` is on the 0.5 s grid, so label i is log-mel slice ``round(start_s / 0.5) + i`` of the audio.
Numpy only: loaders must not import torch (``pdmer --help`` stays fast).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pdmer.errors import InputError

STEP_SECONDS = 0.5  # one label per log-mel slice: pdmer.model.preprocess.MelConfig.slice_seconds
MEAN = "mean"  # the listener id of averaged (consensus) curves

# Annotation scales pdmer converts from, and the linear map of each onto [-1, 1].
SCALES = {"[-1,1]": (-1.0, 1.0), "[0,1]": (0.0, 1.0), "[1,9]": (1.0, 9.0)}


class DataWarning(UserWarning):
    """Something in a dataset is odd but usable (short curves, dropped flat curves): named, then carried on."""


def warn(message: str) -> None:
    warnings.warn(message, DataWarning, stacklevel=3)


def to_unit_scale(values: np.ndarray, scale: str, *, where: str = "") -> np.ndarray:
    """Map annotations on ``scale`` ("[-1,1]", "[0,1]", "[1,9]") linearly onto [-1, 1]; out-of-scale values are an error."""
    if scale not in SCALES:
        raise InputError(f"unknown annotation scale {scale!r}; choose one of {', '.join(SCALES)}")
    low, high = SCALES[scale]
    values = np.asarray(values, dtype=np.float64)
    slack = 1e-6 * (high - low)
    if values.size and (values.min() < low - slack or values.max() > high + slack):
        raise InputError(
            f"{where or 'annotations'}: values span [{values.min():.4g}, {values.max():.4g}], outside the declared "
            f"scale {scale}; declare the scale the annotations were made on (--scale / \"scale\" in dataset.json)"
        )
    return (2.0 * (values - low) / (high - low) - 1.0).astype(np.float32)


def on_grid(seconds: float, *, where: str = "") -> int:
    """The 0.5 s step index of ``seconds``, which must lie on the grid."""
    steps = round(seconds / STEP_SECONDS)
    if abs(steps * STEP_SECONDS - seconds) > 1e-6:
        raise InputError(f"{where or 'curve'}: start time {seconds} s is not a multiple of {STEP_SECONDS} s")
    return steps


@dataclass(frozen=True)
class Curve:
    """One listener's (or the averaged) V-A curve for one song."""

    song: str
    listener: str  # MEAN for averaged curves
    start_s: float
    va: np.ndarray  # [T, 2] (valence, arousal) in [-1, 1]
    std: np.ndarray | None = None  # [T, 2] spread over raters, where a dataset gives it
    source: str = ""  # the file (and line) it came from, for messages

    def __post_init__(self) -> None:
        where = self.source or f"song {self.song}, listener {self.listener}"
        va = np.asarray(self.va, dtype=np.float32)
        if va.ndim != 2 or va.shape[1] != 2 or len(va) == 0:
            raise InputError(f"{where}: a curve must be [T >= 1, 2] (valence, arousal), got shape {va.shape}")
        if not np.isfinite(va).all():
            step = int(np.argwhere(~np.isfinite(va))[0, 0])
            raise InputError(f"{where}: value at {self.start_s + STEP_SECONDS * step:.1f} s is NaN or infinite")
        on_grid(self.start_s, where=where)
        object.__setattr__(self, "va", va)

    @property
    def first_step(self) -> int:
        return round(self.start_s / STEP_SECONDS)

    @property
    def end_s(self) -> float:
        return self.start_s + STEP_SECONDS * len(self.va)

    @property
    def times(self) -> np.ndarray:
        return self.start_s + STEP_SECONDS * np.arange(len(self.va))

    def window(self, first: int, count: int | None = None) -> Curve:
        """Labels ``first .. first + count`` of this curve (e.g. the support frames of the authors' protocol)."""
        stop = len(self.va) if count is None else first + count
        if not 0 <= first < stop <= len(self.va):
            raise InputError(f"labels [{first}, {stop}) are outside the curve's {len(self.va)} labels")
        std = None if self.std is None else self.std[first:stop]
        return dataclasses.replace(
            self, start_s=self.start_s + STEP_SECONDS * first, va=self.va[first:stop], std=std
        )


# Song-level quadrants of Russell's circumplex as the signs of (valence, arousal): 4Q and EMOPIA label songs this way.
QUADRANT_SIGNS = {"Q1": (1, 1), "Q2": (-1, 1), "Q3": (-1, -1), "Q4": (1, -1)}


def quadrant_of(valence: float, arousal: float) -> str:
    """The quadrant of a (valence, arousal) point; 0 counts as positive."""
    return {(1, 1): "Q1", (-1, 1): "Q2", (-1, -1): "Q3", (1, -1): "Q4"}[(1 if valence >= 0 else -1,
                                                                         1 if arousal >= 0 else -1)]


@dataclass(frozen=True)
class Song:
    id: str
    audio: Path | None  # None: curves only (the audio is not at hand), or MIDI not rendered yet
    midi: Path | None = None  # a MIDI dataset's score: pdmer.data.render makes ``audio`` from it
    seconds: float | None = None  # the annotated duration: rendered audio is trimmed to it
    info: dict = field(default_factory=dict, compare=False, hash=False)  # the dataset's metadata (artist, ...)


@dataclass
class CurveSet:
    """Songs, their curves, and the dataset's named splits (e.g. the authors' DEAM train/test)."""

    name: str
    songs: dict[str, Song]
    curves: list[Curve]
    splits: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # split -> {"songs": [...], "listeners": [...]}
    quadrants: dict[str, str] = field(default_factory=dict)  # song -> "Q1".."Q4": song-level sign labels
    problems: list[str] = field(default_factory=list)  # what the loader found odd and how it handled it
    found: dict[str, int] = field(default_factory=dict)  # what the layout holds before anything is dropped

    def __post_init__(self) -> None:
        seen = {}
        for curve in self.curves:
            if curve.song not in self.songs:
                raise InputError(f"{curve.source or self.name}: curve for song {curve.song!r}, which the dataset lacks")
            key = (curve.song, curve.listener)
            if key in seen:
                raise InputError(
                    f"duplicate curve for song {curve.song!r}, listener {curve.listener!r}: "
                    f"{seen[key] or '?'} and {curve.source or '?'}"
                )
            seen[key] = curve.source
        for song, quadrant in self.quadrants.items():
            if song not in self.songs or quadrant not in QUADRANT_SIGNS:
                raise InputError(f"{self.name}: quadrant {quadrant!r} for song {song!r} (a quadrant needs a song of the dataset and a label Q1-Q4)")

    def __len__(self) -> int:
        return len(self.curves)

    def __iter__(self):
        """(audio path or None, curve) for every curve: the song's audio, its V-A at 2 Hz, its listener and song."""
        for curve in self.curves:
            yield self.songs[curve.song].audio, curve

    @property
    def listeners(self) -> list[str]:
        return sorted({c.listener for c in self.curves if c.listener != MEAN})

    def by_listener(self, *, min_songs: int = 1) -> dict[str, list[Curve]]:
        """Per-listener curves (averaged ones excluded) of listeners with at least ``min_songs`` songs: MAML tasks."""
        tasks: dict[str, list[Curve]] = defaultdict(list)
        for curve in self.curves:
            if curve.listener != MEAN:
                tasks[curve.listener].append(curve)
        return {who: curves for who, curves in sorted(tasks.items()) if len(curves) >= min_songs}

    def mean_curves(self) -> list[Curve]:
        """One averaged curve per song: the dataset's own where it has them, else the mean over its listeners
        (on the labels all of them cover), as DEAM's averaged files are the mean over raters."""
        explicit = {c.song: c for c in self.curves if c.listener == MEAN}
        per_song: dict[str, list[Curve]] = defaultdict(list)
        for curve in self.curves:
            if curve.listener != MEAN and curve.song not in explicit:
                per_song[curve.song].append(curve)
        for song, curves in per_song.items():
            start = max(c.first_step for c in curves)
            stop = min(c.first_step + len(c.va) for c in curves)
            if stop <= start:
                warn(f"song {song}: its listeners' curves share no time span; no averaged curve")
                continue
            stacked = np.stack([c.va[start - c.first_step : stop - c.first_step] for c in curves])
            explicit[song] = Curve(song, MEAN, start * STEP_SECONDS, stacked.mean(0), stacked.std(0),
                                   source=f"mean of {len(curves)} listeners")
        return [explicit[song] for song in sorted(explicit, key=song_order)]

    def select(self, *, songs=None, listeners=None, name: str | None = None) -> CurveSet:
        """The subset with only these songs and/or listeners (None: all); averaged curves follow their songs."""
        keep_songs = None if songs is None else set(map(str, songs))
        keep_listeners = None if listeners is None else set(map(str, listeners)) | {MEAN}
        curves = [
            c for c in self.curves
            if (keep_songs is None or c.song in keep_songs) and (keep_listeners is None or c.listener in keep_listeners)
        ]
        labelled = {c.song for c in curves} | (set(self.quadrants) if keep_listeners is None else set())
        used = labelled if keep_songs is None else keep_songs & set(self.songs)
        return CurveSet(name or self.name, {s: self.songs[s] for s in self.songs if s in used}, curves, self.splits,
                        {s: q for s, q in self.quadrants.items() if s in used}, self.problems, self.found)

    def replace_songs(self, songs: dict[str, Song]) -> CurveSet:
        """The same labels on other Song records (e.g. with rendered audio)."""
        return CurveSet(self.name, songs, self.curves, self.splits, self.quadrants, self.problems, self.found)

    def split(self, name: str) -> CurveSet:
        """The named split (its songs and, where it lists them, its listeners)."""
        if name not in self.splits:
            known = ", ".join(sorted(self.splits)) or "none"
            raise InputError(f"dataset {self.name!r} has no split {name!r} (it has: {known})")
        spec = self.splits[name]
        return self.select(songs=spec.get("songs"), listeners=spec.get("listeners"), name=f"{self.name}:{name}")

    def require_audio(self) -> None:
        """Every song must have readable audio: training and evaluation need it."""
        missing = [s for s in self.songs.values() if s.audio is None or not Path(s.audio).is_file()]
        if missing:
            shown = ", ".join(f"{s.id} ({s.audio or 'no audio file'})" for s in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise InputError(f"{self.name}: audio missing for {len(missing)} song(s): {shown}{more}")


def song_order(song_id: str):
    """Numeric ids in numeric order (2 < 10), then the rest alphabetically."""
    return (0, int(song_id), "") if song_id.isdigit() else (1, 0, song_id)


def read_split_file(path: Path, songs: dict[str, Song]) -> dict[str, dict[str, list[str]]]:
    """A ``split.json`` of song lists ({"train": [id, ...], "val": [...]}) as splits of the songs at hand."""
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read {path}: {error}") from None
    if not isinstance(document, dict) or not all(isinstance(v, list) for v in document.values()):
        raise InputError(f"{path} must map split names to lists of song ids, e.g. {{\"train\": [...], \"val\": [...]}}")
    return {name: {"songs": sorted(set(map(str, ids)) & set(songs))} for name, ids in document.items()}
