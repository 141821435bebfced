"""How well can a song's overall level be predicted from its global features? A linear probe on the synthetic
benchmark, to read the personalization results against.

One-shot adaptation on one song can correct a listener's offset (on the synthetic benchmark: N(0, 0.12) per
dimension). It also copies the model's error on that song's level onto every other song. So it can only help
where the model's error on song levels is below the listener offsets. This probe fits ridge regressions from
each train song's mean global vector (the vectors a model is given: --placement and --seconds) to its mean label,
then prints the RMSE on the test songs for several penalties, beside the constant (training mean) predictor.

    python benchmarks/synth_level_probe.py --data /tmp/synth --cache CACHE [--encoder descriptors] [--model CKPT]

With --model, the same is measured for a trained model, on the test split's listener curves (what a profile is
scored on): the RMS of its error on each curve's level (mean), and how it follows the curve within the song (PCC,
and the standard deviation of its prediction beside the curve's).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def song_vector(dataset, cache, song_id: str) -> np.ndarray:
    """The song's mean global vector: what these probes regress from."""
    return cache.song(dataset.songs[song_id].audio).global_feat.mean(0).numpy()


def table(dataset, cache, split: str):
    curves = dataset.split(split).mean_curves()
    return (np.array([song_vector(dataset, cache, curve.song) for curve in curves]),
            np.array([curve.va.mean(0) for curve in curves]))


def ridge(x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray, penalty: float) -> np.ndarray:
    """Predictions for ``x_eval`` of a ridge regression on features standardised with the train statistics."""
    mean, scale = x_train.mean(0), x_train.std(0) + 1e-6
    a, b = (x_train - mean) / scale, (x_eval - mean) / scale
    weights = np.linalg.solve(a.T @ a + penalty * np.eye(a.shape[1]), a.T @ (y_train - y_train.mean(0)))
    return b @ weights + y_train.mean(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path, help="feature cache folder (default: the user cache)")
    parser.add_argument("--encoder", default="musicnn", choices=("musicnn", "descriptors"))
    parser.add_argument("--placement", default="trailing", choices=("trailing", "centred"),
                        help="global windows: trailing (causal, the stream's) or centred (the authors' test path)")
    parser.add_argument("--seconds", type=float, default=30.0, help="global window length (default: the authors' 30)")
    parser.add_argument("--cues", action="store_true", help="also: how much of each cue's song mean the features "
                        "carry (ridge R² on the val and test songs)")
    parser.add_argument("--model", type=Path, help="also measure this checkpoint's errors on the test curves")
    args = parser.parse_args()

    from pdmer.data.features import FeatureCache, GlobalWindows
    from pdmer.data.load import load_dataset
    from pdmer.model.encoders import load_global_encoder

    dataset = load_dataset(args.data)
    cache = FeatureCache(load_global_encoder(args.encoder), root=args.cache,
                         windows=GlobalWindows(placement=args.placement, seconds=args.seconds))
    x_train, y_train = table(dataset, cache, "train")
    x_test, y_test = table(dataset, cache, "test")
    constant = np.sqrt(((y_train.mean(0) - y_test) ** 2).mean(0))
    print(f"{args.data.name}, {args.encoder}, {args.placement} {args.seconds:g} s windows: {len(x_train)} train "
          f"songs, {len(x_test)} test songs; song-level RMSE (valence, arousal)")
    print(f"  training mean        {constant[0]:.3f}  {constant[1]:.3f}")
    for penalty in (1.0, 10.0, 100.0, 1000.0):
        rmse = np.sqrt(((ridge(x_train, y_train, x_test, penalty) - y_test) ** 2).mean(0))
        print(f"  ridge, penalty {penalty:<6g}{rmse[0]:.3f}  {rmse[1]:.3f}")
    if args.cues:
        cue_shares(args.data, dataset, cache)
    if args.model:
        model_errors(args.model, dataset, args.cache)


def cue_shares(root: Path, dataset, cache) -> None:
    """Ridge (penalty 10, standardised features) from a song's mean global vector to the mean of each of its cues,
    fitted on the train songs; R² on the val and test songs. The cues come from regenerating the benchmark."""
    import json

    from pdmer.data.synth.benchmark import generate
    from pdmer.data.synth.music import CUE_NAMES

    described = json.loads((root / "dataset.json").read_text())["synth"]
    cues = {song.id: song.cues.mean(0) for song in generate(described["seed"], **described["sizes"]).songs}

    def rows(splits):
        ids = [song for split in splits for song in dataset.split(split).songs]
        x = np.array([song_vector(dataset, cache, song) for song in ids])
        return x, np.array([cues[song] for song in ids])

    x_train, y_train = rows(["train"])
    x_held, y_held = rows(["val", "test"])
    residual = ((ridge(x_train, y_train, x_held, 10.0) - y_held) ** 2).mean(0)
    r2 = 1 - residual / y_held.var(0)
    print(f"share of each cue's song mean explained on {len(y_held)} val + test songs (ridge R², penalty 10)")
    print("  " + "  ".join(f"{name} {value:.2f}" for name, value in zip(CUE_NAMES, r2)))


def model_errors(path: Path, dataset, cache_dir) -> None:
    from pdmer.evaluate.run import model_predictor

    split = dataset.split("test")
    predictor = model_predictor(path, split, cache_dir=cache_dir)
    rows = []  # per curve and dimension: level error, PCC, prediction SD, curve SD
    for curve in split.curves:
        predicted = predictor.predict(curve)
        target = curve.va[: len(predicted)]
        rows.append([[predicted[:, d].mean() - target[:, d].mean(), np.corrcoef(predicted[:, d], target[:, d])[0, 1],
                      predicted[:, d].std(), target[:, d].std()] for d in range(2)])
    rows = np.array(rows)
    print(f"{path} on {len(rows)} test curves (valence, arousal)")
    print(f"  level error RMS      {np.sqrt((rows[:, 0, 0] ** 2).mean()):.3f}  {np.sqrt((rows[:, 1, 0] ** 2).mean()):.3f}")
    print(f"  within-song PCC      {np.nanmean(rows[:, 0, 1]):.3f}  {np.nanmean(rows[:, 1, 1]):.3f}")
    print(f"  prediction SD        {rows[:, 0, 2].mean():.3f}  {rows[:, 1, 2].mean():.3f}")
    print(f"  curve SD             {rows[:, 0, 3].mean():.3f}  {rows[:, 1, 3].mean():.3f}")


if __name__ == "__main__":
    main()
