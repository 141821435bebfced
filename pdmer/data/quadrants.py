"""Song-level quadrant datasets: 4Q (real recordings) and EMOPIA (pop-piano MIDI).

A quadrant is the pair of signs of (valence, arousal): Q1 = (+, +), Q2 = (-, +), Q3 = (-, -), Q4 = (+, -). These
datasets have no curves; they teach and test *levels*: the sign of a song's mean valence and arousal.

4Q (Panda, Malheiro & Paiva 2018), as the dataset's annotations table beside its clips:

    <root>/annotations.csv     Song,Quadrant                 (MT0000004637,Q3)
    <root>/audio/<Song>.<ext>  the 30 s clip (ogg/mp3/wav/flac); or the original release's Q1/ ... Q4/ folders
    <root>/metadata.csv        optional: Song,Artist,Title,...,Moods,Genres,...   kept as each song's info
    <root>/split.json          optional: {"train": [Song, ...], "val": [...]}

EMOPIA (Hung et al. 2021): the label is in the file name, and a song's clips must stay in one split:

    <root>/midi/Q<k>_<youtube id>_<clip>.mid   (or midis/, as in the original release)
    <root>/split.json                           optional: {"val_songs": [youtube id, ...]}: the rest is train
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pdmer.data.curves import QUADRANT_SIGNS, CurveSet, Song, read_split_file, warn
from pdmer.data.plain import AUDIO_SUFFIXES, find_audio, read_rows
from pdmer.errors import InputError

AUDIO_EXTENSIONS = (*AUDIO_SUFFIXES, ".opus")
EMOPIA_NAME = re.compile(r"^(Q[^_]*)_(.+)_(\d+)\.midi?$", re.IGNORECASE)


def is_4q(root: Path) -> bool:
    table = root / "annotations.csv"
    if table.is_file():
        with open(table, encoding="utf-8-sig", errors="replace") as file:
            return "quadrant" in file.readline().lower()
    return all((root / q).is_dir() for q in QUADRANT_SIGNS)


def emopia_dir(root: Path) -> Path | None:
    for name in ("midi", "midis"):
        folder = root / name
        if folder.is_dir() and any(EMOPIA_NAME.match(p.name) for p in folder.iterdir()):
            return folder
    return None


def checked_quadrant(label: str, *, where: str, problems: list[str]) -> str | None:
    quadrant = label.strip().upper()
    if quadrant in QUADRANT_SIGNS:
        return quadrant
    problems.append(f"{where}: quadrant {label!r} is not Q1-Q4; skipped")
    return None


def load_4q(root: str | Path) -> CurveSet:
    """4Q's clips with their quadrants (and metadata where the table is there)."""
    root = Path(root)
    problems: list[str] = []
    labels: dict[str, str] = {}
    audio: dict[str, Path] = {}
    table = root / "annotations.csv"
    if table.is_file():
        folder = root / "audio"
        for line, row in read_rows(table, ("Song", "Quadrant")):
            song = row["Song"].strip()
            quadrant = checked_quadrant(row["Quadrant"], where=f"{table.name}:{line}", problems=problems)
            if quadrant is None:
                continue
            found = find_audio(folder, song, suffixes=AUDIO_EXTENSIONS)
            if found is None:
                problems.append(f"{table.name}:{line}: no audio for {song} in {folder}; skipped")
                continue
            labels[song], audio[song] = quadrant, found
    elif all((root / q).is_dir() for q in QUADRANT_SIGNS):  # the original release: one folder per quadrant
        for quadrant in QUADRANT_SIGNS:
            for path in sorted((root / quadrant).iterdir()):
                if path.suffix.lower() in AUDIO_EXTENSIONS:
                    labels[path.stem], audio[path.stem] = quadrant, path
    else:
        raise InputError(f"{root} is not a 4Q folder: expected annotations.csv and audio/, or Q1/ ... Q4/")
    if not labels:
        raise InputError(f"{root}: no clip with a Q1-Q4 label and audio")
    metadata = {row["Song"].strip(): {key: (value or "").strip() for key, value in row.items()}
                for _, row in read_rows(root / "metadata.csv", ("Song",), lenient_text=True)} \
        if (root / "metadata.csv").is_file() else {}
    songs = {song: Song(song, audio[song], info=metadata.get(song, {})) for song in sorted(labels)}
    for problem in problems:
        warn(f"4Q: {problem}")
    return CurveSet("4Q", songs, [], read_split_file(root / "split.json", songs), labels, problems)


def load_emopia(root: str | Path) -> CurveSet:
    """EMOPIA's clips (MIDI) with the quadrant of their file name; splits by song."""
    root = Path(root)
    folder = emopia_dir(root)
    if folder is None:
        raise InputError(f"{root} is not an EMOPIA folder: expected midi/Q<k>_<song>_<clip>.mid files in it")
    problems: list[str] = []
    songs, labels = {}, {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".mid", ".midi"):
            continue
        match = EMOPIA_NAME.match(path.name)
        if not match:
            problems.append(f"{path.name}: not named Q<k>_<song>_<clip>.mid; skipped")
            continue
        quadrant = checked_quadrant(match.group(1), where=path.name, problems=problems)
        if quadrant is None:
            continue
        clip = path.stem  # seconds None: rendered to the MIDI's own length (parsing 1,078 files here would take 18 s)
        songs[clip] = Song(clip, None, midi=path, info={"song": match.group(2)})
        labels[clip] = quadrant
    if not songs:
        raise InputError(f"{folder}: no readable EMOPIA clip")
    splits = {}
    if (root / "split.json").is_file():
        try:
            val_songs = set(json.loads((root / "split.json").read_text(encoding="utf-8"))["val_songs"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
            raise InputError(f"{root / 'split.json'} must be {{\"val_songs\": [song, ...]}}: {error}") from None
        val = sorted(c for c, s in songs.items() if s.info["song"] in val_songs)
        splits = {"train": {"songs": sorted(set(songs) - set(val))}, "val": {"songs": val}}
    for problem in problems:
        warn(f"EMOPIA: {problem}")
    return CurveSet("EMOPIA", songs, [], splits, labels, problems)
