"""VGMIDI (Ferreira & Whitehead, ISMIR 2019): real listeners' dynamic valence and arousal, per listener, on MIDI.

Layout (github lucasnfe/vgmidi, the labelled part):

    <root>/annotations/vgmidi_raw_<n>.json   {"pieces": {pid: {name, midi, duration, measures}},
                                              "annotations": {"<pid>_<k>": {valence[], arousal[], age, gender,
                                                                             country, musicianship, ex1_*, ex2_*}}}
    <root>/midi/<pieces[pid].midi>
    <root>/split.json                         optional: {"train": ["raw1:piece12", ...], "val": [...]}

Piece ids are per file, so songs are named ``raw<n>:<pid>``. How the annotation tool recorded the curves (checked
against its code, lucasnfe/adl-music-annotation):
- value k of M ("measures") covers the time bin [k D/M, (k+1) D/M) of the D-second audio, so the 2 Hz label of the
  slice starting at t = 0.5 j is value floor(t M / D);
- values are written only while the listener drags, so trailing (0, 0) values were never set: they are missing;
- listeners have no id: one listener is one fingerprint (same file, age, gender, country, musicianship and identical
  answers to the two tutorial examples). The tool gave each listener two pieces, so a fingerprint that covers more,
  or one piece twice, is two people who answered alike: their curves count in the mean but belong to no listener.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from pdmer.data.curves import MEAN, STEP_SECONDS, Curve, CurveSet, Song, read_split_file, warn
from pdmer.errors import InputError

RAW_FILE = re.compile(r"^vgmidi_raw_(\d+)\.json$")
PIECES_PER_LISTENER = 2  # the tool's design: each listener annotated two pieces
PROFILE_FIELDS = ("age", "gender", "country", "musicianship")
# A MIDI this much longer than its annotated duration was not what the listeners heard at that time scale
# (6 pieces, 1.2-12.9 s longer; the rest are within 1 s, as raw_1's durations are truncated to whole seconds).
LENGTH_TOLERANCE_S = 1.1
MEAN_COVERAGE = 0.5  # a label of the mean curve needs at least this share of the piece's listeners


def is_vgmidi(root: Path) -> bool:
    folder = root / "annotations"
    return folder.is_dir() and any(RAW_FILE.match(p.name) for p in folder.iterdir())


def fingerprint(file_tag: str, annotation: dict) -> str:
    """A listener's id: a hash of what identifies them (they have no id of their own)."""
    answers = {key: annotation.get(key) for key in sorted(annotation) if key.startswith(("ex1_", "ex2_"))}
    profile = {key: annotation.get(key) for key in PROFILE_FIELDS}
    digest = hashlib.sha256(json.dumps([file_tag, profile, answers], sort_keys=True).encode()).hexdigest()
    return f"{file_tag}:{digest[:12]}"


def label_bins(seconds: float, measures: int) -> np.ndarray:
    """[labels]: which of the M values each 2 Hz label takes (labels of the slices wholly inside the audio)."""
    labels = int(math.floor(seconds / STEP_SECONDS + 1e-9))
    return np.minimum(np.floor(STEP_SECONDS * np.arange(labels) * measures / seconds + 1e-9).astype(int),
                      measures - 1)


def annotation_labels(annotation: dict, seconds: float, measures: int, *, where: str,
                      counts: dict[str, int]) -> np.ndarray | None:
    """[T, 2] (valence, arousal) at 2 Hz of one annotation, or None (skipped with a warning) when unusable."""
    values = []
    for dim in ("valence", "arousal"):
        raw = annotation.get(dim)
        if not isinstance(raw, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
            warn(f"{where}: {dim} is not a list of numbers; skipped")
            counts["malformed"] += 1
            return None
        values.append(np.asarray(raw, dtype=np.float64))
    if len(values[0]) != len(values[1]):
        warn(f"{where}: {len(values[0])} valence but {len(values[1])} arousal values; skipped")
        counts["malformed"] += 1
        return None
    va = np.stack(values, axis=1)
    if not np.isfinite(va).all() or np.abs(va).max(initial=0) > 1:
        warn(f"{where}: values are NaN or outside [-1, 1]; skipped")
        counts["out_of_range"] += 1
        return None
    if len(va) > measures:
        counts["extra_values"] += 1
        va = va[:measures]
    touched = np.flatnonzero(np.any(va != 0, axis=1))
    if len(touched) == 0:
        counts["empty"] += 1
        return None
    if touched[-1] + 1 < measures:
        counts["missing_trailing_bins"] += 1
    va = va[: touched[-1] + 1]
    bins = label_bins(seconds, measures)
    bins = bins[bins < len(va)]
    if len(bins) == 0:
        counts["empty"] += 1
        return None
    return va[bins].astype(np.float32)


def mean_curve(song: str, curves: list[np.ndarray], source: str) -> Curve | None:
    """The listeners' mean at each label that at least MEAN_COVERAGE of them reached (their curves can end early)."""
    longest = max(len(c) for c in curves)
    stacked = np.full((len(curves), longest, 2), np.nan)
    for row, curve in enumerate(curves):
        stacked[row, : len(curve)] = curve
    covered = np.isfinite(stacked[:, :, 0]).sum(axis=0)
    keep = int(np.sum(covered >= max(1, MEAN_COVERAGE * len(curves))))  # coverage only falls with time
    if keep == 0:
        return None
    part = stacked[:, :keep]
    return Curve(song, MEAN, 0.0, np.nanmean(part, axis=0), np.nanstd(part, axis=0), source=source)


COUNTED = {  # what annotation_labels counts, as the summary says it
    "extra_values": "annotation(s) carry a value more than the piece's measures: the extra one dropped",
    "missing_trailing_bins": "annotation(s) end with untouched (0, 0) bins: treated as missing",
    "empty": "annotation(s) have no value set: skipped",
    "malformed": "annotation(s) malformed: skipped",
    "out_of_range": "annotation(s) NaN or outside [-1, 1]: skipped",
}


def piece_songs(path: Path, tag: str, pieces: dict, root: Path, *, drop_length_mismatch: bool,
                problems: list[str], mismatched: list[str]) -> dict[str, Song]:
    """The pieces of one annotation file whose MIDI is at hand (and, by default, as long as its annotations)."""
    from pdmer.data.render import midi_seconds

    songs = {}
    for pid, piece in pieces.items():
        song = f"{tag}:{pid}"
        try:
            seconds, measures = float(piece["duration"]), int(piece["measures"])
            midi = root / "midi" / piece["midi"]
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"{path}: piece {pid} lacks duration/measures/midi: {error}") from None
        if seconds <= 0 or measures < 1:
            raise InputError(f"{path}: piece {pid} has duration {seconds} s and {measures} measures")
        if not midi.is_file():
            problems.append(f"{song}: MIDI {midi.name} missing; piece dropped")
            continue
        length = midi_seconds(midi)
        if drop_length_mismatch and length - seconds > LENGTH_TOLERANCE_S:
            mismatched.append(f"{song} ({piece.get('name', '?')}: MIDI {length:.1f} s, annotated {seconds:g} s)")
            continue
        songs[song] = Song(song, None, midi=midi, seconds=seconds,
                           info={"name": piece.get("name", ""), "measures": measures, "midi_seconds": length})
    return songs


def load_vgmidi(root: str | Path, *, drop_length_mismatch: bool = True) -> CurveSet:
    """VGMIDI from its original layout: per-listener curves (listeners by fingerprint), each piece's mean curve, and
    ``split.json``'s splits. Songs carry their MIDI
    (``audio`` is None until :func:`pdmer.data.render.with_rendered_audio`)."""
    root = Path(root)
    if not is_vgmidi(root):
        raise InputError(f"{root} is not a VGMIDI folder: expected annotations/vgmidi_raw_<n>.json in it")
    files = sorted((p for p in (root / "annotations").iterdir() if RAW_FILE.match(p.name)),
                   key=lambda p: int(RAW_FILE.match(p.name).group(1)))
    songs: dict[str, Song] = {}
    per_song: dict[str, list[tuple[str, str, np.ndarray]]] = defaultdict(list)  # song -> (listener, source, va)
    problems: list[str] = []
    counts: dict[str, int] = defaultdict(int)
    mismatched = []
    found = {"pieces": 0, "annotations": 0}
    annotated: dict[str, list[str]] = defaultdict(list)  # fingerprint -> the pieces it annotated
    for path in files:
        tag = f"raw{RAW_FILE.match(path.name).group(1)}"
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            pieces, annotations = document["pieces"], document["annotations"]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
            raise InputError(f"cannot read {path} as VGMIDI annotations ({{pieces, annotations}}): {error}") from None
        found["pieces"] += len(pieces)
        found["annotations"] += len(annotations)
        songs.update(piece_songs(path, tag, pieces, root, drop_length_mismatch=drop_length_mismatch,
                                 problems=problems, mismatched=mismatched))
        for key, annotation in annotations.items():
            pid = key.rsplit("_", 1)[0]
            song = f"{tag}:{pid}"
            if song not in songs:
                continue
            info = songs[song].info
            who = fingerprint(tag, annotation)
            annotated[who].append(song)  # every annotation, usable or not: collisions
            va = annotation_labels(annotation, songs[song].seconds, info["measures"], where=f"{path.name}: {key}",
                                   counts=counts)
            if va is not None:
                per_song[song].append((who, f"{path.name}: {key}", va))
    if mismatched:
        problems.append(f"{len(mismatched)} piece(s) dropped: MIDI longer than the annotated duration by more "
                        f"than {LENGTH_TOLERANCE_S} s: {'; '.join(mismatched)}")
    problems += [f"{counts[name]} {text}" for name, text in COUNTED.items() if counts[name]]

    colliding = {who for who, pieces in annotated.items()
                 if len(pieces) > PIECES_PER_LISTENER or len(set(pieces)) < len(pieces)}
    if colliding:
        problems.append(f"{len(colliding)} fingerprint(s) cover more than {PIECES_PER_LISTENER} annotations (two "
                        "people who answered alike): their curves count in the means but in no listener task")
    curves = []
    for song in sorted(per_song):
        rows = per_song[song]
        mean = mean_curve(song, [va for _, _, va in rows], f"mean of {len(rows)} listeners")
        if mean is not None:
            curves.append(mean)
        curves += [Curve(song, who, 0.0, va, source=source) for who, source, va in rows if who not in colliding]
    unlabelled = sorted(set(songs) - set(per_song))
    if unlabelled:
        problems.append(f"{len(unlabelled)} piece(s) without a usable annotation: {', '.join(unlabelled)}")
        for song in unlabelled:
            del songs[song]
    for problem in problems:
        warn(f"VGMIDI: {problem}")
    return CurveSet("VGMIDI", songs, curves, read_split_file(root / "split.json", songs), problems=problems,
                    found=found)
