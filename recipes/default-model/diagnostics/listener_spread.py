"""Which of a listener's habits carries from one VGMIDI piece to their other: their offset, or their spread?

    python recipes/default-model/diagnostics/listener_spread.py                      # train listeners, no model
    python recipes/default-model/diagnostics/listener_spread.py --model CKPT --split val --cache CACHE

Each listener rated two pieces. From one (the support) take the listener's offset from the prediction
(mean(listener - prediction)) and their spread relative to it (std(listener) / std(prediction), within the piece),
apply a fraction of the offset and a power of the spread to the prediction of the other piece (the query):

    query' = centre + offset_fraction x offset + (query - centre) x spread ** power

and score the CCC gain on the query against the listener's own curve. Without --model the prediction is the
piece's mean curve over the *other* listeners (leave one out), each listener both ways round (the intervals are
then over pairs, not listeners: too narrow); with --model it is the model's causal curve, the support chosen as
`pdmer eval --task listeners` chooses it (seed 0). 2026-12-02: on train listeners' leave-one-out mean curves the
spread carries (power 1: +0.020 valence, +0.019 arousal) and the offset does not (fraction 1: -0.005 / -0.012);
on the stage D candidate D-lr's curves for val listeners neither carries (see the run's output): the model's
curve agrees with one listener's too little for widening it to help.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from pdmer.data.curves import MEAN
from pdmer.data.vgmidi import load_vgmidi
from pdmer.metrics import bootstrap_interval, ccc


def rows(prediction: np.ndarray, curve) -> tuple[np.ndarray, np.ndarray]:
    steps = min(len(prediction), len(curve.va))
    return prediction[:steps], curve.va[:steps]


def calibrated(support, query, *, fraction: float, power: float, cap: float, centre: str) -> np.ndarray:
    (p_s, y_s), (p_q, _) = support, query
    offset = (y_s - p_s).mean(axis=0)
    spread = np.clip(((y_s.std(axis=0) + 1e-3) / (p_s.std(axis=0) + 1e-3)) ** power, 1 / cap, cap)
    middle = {"zero": 0.0, "support": p_s.mean(axis=0), "query": p_q.mean(axis=0)}[centre]
    return middle + fraction * offset + (p_q - middle) * spread


def gains(pairs, **setting) -> np.ndarray:
    out = []
    for support, query in pairs:
        after = calibrated(support, query, **setting)
        (p_q, y_q) = query
        out.append([ccc(after[:, d], y_q[:, d]) - ccc(p_q[:, d], y_q[:, d]) for d in range(2)])
    return np.array(out)


def leave_one_out_pairs(dataset, split: str):
    songs = set(dataset.splits[split]["songs"])
    by_song: dict[str, list] = {}
    for curve in dataset.curves:
        if curve.listener != MEAN:
            by_song.setdefault(curve.song, []).append(curve)

    def mean_of_others(curve):
        others = [o.va for o in by_song[curve.song] if o.listener != curve.listener]
        steps = min(len(o) for o in [*others, curve.va])
        return np.mean([o[:steps] for o in others], axis=0), curve.va[:steps]

    pairs = []
    for curves in dataset.by_listener(min_songs=2).values():
        if len(curves) == 2 and all(c.song in songs for c in curves):
            a, b = map(mean_of_others, curves)
            pairs += [(a, b), (b, a)]
    return pairs


def model_pairs(dataset, split: str, checkpoint: str, cache: str | None):
    from pdmer.data.render import with_rendered_audio
    from pdmer.evaluate.run import model_predictor

    part = with_rendered_audio(dataset).split(split)
    predictor = model_predictor(checkpoint, part, cache_dir=cache)
    rng, pairs = np.random.default_rng(0), []  # pdmer.evaluate.real.listeners' choice of support
    for curves in part.by_listener(min_songs=2).values():
        pick = int(rng.integers(len(curves)))
        support, query = curves[pick], [c for i, c in enumerate(curves) if i != pick][0]
        pairs.append((rows(predictor.predict(support), support), rows(predictor.predict(query), query)))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a checkpoint (default: leave-one-out mean curves, no model)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--data", default="../shared/data/vgmidi")
    parser.add_argument("--cache", help="the feature cache (default: pdmer's)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    dataset = load_vgmidi(args.data)
    pairs = model_pairs(dataset, args.split, args.model, args.cache) if args.model else leave_one_out_pairs(dataset, args.split)
    print(f"{len(pairs)} support -> query pairs, {args.split}, {'model ' + args.model if args.model else 'LOO means'}")
    for fraction in (0.0, 0.5, 1.0):
        for power in (0.0, 0.5, 1.0):
            for cap, centre in ((1e9, "query"), (2.0, "zero")):
                g = gains(pairs, fraction=fraction, power=power, cap=cap, centre=centre)
                lows = [bootstrap_interval(g[:, d])[0] for d in range(2)]
                print(f"offset x{fraction} spread^{power} (cap {cap:g}, centre {centre}): valence "
                      f"{g[:, 0].mean():+.4f} (low {lows[0]:+.4f}), arousal {g[:, 1].mean():+.4f} (low {lows[1]:+.4f})")


if __name__ == "__main__":
    main()
