"""PNG plots of V-A curves (``pdmer predict --plot``): valence and arousal over time, one line per listener profile,
the ground truth dashed when there is one, and the song's loudness under them (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pdmer.fileio import atomic_path

LOUDNESS_FRAME_SECONDS = 0.1
PROFILE_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


def loudness_db(waveform: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(times [F] s, RMS level [F] in dBFS) over frames of LOUDNESS_FRAME_SECONDS."""
    frame = max(1, int(rate * LOUDNESS_FRAME_SECONDS))
    count = len(waveform) // frame
    frames = np.asarray(waveform[: count * frame], np.float64).reshape(count, frame)
    rms = np.sqrt((frames**2).mean(axis=1))
    return np.arange(count) * LOUDNESS_FRAME_SECONDS, 20 * np.log10(np.maximum(rms, 1e-6))


def curves_figure(curves: dict, waveform: np.ndarray, rate: int, *, song: str, model: str,
                  truth: tuple[np.ndarray, np.ndarray, str] | None = None):
    """The figure: ``curves`` maps a profile name to its SongPrediction; ``truth`` is (times, [N, 2] values, label)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (valence, arousal, level) = pyplot.subplots(
        3, 1, figsize=(11, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 3, 1.4]})
    for column, (axes, name) in enumerate(((valence, "valence"), (arousal, "arousal"))):
        for (profile, prediction), colour in zip(curves.items(), PROFILE_COLOURS):
            axes.plot(prediction.times, prediction.va[:, column], color=colour, linewidth=1.6,
                      label=f"profile {profile}" + (" (the base model)" if profile == "default" else ""))
        if truth is not None:
            times, values, label = truth
            axes.plot(times, values[:, column], color="black", linestyle="--", linewidth=1.3, label=label)
        axes.axhline(0.0, color="grey", linewidth=0.6)
        axes.set_ylim(-1.05, 1.05)
        axes.set_ylabel(f"{name} (-1 .. 1)")
        axes.grid(alpha=0.3)
    valence.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False, title="curves")
    times, db = loudness_db(waveform, rate)
    level.fill_between(times, db, db.min(), color="grey", alpha=0.5, label="loudness (RMS)")
    level.set_ylabel("level (dBFS)")
    level.set_xlabel("time (s)")
    level.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
    level.set_xlim(0, max(len(waveform) / rate, float(times[-1]) if len(times) else 0.0))
    names = ", ".join(curves)
    heard = f"as profile {names} hears it" if len(curves) == 1 else f"as profiles {names} hear it"
    figure.suptitle(f"{song}: valence and arousal {heard}\nmodel {model}, one value per 0.5 s", fontsize=12)
    figure.tight_layout()
    return figure


def plot_curves(path: str | Path, curves: dict, waveform: np.ndarray, rate: int, *, song: str, model: str,
                truth: tuple[np.ndarray, np.ndarray, str] | None = None) -> Path:
    """Write the figure of :func:`curves_figure` as a PNG, atomically."""
    from matplotlib import pyplot

    figure = curves_figure(curves, waveform, rate, song=song, model=model, truth=truth)
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    pyplot.close(figure)
    return path
