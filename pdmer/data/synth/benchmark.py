"""A whole synthetic per-listener benchmark: songs, listeners, their curves, splits, calibration; written to disk.

Splits: train listeners each label ``songs_per_train_listener`` train songs (balanced, so every train song gets
about the same number of listeners); val and test listeners are held out and each labels every val (test) song,
so held-out listeners are unseen listeners on unseen songs. Ids: songs "s001", ... (train, then val, then test),
listeners "L01", ... in the same order. Every song and listener has its own generator derived from (seed, kind,
index), so a song does not change when the sizes of other splits do.

The written dataset (plain format, ``pdmer.data.plain``) holds only the listeners' curves; its "mean" label is the
mean over a song's listeners, as DEAM's averaged curves are the mean over raters. The consensus curve (the
population's mean listener, ``listeners.CONSENSUS``) is not written: ``Benchmark.consensus`` gives it, and
``baseline_scores`` compares it, as a predictor, with the oracle that knows each listener's mapping.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pdmer.data.curves import Curve
from pdmer.data.synth import listeners as rules
from pdmer.data.synth.listeners import CONSENSUS, DIMENSIONS, Listener, consensus_curve, draw_listener, listener_curve
from pdmer.data.synth.music import CUE_NAMES, RATE, SynthSong, compose, render
from pdmer.errors import InputError

GENERATOR_VERSION = 1  # bump when any rule changes what a seed generates
MIN_SONGS_PER_LISTENER = 16  # one-shot adaptation needs support songs and query songs per listener
SPLITS = ("train", "val", "test")
SONG, LISTENER, NOISE, ASSIGN = range(4)  # generator streams

# Statistics of DEAM's averaged dynamic annotations ("annotations averaged per song/dynamic (per second
# annotations)/{valence,arousal}.csv", the 1744 45 s clips with id <= 2000, 60 labels each from 15 s, scale [-1, 1]),
# computed with curve_statistics() on each clip's curve; tests/test_synth.py recomputes them from ../shared.
DEAM = {
    "valence": {"mean_of_means": 0.1004, "std_of_means": 0.2326, "median_std": 0.0265, "median_range": 0.1030,
                "median_lag1": 0.9029, "median_diff_lag1": 0.1542},
    "arousal": {"mean_of_means": 0.1391, "std_of_means": 0.2814, "median_std": 0.0292, "median_range": 0.1123,
                "median_lag1": 0.9133, "median_diff_lag1": 0.1904},
}
# How close the default benchmark's mean-over-listeners curves come to DEAM (checked by the tests): the mean of song
# means within TOLERANCE_MEAN (it moves with the few listeners' offsets: 0.05-0.16 valence, 0.08-0.23 arousal over
# seeds 0-19), the spread of song means within TOLERANCE_SPREAD, the median within-song std within a factor
# TOLERANCE_FACTOR. The smoothness figures are not calibrated (see calibration_report).
TOLERANCE_MEAN, TOLERANCE_SPREAD, TOLERANCE_FACTOR = 0.1, 0.06, 1.6


@dataclass
class Benchmark:
    seed: int
    sizes: dict[str, int | float]
    songs: list[SynthSong]
    listeners: list[Listener]
    curves: list[Curve]
    splits: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    bias_sd: float = rules.BIAS_SD  # spread of the listeners' offsets

    def song(self, song_id: str) -> SynthSong:
        return self.index[song_id]

    def listener(self, listener_id: str) -> Listener:
        return self.index[listener_id]

    @functools.cached_property
    def index(self) -> dict:
        return {item.id: item for item in [*self.songs, *self.listeners]}  # ids "s..." and "L..." never clash

    def consensus(self, song_id: str) -> np.ndarray:
        """[T, 2] the song's consensus curve (not part of the written dataset)."""
        return consensus_curve(self.song(song_id).cues)

    def oracle(self, curve: Curve) -> np.ndarray:
        """[T, 2] the noise-free curve of ``curve``'s listener for its song."""
        return listener_curve(self.listener(curve.listener), self.song(curve.song).cues)

    def mean_curves(self) -> dict[str, np.ndarray]:
        """Song id -> [T, 2] mean of its listeners' curves (what loaders give as the "mean" label)."""
        per_song: dict[str, list[np.ndarray]] = {}
        for curve in self.curves:
            per_song.setdefault(curve.song, []).append(curve.va)
        return {song: np.mean(curves, axis=0) for song, curves in per_song.items()}


def count(name: str, value, minimum: int = 0) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise InputError(f"{name} must be a whole number, got {value!r}") from None
    if value < minimum:
        raise InputError(f"{name} must be at least {minimum}, got {value}")
    return value


def check_sizes(sizes: dict) -> None:
    """Reject sizes that would give a listener fewer than 16 songs, songs nobody labels, or too short songs."""
    seconds = sizes["song_seconds"]
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 12.0 <= seconds <= 600.0 \
            or abs(seconds * 2 - round(seconds * 2)) > 1e-9:
        raise InputError(f"song_seconds must be a multiple of 0.5 between 12 and 600, got {seconds!r}")
    per_listener = sizes["songs_per_train_listener"]
    if per_listener < MIN_SONGS_PER_LISTENER:
        raise InputError(f"songs_per_train_listener is {per_listener}; each listener must label at least "
                         f"{MIN_SONGS_PER_LISTENER} songs")
    if sizes["n_train_songs"] < per_listener:
        raise InputError(f"n_train_songs ({sizes['n_train_songs']}) is below songs_per_train_listener "
                         f"({per_listener}); raise n_train_songs or lower songs_per_train_listener")
    if sizes["n_train_listeners"] < 1:
        raise InputError("n_train_listeners must be at least 1")
    if sizes["n_train_listeners"] * per_listener < sizes["n_train_songs"]:
        raise InputError(f"{sizes['n_train_listeners']} train listeners x {per_listener} songs cannot cover "
                         f"{sizes['n_train_songs']} train songs; raise n_train_listeners or songs_per_train_listener")
    for split in ("val", "test"):
        songs, listeners = sizes[f"n_{split}_songs"], sizes[f"n_{split}_listeners"]
        if (songs == 0) != (listeners == 0):
            raise InputError(f"n_{split}_songs is {songs} and n_{split}_listeners is {listeners}; give both or "
                             f"neither (a held-out listener labels every {split} song)")
        if 0 < songs < MIN_SONGS_PER_LISTENER:
            raise InputError(f"n_{split}_songs is {songs}; each {split} listener labels every {split} song and must "
                             f"label at least {MIN_SONGS_PER_LISTENER}: use 0 or >= {MIN_SONGS_PER_LISTENER}")


def assign(rng: np.random.Generator, n_songs: int, n_listeners: int, per_listener: int) -> list[np.ndarray]:
    """Songs (indices) of each listener: the least-labelled songs first, ties at random, so counts stay balanced."""
    counts = np.zeros(n_songs, dtype=int)
    chosen = []
    for _ in range(n_listeners):
        songs = np.lexsort((rng.random(n_songs), counts))[:per_listener]
        counts[songs] += 1
        chosen.append(np.sort(songs))
    return chosen


def generate(seed: int = 0, *, n_train_songs: int = 40, n_val_songs: int = 16, n_test_songs: int = 16,
             n_train_listeners: int = 16, n_val_listeners: int = 4, n_test_listeners: int = 6,
             songs_per_train_listener: int = 20, song_seconds: float = 45.0, bias_sd: float = rules.BIAS_SD) -> Benchmark:
    """The benchmark of ``seed``; audio is rendered lazily, on first use of ``song.waveform``.

    Train listeners label ``songs_per_train_listener`` (>= 16) of the train songs; a val (test) split is either
    absent (0 songs, 0 listeners) or has >= 16 songs, each labelled by every one of its >= 1 listeners.
    ``bias_sd`` is the spread of listeners' offsets; only the default keeps the DEAM calibration."""
    seed = count("seed", seed)
    sizes = {name: count(name, value) for name, value in dict(
        n_train_songs=n_train_songs, n_val_songs=n_val_songs, n_test_songs=n_test_songs,
        n_train_listeners=n_train_listeners, n_val_listeners=n_val_listeners, n_test_listeners=n_test_listeners,
        songs_per_train_listener=songs_per_train_listener).items()}
    sizes["song_seconds"] = song_seconds
    check_sizes(sizes)
    if not 0.0 <= bias_sd <= 1.0:
        raise InputError(f"bias_sd must be within 0..1 (the curves' scale), got {bias_sd}")
    song_seconds = sizes["song_seconds"] = float(song_seconds)

    songs, listeners, curves, splits = [], [], [], {}
    for split in SPLITS:
        n_songs, n_listeners = sizes[f"n_{split}_songs"], sizes[f"n_{split}_listeners"]
        if n_songs == 0:
            continue
        first_song, first_listener = len(songs), len(listeners)
        songs += [SynthSong(f"s{i + 1:03d}", compose(np.random.default_rng([seed, SONG, i]), song_seconds))
                  for i in range(first_song, first_song + n_songs)]
        listeners += [draw_listener(np.random.default_rng([seed, LISTENER, i]), f"L{i + 1:02d}", bias_sd)
                      for i in range(first_listener, first_listener + n_listeners)]
        if split == "train":
            labelled = assign(np.random.default_rng([seed, ASSIGN]), n_songs, n_listeners, songs_per_train_listener)
        else:
            labelled = [np.arange(n_songs)] * n_listeners
        for k, chosen in enumerate(labelled):
            who = first_listener + k
            for j in chosen:
                song = songs[first_song + j]
                noise = np.random.default_rng([seed, NOISE, who, first_song + j])
                curves.append(Curve(song.id, listeners[who].id, 0.0, listener_curve(listeners[who], song.cues, noise),
                                    source=f"synthetic seed {seed}, {listeners[who].id}/{song.id}"))
        splits[split] = {"songs": [s.id for s in songs[first_song:]],
                         "listeners": [w.id for w in listeners[first_listener:]]}
    return Benchmark(seed, sizes, songs, listeners, curves, splits, float(bias_sd))


def ccc(pred: np.ndarray, target: np.ndarray) -> float:
    """Lin's concordance correlation coefficient of two 1-d sequences (pdmer.metrics.ccc's formula, in numpy)."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    den = pred.var() + target.var() + (pred.mean() - target.mean()) ** 2
    return 1.0 if den == 0 else float(2 * ((pred - pred.mean()) * (target - target.mean())).mean() / den)


def lag1(x: np.ndarray) -> float:
    x = x - x.mean()
    den = (x * x).sum()
    return float((x[1:] * x[:-1]).sum() / den) if den > 0 else float("nan")


def curve_statistics(curves: list[np.ndarray]) -> dict[str, float]:
    """DEAM-style figures of 1-d curves (one per song): mean and std across songs of the song means, median
    within-song std and range, median lag-1 autocorrelation of the values and of their step differences."""
    means = np.array([c.mean() for c in curves])
    return {
        "mean_of_means": float(means.mean()), "std_of_means": float(means.std()),
        "median_std": float(np.median([c.std() for c in curves])),
        "median_range": float(np.median([np.ptp(c) for c in curves])),
        "median_lag1": float(np.nanmedian([lag1(c) for c in curves])),
        "median_diff_lag1": float(np.nanmedian([lag1(np.diff(c)) for c in curves])),
    }


def calibration_report(benchmark: Benchmark) -> dict:
    """Per dimension: DEAM's figures, the benchmark's mean-over-listeners curves' (what is calibrated: the mean and
    spread of song means and the within-song std), the consensus curves' and single listeners' (for reference).
    Synthetic curves are smoother than DEAM's (lag-1 autocorrelations higher): their changes are smoothed steps at
    section boundaries, with little step-to-step jitter."""
    means = benchmark.mean_curves()
    consensus = [benchmark.consensus(s.id) for s in benchmark.songs]
    report = {}
    for d, name in enumerate(DIMENSIONS):
        report[name] = {
            "deam": DEAM[name],
            "mean_over_listeners": curve_statistics([m[:, d] for m in means.values()]),
            "consensus": curve_statistics([c[:, d] for c in consensus]),
            "single_listeners": curve_statistics([c.va[:, d] for c in benchmark.curves]),
        }
        report[name]["within_tolerance"] = within_tolerance(report[name]["mean_over_listeners"], DEAM[name])
    return report


def within_tolerance(synthetic: dict, deam: dict) -> bool:
    return (abs(synthetic["mean_of_means"] - deam["mean_of_means"]) <= TOLERANCE_MEAN
            and abs(synthetic["std_of_means"] - deam["std_of_means"]) <= TOLERANCE_SPREAD
            and 1 / TOLERANCE_FACTOR <= synthetic["median_std"] / deam["median_std"] <= TOLERANCE_FACTOR)


def baseline_scores(benchmark: Benchmark) -> dict:
    """Mean CCC over (listener, song) curves, per dimension, of predictors of a listener's curve: the oracle (their
    noise-free curve: the ceiling), the consensus curve (what a model of the average listener predicts), and the
    consensus moved onto the listener's own mean for the song (what is left is disagreement on the dynamics)."""
    scores = {"oracle": [], "consensus": [], "consensus_offset": []}
    for curve in benchmark.curves:
        target = curve.va.astype(np.float64)
        consensus = benchmark.consensus(curve.song)
        shifted = consensus - consensus.mean(0) + target.mean(0)
        for predictor, pred in (("oracle", benchmark.oracle(curve)), ("consensus", consensus),
                                ("consensus_offset", shifted)):
            scores[predictor].append([ccc(pred[:, d], target[:, d]) for d in range(2)])
    return {predictor: dict(zip(DIMENSIONS, np.mean(values, axis=0).round(4).tolist()))
            for predictor, values in scores.items()}


class RenderedAudio(Mapping):
    """Song id -> (waveform, rate), rendered when write_plain reads it and then dropped: one song in memory."""

    def __init__(self, songs: list[SynthSong]):
        self.songs = {song.id: song for song in songs}

    def __getitem__(self, song_id: str) -> tuple[np.ndarray, int]:
        song = self.songs[song_id]
        return render(song.score, song.rate), song.rate

    def __iter__(self):
        return iter(self.songs)

    def __len__(self) -> int:
        return len(self.songs)


def make_benchmark(root: str | Path, seed: int = 0, *, overwrite: bool = False, **sizes) -> Path:
    """Generate the benchmark of ``seed`` (sizes as in ``generate``) and write it in the plain format at ``root``;
    dataset.json's "synth" entry describes how it was made (generator, sizes, mappings, scores, calibration)."""
    from pdmer.data.plain import write_plain

    benchmark = generate(seed, **sizes)
    extra = {"synth": {
        "generator": "pdmer.data.synth", "version": GENERATOR_VERSION, "seed": benchmark.seed,
        "sizes": benchmark.sizes, "bias_sd": benchmark.bias_sd, "rate": RATE, "cue_names": list(CUE_NAMES),
        "listeners": {w.id: w.to_dict() for w in benchmark.listeners},
        "consensus": {"description": "the population's mean listener (not written as a listener)",
                      **CONSENSUS.to_dict()},
        "scales": {name.lower(): getattr(rules, name) for name in (  # the calibrated formula of listeners.py
            "LEVEL_MEAN", "LEVEL_SCALE", "DYNAMICS_SCALE", "SMOOTH_SECONDS", "NOISE_SD", "NOISE_AR")},
        "songs": {s.id: [section.describe() for section in s.score.sections] for s in benchmark.songs},
        "baselines_ccc": baseline_scores(benchmark),
        "calibration": calibration_report(benchmark),
    }}
    return write_plain(root, benchmark.curves, RenderedAudio(benchmark.songs),
                       name=f"pdmer-synth-seed{benchmark.seed}", splits=benchmark.splits, extra=extra,
                       overwrite=overwrite)
