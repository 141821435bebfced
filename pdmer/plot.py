"""PNG plots of V-A curves: valence and arousal over time, the song's loudness under them (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pdmer.fileio import atomic_path

LOUDNESS_FRAME_SECONDS = 0.1


def loudness_db(waveform: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(times [F] s, RMS level [F] in dBFS) over frames of LOUDNESS_FRAME_SECONDS."""
    frame = max(1, int(rate * LOUDNESS_FRAME_SECONDS))
    count = len(waveform) // frame
    frames = np.asarray(waveform[: count * frame], np.float64).reshape(count, frame)
    rms = np.sqrt((frames**2).mean(axis=1))
    return np.arange(count) * LOUDNESS_FRAME_SECONDS, 20 * np.log10(np.maximum(rms, 1e-6))


def plot_prediction(path: str | Path, prediction, waveform: np.ndarray, rate: int, *, title: str) -> Path:
    """Write a PNG: V-A curves of ``prediction`` (a SongPrediction) over the song's loudness, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (curves, level) = pyplot.subplots(2, 1, figsize=(10, 5.5), sharex=True,
                                              gridspec_kw={"height_ratios": [3, 1]})
    for column, (name, colour) in enumerate((("valence", "tab:blue"), ("arousal", "tab:red"))):
        curves.plot(prediction.times, prediction.va[:, column], color=colour, label=name)
    curves.axhline(0.0, color="grey", linewidth=0.6)
    curves.set_ylim(-1, 1)
    curves.set_ylabel("valence / arousal (-1 .. 1)")
    curves.legend(loc="upper right")
    curves.grid(alpha=0.3)
    curves.set_title(title)
    times, db = loudness_db(waveform, rate)
    level.fill_between(times, db, db.min(), color="grey", alpha=0.5, label="loudness")
    level.set_ylabel("level (dBFS)")
    level.set_xlabel("time (s)")
    level.legend(loc="upper right")
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    pyplot.close(figure)
    return path
