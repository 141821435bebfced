"""PMEmo (Zhang et al., ICMR 2018) in its official PMEmo2019 release layout.

    PMEmo2019/                     pass this folder (or the folder holding it) as ``root``
      metadata.csv                 musicId,fileName,title,artist,album,duration,chorus_start_time,chorus_end_time
      chorus/<musicId>.mp3         the chorus excerpt each song was annotated on (or pass ``audio_dir``)
      annotations/
        dynamic_annotations.csv      musicId,frameTime,Arousal(mean),Valence(mean)   a row per song and 0.5 s
        dynamic_annotations_std.csv  musicId,frameTime,Arousal(std),Valence(std)     their spread over annotators
        static_annotations.csv       musicId,Arousal(mean),Valence(mean)             a row per song
        static_annotations_std.csv   musicId,Arousal(std),Valence(std)

Facts and their sources (repositories on GitHub):
- file names: the release's own tree listing ("PMEmo Dataset - 2019/06": metadata.csv, chorus/<id>.mp3,
  annotations/{dynamic,static}_annotations{,_std}.csv); HuiZhangDB/PMEmo README ("dynamic labels for each 0.5-second
  segment", "The first 15-second annotations are removed");
- columns: HuiZhangDB/PMEmo dynamic_MER.ipynb (merges dynamic_features.csv and dynamic_annotations.csv on musicId,
  frameTime; targets 'Arousal(mean)', 'Valence(mean)'); the release's dynamic_annotations_std.csv as committed in
  Silicon23/Music-Emotion-Model (header musicId,frameTime,Arousal(std),Valence(std)); static and metadata columns as
  several independent public loaders of the release read them by name (found by code search);
- values on [0, 1] (nspotrepka/566 data/README.md; HuiZhangDB/PMEmo docs/data/samples/*.json);
- ``frameTime`` is seconds into the chorus clip on the 0.5 s grid and starts at 15.5 for every song (the std file
  above; docs/data/samples/*.json), and the last one is the clip's length rounded down to 0.5 s (docs/data/samples:
  108.mp3 lasts 49.15 s and its curve runs 15.5 .. 49.0; 634.mp3 45.15 s, 15.5 .. 45.0; 372.mp3 60.17 s, .. 60.0);
- metadata ``duration`` is the clip's length in seconds (49.1 for 108), the chorus bounds are "mm:ss" positions in
  the full song (["02:50", "03:37"] for 108; docs/data/samples/108.json).
So a row reads as the slider sampled at the END of the half second it describes: samples at 0.5, 1.0, ... s, the 30
of the first 15 s (0.5 .. 15.0) dropped, the last one closing the clip (our inference; PMEmo does not say).
``frame_time="end"`` (the default) maps the row at ``t`` to the slice [t - 0.5, t), so curves start at 15.0 s and
end within the audio; ``frame_time="start"`` maps it to [t, t + 0.5) (start 15.5 s; the last label then covers up to
0.5 s past the clip's end), as the authors' baseline implicitly does when it pairs the row at ``t`` with the features
of the 1 s window starting at ``t`` (features.py).

PMEmo2019 has no per-annotator dynamic ratings (the release gives only their mean and std; the DSAML paper notes the
same), so every curve is an averaged one (listener ``MEAN``) with its ``std``. There are no official splits; the
CurveSet carries the held-out songs of the authors' dynamic baseline (dynamic_MER.ipynb: 10 % of the 767 annotated
songs, ``shuffle(random_state=3)``, ids printed in the notebook) as ``baseline-test``, the rest as
``baseline-train``. Numpy only; no torch.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pdmer.data.curves import MEAN, STEP_SECONDS, Curve, CurveSet, Song, song_order, to_unit_scale, warn
from pdmer.data.plain import AUDIO_SUFFIXES, check_lengths, find_audio, number, read_rows
from pdmer.errors import InputError

DYNAMIC = Path("annotations") / "dynamic_annotations.csv"
DYNAMIC_STD = Path("annotations") / "dynamic_annotations_std.csv"
STATIC = Path("annotations") / "static_annotations.csv"
STATIC_STD = Path("annotations") / "static_annotations_std.csv"
METADATA = Path("metadata.csv")
MEAN_COLUMNS = ("Arousal(mean)", "Valence(mean)")
STD_COLUMNS = ("Arousal(std)", "Valence(std)")
FRAME_TIMES = ("end", "start")
SCALE = "[0,1]"
SLOPE = 2.0  # of the map [0, 1] -> [-1, 1]: stds scale by it

# dynamic_MER.ipynb, output of the cell `testsongs = shuffle(songs, random_state=3)[:round(len(songs) * 0.1)]`.
BASELINE_TEST_SONGS = tuple(str(i) for i in (
    63, 490, 34, 743, 104, 177, 79, 894, 14, 668, 683, 151, 504, 516, 355, 98, 97, 579, 892, 837, 152, 169, 388, 391,
    561, 850, 985, 958, 572, 514, 625, 791, 517, 507, 501, 1000, 803, 457, 403, 670, 51, 798, 59, 531, 466, 503, 794,
    568, 279, 103, 350, 917, 428, 417, 393, 571, 354, 283, 906, 149, 56, 128, 742, 993, 94, 754, 199, 57, 576, 463,
    284, 126, 488, 253, 227, 730, 861,
))


@dataclass(frozen=True)
class SongInfo:
    """One row of metadata.csv. ``duration_s`` is the chorus clip's length; the chorus bounds are positions in the
    full song (which PMEmo does not ship), None where the cell is empty."""

    song: str
    file_name: str
    title: str
    artist: str
    album: str
    duration_s: float | None
    chorus_start_s: float | None
    chorus_end_s: float | None


@dataclass(frozen=True)
class StaticLabel:
    """A song's overall (valence, arousal) on [-1, 1], and its std over annotators (None without the std file)."""

    va: np.ndarray
    std: np.ndarray | None


def pmemo_root(root: str | Path) -> Path:
    """The PMEmo2019 folder: ``root`` itself, or ``root/PMEmo2019``."""
    root = Path(root)
    for candidate in (root, root / "PMEmo2019"):
        if (candidate / DYNAMIC).is_file():
            return candidate
    if not root.is_dir():
        raise InputError(f"PMEmo folder {root} does not exist")
    raise InputError(
        f"{root} is not a PMEmo2019 folder: {root / DYNAMIC} is missing; point at the release's PMEmo2019 folder "
        "(the one holding annotations/, chorus/ and metadata.csv)"
    )


def music_id(row: dict[str, str], where: str) -> str:
    text = (row.get("musicId") or "").strip()
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or not value.is_integer() or value < 0:
        raise InputError(f"{where}: musicId {text!r} is not a song id (a whole number)")
    return str(int(value))


def in_unit_range(value: float, column: str, where: str, *, std: bool) -> float:
    if value < 0 or (not std and value > 1):
        kind = "a std" if std else "a value"
        raise InputError(f"{where}: {column} {value:g} is {kind} outside PMEmo's [0, 1] scale; the file is damaged "
                         "or not from the PMEmo2019 release")
    return value


def read_dynamic(path: Path, columns: tuple[str, str], *, std: bool) -> dict[str, list[tuple[int, int, float, float]]]:
    """Per song, (line, 0.5 s step of frameTime, valence, arousal) rows of a dynamic annotation file, checked: numbers
    on the grid and in [0, 1], one row per (musicId, frameTime), in time order, no missing half seconds."""
    rows = read_rows(path, ("musicId", "frameTime", *columns))
    if not rows:
        raise InputError(f"{path} has no rows")
    series: dict[str, list[tuple[int, int, float, float]]] = defaultdict(list)
    seen: dict[tuple[str, int], int] = {}
    for line, row in rows:
        where = f"{path}:{line}"
        song = music_id(row, where)
        time = number(row, "frameTime", where)
        step = round(time / STEP_SECONDS)
        if abs(step * STEP_SECONDS - time) > 1e-6:
            raise InputError(f"{where}: frameTime {time:g} is not a multiple of {STEP_SECONDS} s, as PMEmo's are")
        key = (song, step)
        if key in seen:
            raise InputError(f"{path}: duplicate rows for musicId {song}, frameTime {time:g} at lines {seen[key]} and "
                             f"{line}; keep one")
        seen[key] = line
        arousal = in_unit_range(number(row, columns[0], where), columns[0], where, std=std)
        valence = in_unit_range(number(row, columns[1], where), columns[1], where, std=std)
        series[song].append((line, step, valence, arousal))
    for song, points in series.items():  # order first, so a swapped pair reads as unsorted rather than as a gap
        for (last_line, last_step, *_), (line, step, *_) in zip(points, points[1:]):
            if step < last_step:
                raise InputError(
                    f"{path}:{line}: musicId {song}, frameTime {step * STEP_SECONDS:g} comes after frameTime "
                    f"{last_step * STEP_SECONDS:g} (line {last_line}); sort the rows by musicId, then frameTime"
                )
        for (last_line, last_step, *_), (line, step, *_) in zip(points, points[1:]):
            if step > last_step + 1:
                raise InputError(
                    f"{path}: musicId {song} has no rows for frameTime {(last_step + 1) * STEP_SECONDS:g}"
                    f"{'' if step == last_step + 2 else f' .. {(step - 1) * STEP_SECONDS:g}'} (between lines "
                    f"{last_line} and {line}); PMEmo has a row every {STEP_SECONDS} s, so restore the file from "
                    "the release"
                )
    return series


def span(rows: list[tuple[int, int, float, float]]) -> str:
    return f"frameTime {rows[0][1] * STEP_SECONDS:g} .. {rows[-1][1] * STEP_SECONDS:g}"


def load_pmemo(
    root: str | Path,
    *,
    require_audio: bool = True,
    frame_time: str = "end",
    audio_dir: str | Path | None = None,
) -> CurveSet:
    """PMEmo2019's averaged dynamic curves (listener ``MEAN``, with their std over annotators) on [-1, 1].

    ``frame_time``: "end" (default) reads the row at ``frameTime`` t as the label of [t - 0.5, t) of the chorus clip,
    "start" as the label of [t, t + 0.5) (see the module docstring for why "end"). ``audio_dir`` replaces
    ``root/chorus``; a song's audio is ``<musicId>`` with any of .wav, .flac, .ogg, .mp3 (so WAVs converted with the
    authors' transformat.sh beside the MP3s work too). Without ``require_audio``, songs lacking audio get
    ``Song.audio=None``.
    """
    if frame_time not in FRAME_TIMES:
        raise InputError(f"frame_time must be one of {', '.join(FRAME_TIMES)}, got {frame_time!r}")
    root = pmemo_root(root)
    means = read_dynamic(root / DYNAMIC, MEAN_COLUMNS, std=False)
    std_path = root / DYNAMIC_STD
    stds = read_dynamic(std_path, STD_COLUMNS, std=True) if std_path.is_file() else None
    if stds is None:
        warn(f"{std_path} is missing: the curves carry no std over annotators")
    else:
        lacking = sorted(set(means) - set(stds), key=song_order)
        if lacking:
            warn(f"{std_path} has no rows for {len(lacking)} song(s) of {DYNAMIC.name} "
                 f"({', '.join(lacking[:5])}{' ...' if len(lacking) > 5 else ''}): those curves carry no std")
        extra = sorted(set(stds) - set(means), key=song_order)
        if extra:
            warn(f"{std_path} has rows for {len(extra)} song(s) missing from {DYNAMIC.name} "
                 f"({', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}); they are ignored")

    offset = 1 if frame_time == "end" else 0
    curves = []
    for song in sorted(means, key=song_order):
        rows = means[song]
        source = f"{root / DYNAMIC} (musicId {song}, lines {rows[0][0]}-{rows[-1][0]})"
        first_step = rows[0][1] - offset
        if first_step < 0:
            raise InputError(f"{source}: frameTime {rows[0][1] * STEP_SECONDS:g} closes no half second of audio; "
                             "use frame_time='start' if frame times are slice starts")
        va = to_unit_scale(np.array([row[2:] for row in rows]), SCALE, where=source)
        std = None
        if stds is not None and song in stds:
            spread = stds[song]
            if [row[1] for row in spread] != [row[1] for row in rows]:
                raise InputError(f"{std_path}: musicId {song} covers {span(spread)} (lines {spread[0][0]}-"
                                 f"{spread[-1][0]}) but {DYNAMIC.name} covers {span(rows)}; the two files must have "
                                 "the same rows")
            std = (SLOPE * np.array([row[2:] for row in spread])).astype(np.float32)
        curves.append(Curve(song, MEAN, first_step * STEP_SECONDS, va, std=std, source=source))

    chorus_dir = Path(audio_dir) if audio_dir is not None else root / "chorus"
    songs = {c.song: Song(c.song, find_audio(chorus_dir, c.song)) for c in curves}
    missing = [s.id for s in songs.values() if s.audio is None]
    if missing and require_audio:
        raise InputError(
            f"{chorus_dir}: no chorus audio for {len(missing)} song(s): musicId {', '.join(missing[:10])}"
            f"{' ...' if len(missing) > 10 else ''}; expected <musicId>.mp3 (as in the PMEmo2019 release) or "
            f"{'|'.join(AUDIO_SUFFIXES)} there; pass require_audio=False to load the curves without audio"
        )
    check_lengths(curves, songs)
    test = [s for s in BASELINE_TEST_SONGS if s in songs]
    held_out = set(test)
    splits = {
        "baseline-train": {"songs": [s for s in songs if s not in held_out]},
        "baseline-test": {"songs": test},
    }
    return CurveSet("PMEmo", songs, curves, splits)


def clock_seconds(text: str, column: str, where: str) -> float | None:
    """"02:50" (mm:ss), "1:02:50" or "170" as seconds; None for an empty cell."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        seconds = 0.0
        for part in text.split(":"):
            seconds = 60.0 * seconds + float(part)
    except ValueError:
        raise InputError(f"{where}: {column} {text!r} is not a time (mm:ss or seconds)") from None
    if not np.isfinite(seconds) or seconds < 0 or text.count(":") > 2:
        raise InputError(f"{where}: {column} {text!r} is not a time (mm:ss or seconds)")
    return seconds


def read_pmemo_metadata(root: str | Path) -> dict[str, SongInfo]:
    """metadata.csv by song id: file name, title, artist, album, clip length, the chorus's bounds in the full song."""
    path = pmemo_root(root) / METADATA
    if not path.is_file():
        raise InputError(f"{path} is missing")
    info = {}
    for line, row in read_rows(path, ("musicId", "fileName", "chorus_start_time", "chorus_end_time"), lenient_text=True):
        where = f"{path}:{line}"
        song = music_id(row, where)
        if song in info:
            raise InputError(f"{where}: musicId {song} appears twice")
        start = clock_seconds(row["chorus_start_time"], "chorus_start_time", where)
        end = clock_seconds(row["chorus_end_time"], "chorus_end_time", where)
        if start is not None and end is not None and end <= start:
            raise InputError(f"{where}: chorus ends ({row['chorus_end_time'].strip()}) before it starts "
                             f"({row['chorus_start_time'].strip()})")
        duration = (row.get("duration") or "").strip()
        info[song] = SongInfo(
            song, (row.get("fileName") or "").strip(), (row.get("title") or "").strip(),
            (row.get("artist") or "").strip(), (row.get("album") or "").strip(),
            number(row, "duration", where) if duration else None, start, end,
        )
    return info


def read_pmemo_static(root: str | Path) -> dict[str, StaticLabel]:
    """The static (whole-clip) labels by song id, (valence, arousal) on [-1, 1], with their std where the file is."""
    root = pmemo_root(root)

    def table(path: Path, columns: tuple[str, str], *, std: bool) -> dict[str, np.ndarray]:
        values = {}
        for line, row in read_rows(path, ("musicId", *columns)):
            where = f"{path}:{line}"
            song = music_id(row, where)
            if song in values:
                raise InputError(f"{where}: musicId {song} appears twice")
            arousal, valence = (in_unit_range(number(row, c, where), c, where, std=std) for c in columns)
            values[song] = np.array([valence, arousal])
        return values

    if not (root / STATIC).is_file():
        raise InputError(f"{root / STATIC} is missing")
    means = table(root / STATIC, MEAN_COLUMNS, std=False)
    stds = table(root / STATIC_STD, STD_COLUMNS, std=True) if (root / STATIC_STD).is_file() else {}
    return {
        song: StaticLabel(
            to_unit_scale(va, SCALE, where=str(root / STATIC)),
            (SLOPE * stds[song]).astype(np.float32) if song in stds else None,
        )
        for song, va in sorted(means.items(), key=lambda item: song_order(item[0]))
    }


__all__ = ["load_pmemo", "read_pmemo_metadata", "read_pmemo_static", "SongInfo", "StaticLabel", "BASELINE_TEST_SONGS"]
