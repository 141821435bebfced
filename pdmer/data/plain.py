"""pdmer's plain dataset format, for users' own annotations (and the synthetic benchmark, which writes it).

    my-data/
      dataset.json                     optional: {"name", "scale", "splits", "audio_dir"}
      audio/<song>.{wav,flac,ogg,mp3}  one file per song; <song> is the song id
      annotations/<listener>/<song>.csv        columns time_s,valence,arousal    (one file per listener and song)
      annotations.csv                          or one long file: song,listener,time_s,valence,arousal

``time_s`` is seconds from the start of the audio file, any step: curves are linearly resampled onto the 0.5 s
grid (label at t describes [t, t + 0.5)). ``scale`` is the annotation scale, "[-1,1]" (default), "[0,1]" or "[1,9]".
A listener named "mean" holds averaged curves. ``splits`` maps a split name to {"songs": [...], "listeners": [...]}.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pdmer.data.curves import SCALES, STEP_SECONDS, Curve, CurveSet, Song, to_unit_scale, warn
from pdmer.errors import InputError
from pdmer.fileio import atomic_path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
COLUMNS = ("time_s", "valence", "arousal")
DELIMITERS = (",", ";", "\t")  # ';' is what spreadsheets save where the decimal mark is a comma
LONG_COLUMNS = ("song", "listener", *COLUMNS)


def read_rows(
    path: Path, columns: tuple[str, ...], *, numbers: tuple[str, ...] = (), lenient_text: bool = False
) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a CSV that must have ``columns`` (extra columns are ignored), read as spreadsheets
    save it: with or without a UTF-8 byte-order mark, CRLF or LF line ends, blank lines and spaces around cells,
    cells separated by commas, semicolons or tabs (detected from the header). ``numbers``: columns read as numbers;
    where the delimiter is not a comma they may hold a decimal comma, and a row with more cells than the header is
    refused (its numbers would be shifted). ``lenient_text``: bytes that are not UTF-8 (e.g. titles in a legacy
    encoding) become U+FFFD with one warning instead of an error. Cells come back stripped."""
    text = read_text(path, lenient_text=lenient_text)
    first = next(((at, line) for at, line in enumerate(text.splitlines(), 1) if line.strip()), None)
    if first is None:
        raise InputError(f"{path} is empty; it must start with the header {','.join(columns)}")
    delimiter = detect_delimiter(first[1], columns)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        rows = [(reader.line_num, [cell.strip() for cell in cells]) for cells in reader]
    except csv.Error as error:
        raise InputError(f"cannot read {path}: {error}") from None
    rows = [(at, cells) for at, cells in rows if any(cells)]
    header = rows[0][1] if rows else []  # a file of delimiters alone has none
    missing = [c for c in columns if c not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; it must start with the header "
                         f"{','.join(columns)} (cells separated by ',' or ';'). Found: line {first[0]} "
                         f"{shorten(first[1])}, delimiter {delimiter!r} detected, columns {shorten(header)}")
    return [(at, as_row(cells, header, numbers, delimiter, f"{path}:{at}")) for at, cells in rows[1:]]


def read_text(path: Path, *, lenient_text: bool = False) -> str:
    """A text file's contents, a UTF-8 byte-order mark (Excel's "CSV UTF-8") dropped."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {path}: {error}") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode Text": every other byte is a zero
        raise InputError(f"{path} is UTF-16 text; save it as \"CSV UTF-8\" (or plain CSV) instead")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        if not lenient_text:
            raise InputError(f"cannot read {path}: it is not UTF-8 text ({error}); save it as \"CSV UTF-8\"") from None
    warn(f"{path} is not UTF-8: its undecodable characters are replaced")
    return raw.decode("utf-8-sig", errors="replace")


def detect_delimiter(header: str, columns: tuple[str, ...]) -> str:
    """The delimiter that splits ``header`` into the most of ``columns``; on a tie the one giving the most cells,
    then the comma (``max`` keeps the first best)."""

    def fit(delimiter: str) -> tuple[int, int]:
        cells = [cell.strip() for cell in next(csv.reader([header], delimiter=delimiter), [])]
        return sum(c in cells for c in columns), len(cells)

    return max(DELIMITERS, key=fit)


def shorten(value: object, limit: int = 80) -> str:
    """``value`` as repr shows it (tabs, stray characters and all), cut to ``limit`` characters: a binary file or a
    whole song on one line makes a short message still."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def as_row(cells: list[str], header: list[str], numbers: tuple[str, ...], delimiter: str, where: str) -> dict:
    """One row as {column: cell}, like csv.DictReader's (a missing cell is None); decimal commas made points where
    the delimiter is not a comma, since there a comma in a number can only be the decimal mark."""
    if numbers and len(cells) > len(header):
        hint = "; a decimal comma (0,5) needs ';' between cells" if delimiter == "," else ""
        raise InputError(f"{where}: {len(cells)} cells where the header has {len(header)} "
                         f"(delimiter {delimiter!r}){hint}")
    row = dict(zip(header, cells))
    row.update({column: None for column in header[len(cells):]})
    if delimiter != ",":
        for column in numbers:
            row[column] = decimal_point(row.get(column))
    return row


def decimal_point(text: str | None) -> str | None:
    return text.replace(",", ".") if text and text.count(",") == 1 and "." not in text else text


def number(row: dict[str, str], column: str, where: str) -> float:
    text = (row.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}: {column} {text!r} is not a number") from None
    if not np.isfinite(value):
        raise InputError(f"{where}: {column} is {text!r}; every cell must be a finite number (fill or drop the row)")
    return value


def read_points(path: str | Path) -> list[tuple[int, float, float, float]]:
    """(line, time_s, valence, arousal) per row of a curve CSV: the one reader of the format, for datasets' per-song
    files, profiles' curves and ``pdmer predict --truth``, so that all accept what spreadsheets save."""
    path = Path(path)
    return [(line, *(number(row, column, f"{path}:{line}") for column in COLUMNS))
            for line, row in read_rows(path, COLUMNS, numbers=COLUMNS)]


def curve_from_points(
    song: str, listener: str, points: list[tuple[int, float, float, float]], *, scale: str, source: str
) -> Curve:
    """A 2 Hz curve from (line, time_s, valence, arousal) points at any step: checked, converted, resampled."""
    if len(points) < 2:
        raise InputError(f"{source}: a curve needs at least 2 time points, got {len(points)}")
    times = np.array([p[1] for p in points])
    for (line_a, t_a, *_), (line_b, t_b, *_) in zip(points, points[1:]):
        if t_b == t_a:
            raise InputError(f"{source}: duplicate time {t_b} s at lines {line_a} and {line_b}; keep one row per time")
        if t_b < t_a:
            raise InputError(f"{source}:{line_b}: time {t_b} s comes after {t_a} s (line {line_a}); sort rows by time_s")
    if times[0] < 0:
        raise InputError(f"{source}:{points[0][0]}: negative time {times[0]} s")
    values = to_unit_scale(np.array([[p[2], p[3]] for p in points]), scale, where=source)
    # The 0.5 s grid points inside [first time, last time]; exact when the input already is on the grid.
    first = int(np.ceil(times[0] / STEP_SECONDS - 1e-9))
    last = int(np.floor(times[-1] / STEP_SECONDS + 1e-9))
    if last < first:
        raise InputError(f"{source}: times {times[0]}-{times[-1]} s contain no point of the 0.5 s grid")
    grid = STEP_SECONDS * np.arange(first, last + 1)
    va = np.stack([np.interp(grid, times, values[:, k]) for k in range(2)], axis=1)
    return Curve(song, listener, first * STEP_SECONDS, va, source=source)


def find_audio(audio_dir: Path, song: str, *, suffixes: tuple[str, ...] = AUDIO_SUFFIXES) -> Path | None:
    for suffix in suffixes:
        path = audio_dir / f"{song}{suffix}"
        if path.is_file():
            return path
    return None


def audio_seconds(path: Path) -> float | None:
    import soundfile

    try:
        info = soundfile.info(str(path))
    except (RuntimeError, OSError, soundfile.LibsndfileError):
        return None
    return info.frames / info.samplerate if info.samplerate else None


def check_lengths(curves: list[Curve], songs: dict[str, Song]) -> None:
    """Curves past the end of their audio are an error; curves that stop well before it get one warning."""
    durations = {s.id: audio_seconds(s.audio) for s in songs.values() if s.audio is not None}
    short = []
    for curve in curves:
        seconds = durations.get(curve.song)
        if seconds is None:
            continue
        if curve.end_s > seconds + STEP_SECONDS:
            raise InputError(
                f"{curve.source}: the curve runs to {curve.end_s:.1f} s but {songs[curve.song].audio} is only "
                f"{seconds:.1f} s long; cut the curve or fix the audio file"
            )
        if curve.end_s < seconds - 5.0:
            short.append(f"{curve.source} ends at {curve.end_s:.1f} s of {seconds:.1f} s")
    if short:
        more = f" (and {len(short) - 3} more)" if len(short) > 3 else ""
        warn(f"{len(short)} curve(s) end more than 5 s before their audio: {'; '.join(short[:3])}{more}; "
             "the unlabelled audio is not used for scoring")


def load_plain(root: str | Path, *, scale: str | None = None, require_audio: bool = True) -> CurveSet:
    """Read a dataset in the plain format. ``scale`` overrides dataset.json's (default "[-1,1]")."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder {root} does not exist")
    manifest = {}
    if (root / "dataset.json").is_file():
        try:
            manifest = json.loads((root / "dataset.json").read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise InputError(f"{root / 'dataset.json'}: not valid JSON: {error}") from None
    scale = scale or manifest.get("scale", "[-1,1]")
    if scale not in SCALES:
        raise InputError(f"unknown annotation scale {scale!r}; choose one of {', '.join(SCALES)}")
    audio_dir = root / manifest.get("audio_dir", "audio")

    points: dict[tuple[str, str], list] = defaultdict(list)
    sources: dict[tuple[str, str], str] = {}
    long_file, per_file = root / "annotations.csv", root / "annotations"
    if not long_file.is_file() and not per_file.is_dir():
        raise InputError(f"{root}: no annotations.csv and no annotations/<listener>/<song>.csv files")
    if long_file.is_file():
        seen: dict[tuple[str, str, float], int] = {}
        for line, row in read_rows(long_file, LONG_COLUMNS, numbers=COLUMNS):
            where = f"{long_file}:{line}"
            song, listener = row["song"].strip(), row["listener"].strip()
            if not song or not listener:
                raise InputError(f"{where}: empty song or listener")
            time = number(row, "time_s", where)
            key = (song, listener, time)
            if key in seen:
                raise InputError(f"{long_file}: duplicate row for song {song}, listener {listener}, "
                                 f"time {time} s at lines {seen[key]} and {line}")
            seen[key] = line
            points[song, listener].append((line, time, number(row, "valence", where), number(row, "arousal", where)))
            sources.setdefault((song, listener), f"{long_file} (song {song}, listener {listener})")
        for key in points:
            points[key].sort(key=lambda p: p[1])  # a long file may interleave songs; order within a curve by time
    if per_file.is_dir():
        for path in sorted(per_file.glob("*/*.csv")):
            key = (path.stem, path.parent.name)
            if key in points:
                raise InputError(f"{path}: song {key[0]}, listener {key[1]} is also in {long_file}; keep one")
            points[key] = read_points(path)
            sources[key] = str(path)
    if not points:
        raise InputError(f"{root}: the annotations hold no curves")

    curves = [
        curve_from_points(song, listener, pts, scale=scale, source=sources[song, listener])
        for (song, listener), pts in sorted(points.items())
    ]
    songs = {song: Song(song, find_audio(audio_dir, song)) for song in sorted({c.song for c in curves})}
    missing = [s.id for s in songs.values() if s.audio is None]
    if missing and require_audio:
        raise InputError(
            f"{audio_dir}: no audio for song(s) {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; "
            f"expected <song>{'|'.join(AUDIO_SUFFIXES)} there"
        )
    check_lengths(curves, songs)
    splits = manifest.get("splits", {})
    dataset = CurveSet(manifest.get("name", root.name), songs, curves, splits)
    for name, spec in splits.items():
        unknown = sorted(set(map(str, spec.get("songs", []))) - set(songs))
        if unknown:
            raise InputError(f"{root / 'dataset.json'}: split {name!r} names unknown song(s) {', '.join(unknown[:5])}")
    return dataset


def curve_csv(times: np.ndarray, va: np.ndarray) -> str:
    """The text of a curve CSV, the format :func:`read_points` reads: the header ``time_s,valence,arousal``, then one
    row per step, times to the millisecond and values to 6 decimals ("nan" for a step without one), LF line ends."""
    lines = [",".join(COLUMNS)]
    lines += [f"{float(t):.3f},{float(v):.6f},{float(a):.6f}" for t, (v, a) in zip(times, va)]
    return "\n".join(lines) + "\n"


def write_curve_csv(path: str | Path, times: np.ndarray, va: np.ndarray) -> None:
    """Write a curve CSV (:func:`curve_csv`), atomically: the one writer of the format, for datasets' per-song files
    and ``pdmer predict --csv``."""
    with atomic_path(path) as temporary:
        temporary.write_text(curve_csv(times, va), encoding="utf-8")


def write_plain(
    root: str | Path,
    curves: list[Curve],
    audio: Mapping[str, str | Path | tuple[np.ndarray, int]],
    *,
    name: str,
    splits: dict | None = None,
    extra: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a dataset in the plain format (values on the [-1,1] scale), all at once: it is built in a temporary
    folder beside ``root`` and renamed into place, so a failed or interrupted write leaves no half dataset.
    ``audio`` maps each song to a file to copy or to a (waveform, sample_rate) pair to write as FLAC (a lazy
    Mapping keeps one song in memory at a time)."""
    import soundfile

    root = Path(root)
    if root.exists() and not overwrite:
        raise InputError(f"{root} already exists; choose another folder or pass overwrite (--force)")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        (staging / "audio").mkdir()
        for song, source in audio.items():
            if isinstance(source, tuple):
                waveform, rate = source
                soundfile.write(str(staging / "audio" / f"{song}.flac"), np.asarray(waveform), rate, subtype="PCM_16")
            else:
                shutil.copyfile(source, staging / "audio" / f"{song}{Path(source).suffix.lower()}")
        for curve in curves:
            folder = staging / "annotations" / curve.listener
            folder.mkdir(parents=True, exist_ok=True)
            write_curve_csv(folder / f"{curve.song}.csv", curve.times, curve.va)
        manifest = {"name": name, "scale": "[-1,1]", "audio_dir": "audio", "splits": splits or {}, **(extra or {})}
        (staging / "dataset.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if root.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{root.name}.old.", dir=root.parent))
            os.replace(root, retired / root.name)
            os.replace(staging, root)
            shutil.rmtree(retired)
        else:
            os.replace(staging, root)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return root

