"""``pdmer data DIR``: what a dataset holds and what its loader found wrong, as one dictionary (printed or JSON)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from pdmer.data.curves import MEAN, CurveSet


def spread(values) -> dict[str, float] | None:
    values = sorted(values)
    if not values:
        return None
    return {"min": round(float(values[0]), 3), "median": round(float(values[len(values) // 2]), 3),
            "max": round(float(values[-1]), 3)}


def split_summary(part: CurveSet) -> dict:
    out = {"songs": len(part.songs)}
    if part.curves:
        out["listeners_with_2_songs"] = len(part.by_listener(min_songs=2))
    if part.quadrants:
        out["quadrants"] = dict(sorted(Counter(part.quadrants.values()).items()))
    return out


def summarise(dataset: CurveSet, *, durations: bool = True) -> dict:
    """Counts, listeners (with 2+ songs, and with 2+ songs inside each split), durations, label ranges, splits and
    every problem the loader reported. ``durations``: read MIDI lengths where the dataset does not state them."""
    tasks = dataset.by_listener()
    listener_curves = [c for c in dataset.curves if c.listener != MEAN]
    summary = {
        "name": dataset.name,
        **{f"found_{what}": count for what, count in dataset.found.items()},  # before the loader dropped any
        "songs": len(dataset.songs),
        "songs_with_audio": sum(s.audio is not None for s in dataset.songs.values()),
        "songs_as_midi": sum(s.midi is not None for s in dataset.songs.values()),
        "curves": len(dataset.curves),
        "listener_curves": len(listener_curves),
        "listeners": len(tasks),
        "listeners_with_2_songs": sum(len(c) >= 2 for c in tasks.values()),
        "listeners_with_16_songs": sum(len(c) >= 16 for c in tasks.values()),
    }
    if dataset.curves:
        labels = [len(c.va) for c in dataset.curves]
        summary["labels_per_curve"] = {"min": min(labels), "median": sorted(labels)[len(labels) // 2],
                                       "max": max(labels)}
        values = np.concatenate([c.va for c in dataset.curves])
        summary["label_range"] = {dim: [round(float(values[:, i].min()), 3), round(float(values[:, i].max()), 3)]
                                  for i, dim in enumerate(("valence", "arousal"))}
    if dataset.quadrants:
        summary["quadrants"] = dict(sorted(Counter(dataset.quadrants.values()).items()))
        songs_of = {s.info.get("song") for s in dataset.songs.values() if s.info.get("song")}
        if songs_of:
            summary["source_songs"] = len(songs_of)  # EMOPIA: clips come from songs
    if durations:
        summary["seconds"] = spread(song_seconds(dataset))
    summary["splits"] = {name: split_summary(dataset.split(name)) for name in dataset.splits}
    summary["problems"] = list(dataset.problems)
    return summary


def song_seconds(dataset: CurveSet) -> list[float]:
    """Each song's duration: the annotated one (VGMIDI), else the MIDI's, else the audio file's."""
    import soundfile

    from pdmer.data.render import midi_seconds
    from pdmer.errors import InputError

    seconds = []
    for song in dataset.songs.values():
        try:
            if song.seconds is not None:
                seconds.append(song.seconds)
            elif song.midi is not None:
                seconds.append(midi_seconds(song.midi))
            elif song.audio is not None:
                seconds.append(soundfile.info(str(song.audio)).duration)
        except (InputError, RuntimeError, soundfile.LibsndfileError):
            continue  # unreadable files are reported where they are used
    return seconds
