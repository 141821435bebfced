"""How well could a model know a song's valence level from its global windows, if the windows told it the song's
cues exactly? The best case for any global encoder, per window placement, on the synthetic benchmark.

A one-song profile can only carry a listener's offset to their other songs while the model's error on song levels is
small (``synth_personalization_ceiling.py``: about 0.1 or less). On this benchmark a song's consensus level is a
linear function of its mean cues (``pdmer.data.synth.listeners.level``). Here each step's "global vector" is the
exact mean cue vector of its window, the windows are those a model is given (``GlobalWindows``: trailing or centred,
refreshed every 2.5 s), and a least-squares fit on the train songs maps the song's mean vector to its level. The
song-level RMSE on the val and test songs is then what no encoder can beat with those windows. A trailing window
has not heard the song's later sections yet, so the curve's level, which they set, stays partly unknown.

    python benchmarks/synth_window_ceiling.py --seed 0 --n-train-songs 200 [--seconds 30 60]
"""

from __future__ import annotations

import argparse

import numpy as np

from pdmer.data.curves import STEP_SECONDS
from pdmer.data.features import GlobalWindows
from pdmer.data.synth.benchmark import generate
from pdmer.data.synth.listeners import level


def song_vectors(cues: np.ndarray, windows: GlobalWindows) -> np.ndarray:
    """Mean over the song's steps of each step's window mean of the cues (what a per-step global vector averages)."""
    steps, duration = len(cues), len(cues) * STEP_SECONDS
    rows = []
    for step in range(steps):
        start, end = windows.window(step, duration)
        first = round(start / STEP_SECONDS)
        rows.append(cues[first : max(round(end / STEP_SECONDS), first + 1)].mean(0))
    return np.mean(rows, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train-songs", type=int, default=200)
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 60.0], help="window lengths")
    args = parser.parse_args()

    benchmark = generate(args.seed, n_train_songs=args.n_train_songs, n_train_listeners=80)
    splits = {name: benchmark.splits[name]["songs"] for name in ("train", "val", "test")}
    levels = {song.id: level(song.cues) for song in benchmark.songs}
    held_out = splits["val"] + splits["test"]
    spread = np.std([levels[s] for s in held_out], axis=0)
    print(f"pdmer synth --seed {args.seed} --n-train-songs {args.n_train_songs}: {len(splits['train'])} train songs, "
          f"{len(held_out)} val + test songs; song-level SD of the consensus {spread[0]:.3f} / {spread[1]:.3f}")
    print("song-level RMSE (valence / arousal) of a least-squares fit from exact window cues:\n")
    print("| windows | seconds | valence | arousal |\n|---|---|---|---|")
    for placement in ("trailing", "centred"):
        for seconds in args.seconds:
            windows = GlobalWindows(placement=placement, seconds=seconds)
            vectors = {song.id: np.r_[song_vectors(song.cues, windows), 1.0] for song in benchmark.songs}
            x = np.array([vectors[s] for s in splits["train"]])
            y = np.array([levels[s] for s in splits["train"]])
            weights = np.linalg.lstsq(x, y, rcond=None)[0]
            errors = np.array([vectors[s] @ weights - levels[s] for s in held_out])
            rmse = np.sqrt((errors**2).mean(0))
            print(f"| {placement} | {seconds:g} | {rmse[0]:.3f} | {rmse[1]:.3f} |")


if __name__ == "__main__":
    main()
