"""DEAM (Aljanaki, Yang & Soleymani 2017) in its official layout, and the MediaEval 2013 "1000 songs" subset of it.

    <root>/annotations/ (or <root>/DEAM_Annotations/annotations/, the authors' layout)
      annotations averaged per song/dynamic (per second annotations)/{arousal,valence}.csv
          song_id,sample_15000ms,sample_15500ms,...   one row per song, rows padded with empty cells
      annotations per each rater/dynamic (per second annotations)/{arousal,valence}/<song_id>.csv
          one row per rater; the first column is WorkerId for songs with id > 1000 (anonymous raters otherwise)
    <root>/DEAM_audio/MEMD_audio/<song_id>.mp3 (or pass ``audio_dir``)

Values are already on [-1, 1]. Column ``sample_{ms}ms`` is the label at ``ms`` milliseconds of the song's audio.
Splits (authors' ``utils/DEAM/dataset.py``): train = ids <= 2000 (45 s clips), personalized = 1001..2000 (the only songs
whose raters have WorkerIds), test = 2001..2058 (full songs). Per-rater curves that are flat over their first 60 labels
(mean |v - mean(v)| < 0.01) are dropped, per dimension, as the authors do; a rater's song is kept only with both.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from pdmer.data.curves import MEAN, STEP_SECONDS, Curve, CurveSet, Song, warn
from pdmer.data.plain import check_lengths, find_audio
from pdmer.errors import InputError

AVERAGED = Path("annotations averaged per song") / "dynamic (per second annotations)"
PER_RATER = Path("annotations per each rater") / "dynamic (per second annotations)"
SPLIT_BOUNDS = {"train": (1, 2000), "personalized": (1001, 2000), "test": (2001, 2058)}  # authors' code
FLAT_THRESHOLD = 0.01  # authors' utils/DEAM/dataset.py: loading_personalized_data
FLAT_WINDOW = 60
SAMPLE_COLUMN = re.compile(r"^sample_(\d+)ms$")


def annotations_dir(root: Path) -> Path:
    for candidate in (root / "annotations", root / "DEAM_Annotations" / "annotations"):
        if (candidate / AVERAGED).is_dir() or (candidate / PER_RATER).is_dir():
            return candidate
    raise InputError(
        f"{root} is not a DEAM folder: expected annotations/{AVERAGED}/ (or DEAM_Annotations/annotations/...) in it"
    )


def read_sample_table(path: Path, *, key_column: str | None) -> list[tuple[str, int, float, np.ndarray]]:
    """Rows of a DEAM ``sample_<ms>ms`` table as (key, line, start_s, values); trailing empty cells end a row."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            rows = list(csv.reader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"cannot read {path}: {error}") from None
    if not rows:
        raise InputError(f"{path} is empty")
    header = [cell.strip() for cell in rows[0]]
    first_sample = 1 if key_column is not None else 0
    if key_column is not None and header[0] != key_column:
        raise InputError(f"{path}: first column is {header[0]!r}, expected {key_column!r}")
    times = []
    for name in header[first_sample:]:
        match = SAMPLE_COLUMN.match(name)
        if not match:
            raise InputError(f"{path}: column {name!r} is not of the form sample_<milliseconds>ms")
        times.append(int(match.group(1)) / 1000)
    steps = np.diff(times)
    if len(times) > 1 and not np.allclose(steps, STEP_SECONDS):
        raise InputError(f"{path}: sample columns are not {STEP_SECONDS * 1000:.0f} ms apart")
    table = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        key = row[0].strip() if key_column is not None else str(line - 1)
        cells = [cell.strip() for cell in row[first_sample:]]
        while cells and cells[-1] in ("", "NaN", "nan"):
            cells.pop()
        try:
            values = np.array([float(cell) if cell else np.nan for cell in cells])
        except ValueError as error:
            raise InputError(f"{path}:{line}: {error}") from None
        if np.isnan(values).any():
            gap = int(np.argwhere(np.isnan(values))[0, 0])
            raise InputError(f"{path}:{line}: empty or NaN cell at {header[first_sample + gap]} inside the curve")
        if len(values) > len(times):
            raise InputError(f"{path}:{line}: {len(values)} values but only {len(times)} sample columns")
        if len(values):
            table.append((key, line, times[0], values))
    return table


def pair_dimensions(song: str, listener: str, valence, arousal, start_s: float, source: str) -> Curve:
    """One curve from a valence and an arousal row: cut to their common length (DEAM's differ by a label at times)."""
    length = min(len(valence), len(arousal))
    va = np.stack([valence[:length], arousal[:length]], axis=1)
    return Curve(song, listener, start_s, va, source=source)


def is_flat(values: np.ndarray, threshold: float) -> bool:
    head = values[:FLAT_WINDOW]
    return float(np.abs(head - head.mean()).mean()) < threshold


def load_averaged(folder: Path) -> list[Curve]:
    tables = {dim: read_sample_table(folder / f"{dim}.csv", key_column="song_id") for dim in ("valence", "arousal")}
    arousal = {key: (start, values) for key, _, start, values in tables["arousal"]}
    curves = []
    for song, line, start, valence in tables["valence"]:
        if song not in arousal:
            warn(f"{folder / 'valence.csv'}:{line}: song {song} has no arousal row; skipped")
            continue
        if arousal[song][0] != start:
            raise InputError(f"{folder}: valence and arousal of song {song} start at different times")
        curves.append(pair_dimensions(song, MEAN, valence, arousal[song][1], start, f"{folder / 'valence.csv'}:{line}"))
    return curves


def load_raters(folder: Path, *, flat_threshold: float | None) -> list[Curve]:
    """Per-rater curves. Raters are paired across the two dimensions by WorkerId, or by row for anonymous files."""
    curves, dropped = [], 0
    for valence_path in sorted((folder / "valence").glob("*.csv"), key=lambda p: (len(p.stem), p.stem)):
        song = valence_path.stem
        arousal_path = folder / "arousal" / valence_path.name
        if not arousal_path.is_file():
            warn(f"{valence_path}: no matching {arousal_path}; song {song} skipped")
            continue
        with open(valence_path, encoding="utf-8-sig") as file:
            named = file.readline().split(",")[0].strip() == "WorkerId"
        key_column = "WorkerId" if named else None
        rows = {}
        for dim, path in (("valence", valence_path), ("arousal", arousal_path)):
            for key, line, start, values in read_sample_table(path, key_column=key_column):
                if flat_threshold is not None and is_flat(values, flat_threshold):
                    dropped += 1
                    continue
                rows.setdefault(key, {})[dim] = (start, values, f"{path}:{line}")
        for key, dims in rows.items():
            if len(dims) < 2:
                continue
            (start_v, valence, source), (start_a, arousal, _) = dims["valence"], dims["arousal"]
            if start_v != start_a:
                raise InputError(f"{source}: valence and arousal of rater {key} start at different times")
            listener = key if named else f"anonymous-{song}-{key}"
            curves.append(pair_dimensions(song, listener, valence, arousal, start_v, source))
    if dropped:
        warn(f"{folder}: dropped {dropped} flat per-rater curve(s) (mean |v - mean(v)| < {flat_threshold} "
             f"over the first {FLAT_WINDOW} labels), as the authors' code does")
    return curves


def load_deam(
    root: str | Path,
    *,
    raters: bool = False,
    audio_dir: str | Path | None = None,
    require_audio: bool = False,
    flat_threshold: float | None = FLAT_THRESHOLD,
) -> CurveSet:
    """DEAM's averaged curves (and with ``raters=True`` its per-rater curves, listener = WorkerId).

    Songs without audio get ``Song.audio = None`` unless ``require_audio``; :meth:`CurveSet.select` or
    :func:`with_audio` narrows to the songs whose audio is at hand."""
    root = Path(root)
    annotations = annotations_dir(root)
    curves = []
    if (annotations / AVERAGED).is_dir():
        curves += load_averaged(annotations / AVERAGED)
    if raters:
        if not (annotations / PER_RATER).is_dir():
            raise InputError(f"{annotations / PER_RATER} is missing: this DEAM copy has no per-rater annotations")
        curves += load_raters(annotations / PER_RATER, flat_threshold=flat_threshold)
    if audio_dir is None:
        audio_dir = next((d for d in (root / "DEAM_audio" / "MEMD_audio", root / "MEMD_audio") if d.is_dir()), None)
    song_ids = sorted({c.song for c in curves}, key=int)
    songs = {s: Song(s, find_audio(Path(audio_dir), s) if audio_dir else None) for s in song_ids}
    if require_audio:
        CurveSet("DEAM", songs, []).require_audio()
    check_lengths(curves, songs)
    splits = {
        name: {"songs": [s for s in song_ids if low <= int(s) <= high]} for name, (low, high) in SPLIT_BOUNDS.items()
    }
    return CurveSet("DEAM", songs, curves, splits)


def load_emomusic(root: str | Path, *, audio_dir: str | Path | None = None) -> CurveSet:
    """The MediaEval 2013 "1000 songs" files (DEAM ids <= 1000): ``annotations/{arousal,valence}_cont_{average,std}.csv``
    and 45 s clips (``clips_45s_mp3/`` or ``audio_dir``); averaged curves with their std over raters."""
    root = Path(root)
    folder = root / "annotations"
    tables = {}
    for dim in ("valence", "arousal"):
        for kind in ("average", "std"):
            path = folder / f"{dim}_cont_{kind}.csv"
            if not path.is_file():
                raise InputError(f"{path} is missing: expected the MediaEval 2013 annotation files in {folder}")
            tables[dim, kind] = {key: (line, start, values) for key, line, start, values in
                                 read_sample_table(path, key_column="song_id")}
    curves = []
    for song, (line, start, valence) in tables["valence", "average"].items():
        arousal = tables["arousal", "average"][song][2]
        curve = pair_dimensions(song, MEAN, valence, arousal, start, f"{folder / 'valence_cont_average.csv'}:{line}")
        std = np.stack([tables["valence", "std"][song][2], tables["arousal", "std"][song][2]], axis=1)
        curves.append(Curve(song, MEAN, start, curve.va, std=std[: len(curve.va)].astype(np.float32),
                            source=curve.source))
    audio_dir = Path(audio_dir) if audio_dir else root / "clips_45s_mp3"
    songs = {c.song: Song(c.song, find_audio(audio_dir, c.song)) for c in curves}
    return CurveSet("MediaEval2013", songs, curves)


def with_audio(dataset: CurveSet) -> CurveSet:
    """Only the songs whose audio file is at hand."""
    return dataset.select(songs=[s.id for s in dataset.songs.values() if s.audio is not None])
