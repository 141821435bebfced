"""What can one song of a listener teach a model, at best? A simulation on the synthetic benchmark's own rules.

No model is trained: the predictor is the benchmark's consensus curve of each song (what a perfect model of the
average listener predicts), spoiled the way real models are spoiled, by a per-song error on the song's level
(Gaussian, SD ``--level-errors``; the same error for every listener, since it is the model's error on that song;
averaged over ``--repeats`` draws)
and optionally by an amplitude (``--amplitudes``: 1 = the consensus's own within-song movement). Personalization
is the best case of what a profile from one song can learn without the listener's mapping: a share k of the
offset between the listener's support curve and the prediction for it, added to every prediction for them.

Two protocols, scored like ``pdmer eval --task pdmer``: CCC per (listener, song), averaged per listener, then
over the test split's listeners:
- ``song``: support = one whole song, scored on the listener's OTHER songs (the profiles Must-show);
- ``frames``: support = the first 60 labels of each song, scored on the rest of that song (the authors' protocol).

    python benchmarks/synth_personalization_ceiling.py --seed 0 --n-train-songs 200 --n-train-listeners 80 \\
        --n-val-listeners 24 --n-test-listeners 40

The sizes must be those the benchmark was generated with (``pdmer synth``'s options); only the test split is used.
"""

from __future__ import annotations

import argparse

import numpy as np

from pdmer.data.synth.benchmark import ccc, generate

SUPPORT_FRAMES = 60  # pdmer.evaluate.tasks.SUPPORT_FRAMES


def per_listener_ccc(curves_by_listener, predictions, share: float, protocol: str) -> np.ndarray:
    """[2] mean over listeners of their mean CCC after moving the predictions by ``share`` of the support offset."""
    per_listener = []
    for curves in curves_by_listener.values():
        scores = []
        if protocol == "song":
            support = curves[0]
            offset = share * (support.va.mean(0) - predictions[support.song].mean(0))
            for curve in curves[1:]:
                scores.append([ccc(predictions[curve.song][:, d] + offset[d], curve.va[:, d]) for d in range(2)])
        else:
            for curve in curves:
                predicted, target = predictions[curve.song], curve.va
                offset = share * (target[:SUPPORT_FRAMES].mean(0) - predicted[:SUPPORT_FRAMES].mean(0))
                scores.append([ccc(predicted[SUPPORT_FRAMES:, d] + offset[d], target[SUPPORT_FRAMES:, d])
                               for d in range(2)])
        per_listener.append(np.mean(scores, axis=0))
    return np.mean(per_listener, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    for size in ("n-train-songs", "n-train-listeners", "n-val-listeners", "n-test-listeners"):
        parser.add_argument(f"--{size}", type=int)
    parser.add_argument("--level-errors", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.15, 0.2, 0.25])
    parser.add_argument("--amplitudes", type=float, nargs="+", default=[1.0, 0.3])
    parser.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.25, 0.5, 1.0])
    parser.add_argument("--repeats", type=int, default=20, help="draws of the level errors, averaged (16 test "
                        "songs make one draw noisy)")
    parser.add_argument("--error-seed", type=int, default=0)
    args = parser.parse_args()

    sizes = {key: value for key, value in vars(args).items() if key.startswith("n_") and value is not None}
    benchmark = generate(args.seed, **sizes)
    test = benchmark.splits["test"]
    by_listener: dict = {}
    for curve in benchmark.curves:
        if curve.listener in test["listeners"]:
            by_listener.setdefault(curve.listener, []).append(curve)
    consensus = {song: benchmark.consensus(song) for song in test["songs"]}
    rng = np.random.default_rng(args.error_seed)

    print(f"pdmer synth --seed {args.seed} {sizes}: {len(by_listener)} test listeners, {len(consensus)} test songs")
    print("CCC valence / arousal; k = share of the support offset a profile applies (k = 0: no profile)\n")
    header = " | ".join(f"k={share:g}" for share in args.shares)
    for protocol in ("song", "frames"):
        print(f"protocol {protocol}\n\n| amplitude | level error SD | {header} |\n|---|---|" + "---|" * len(args.shares))
        for amplitude in args.amplitudes:
            for error in args.level_errors:
                cells = np.zeros((len(args.shares), 2))
                for _ in range(args.repeats):
                    predictions = {song: amplitude * (curve - curve.mean(0)) + curve.mean(0)
                                   + rng.normal(0.0, error, 2) for song, curve in consensus.items()}
                    cells += [per_listener_ccc(by_listener, predictions, share, protocol) for share in args.shares]
                cells /= args.repeats
                print(f"| {amplitude:g} | {error:g} | " + " | ".join(f"{v:.3f} / {a:.3f}" for v, a in cells) + " |")
        print()


if __name__ == "__main__":
    main()
