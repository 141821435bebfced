"""Does a profile from ONE song make pdmer hear a held-out listener better? Measured on the synthetic benchmark.

For every listener of the test split (unseen listeners on unseen songs): pick one of their songs (seeded), write
their curve for it as a CSV, make a profile with ``pdmer.profiles.create`` (the real path: CSV, adaptation,
weights, ONNX), then predict each of their OTHER songs with the base model and with the profile's ONNX, and score
both against the listener's curves (CCC per song, averaged per listener, then over listeners).

    python benchmarks/profiles_synth.py --data /tmp/synth --base run/model.safetensors --report reports/profiles-synth.md

Each profile's creation time is printed too (wall clock, this machine).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from pdmer.train.config import PARAMS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the synthetic benchmark (pdmer synth)")
    parser.add_argument("--base", type=Path, required=True, help="base model checkpoint")
    parser.add_argument("--cache", type=Path, help="feature cache folder (default: the user cache)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=0, help="chooses each listener's support song")
    parser.add_argument("--steps", type=int, help="adaptation steps (default: the base's)")
    parser.add_argument("--lr", type=float, help="adaptation learning rate (default: the base's)")
    parser.add_argument("--params", choices=PARAMS, help="what adapts (default: the base's)")
    parser.add_argument("--report", type=Path, help="Markdown report to write")
    args = parser.parse_args()

    import pdmer.profiles
    from pdmer.data.features import FeatureCache, recorded_inputs
    from pdmer.data.load import load_dataset
    from pdmer.metrics import bootstrap_interval
    from pdmer.data.plain import write_curve_csv
    from pdmer.export.graph import to_onnx
    from pdmer.export.predict import predict_onnx
    from pdmer.export.runtime import OnnxModel
    from pdmer.metrics import ccc
    from pdmer.model.checkpoint import deployment_metadata, load_model

    context = deployment_metadata(args.base)
    model = load_model(args.base)
    encoder, windows = recorded_inputs(context, model.config.global_dim, source=str(args.base))
    cache = FeatureCache(encoder, root=args.cache, windows=windows)
    base = OnnxModel(to_onnx(model, context=context), device="cpu")
    dataset = load_dataset(args.data)
    split = dataset.split(args.split)
    rng = np.random.default_rng(args.seed)
    os.environ["PDMER_HOME"] = home = tempfile.mkdtemp(prefix="pdmer-profiles-bench-")

    def scores(model, curves) -> np.ndarray:
        """[songs, 2] CCC (valence, arousal) of ``model`` on each curve's song against the curve."""
        rows = []
        for curve in curves:
            mel, global_feat, va = cache.song(dataset.songs[curve.song].audio).for_curve(curve)
            predicted = predict_onnx(model, mel.numpy(), global_feat.numpy())
            rows.append([float(ccc(predicted[:, d], va[:, d].numpy())) for d in range(2)])
        return np.array(rows)

    per_listener, seconds = {}, []
    for listener, curves in sorted(split.by_listener(min_songs=2).items()):
        chosen = int(rng.integers(len(curves)))
        support, others = curves[chosen], curves[:chosen] + curves[chosen + 1:]
        curve_csv = Path(home) / f"{listener}.csv"
        write_curve_csv(curve_csv, support.times, support.va)
        started = time.perf_counter()
        profile = pdmer.profiles.create(f"bench-{listener}", dataset.songs[support.song].audio, curve_csv,
                                        base=args.base, steps=args.steps, lr=args.lr, params=args.params)
        seconds.append(time.perf_counter() - started)
        adapted = OnnxModel(profile.onnx, device="cpu")
        before, after = scores(base, others).mean(0), scores(adapted, others).mean(0)
        per_listener[listener] = {"base": before.tolist(), "profile": after.tolist(), "support": support.song,
                                  "songs": len(others), "create_s": seconds[-1]}
        print(f"{listener}: support {support.song}, {len(others)} other songs; CCC V/A base "
              f"{before[0]:.3f}/{before[1]:.3f} -> profile {after[0]:.3f}/{after[1]:.3f} "
              f"(created in {seconds[-1]:.1f} s)", flush=True)

    base_mean = np.mean([r["base"] for r in per_listener.values()], axis=0)
    profile_mean = np.mean([r["profile"] for r in per_listener.values()], axis=0)
    gains = np.array([np.subtract(r["profile"], r["base"]) for r in per_listener.values()])
    raised = dict(zip(("valence", "arousal"), (gains > 0).sum(0)))
    low, high = bootstrap_interval(gains)
    adaptation = pdmer.profiles.load(f"bench-{next(iter(per_listener))}").info["adaptation"]
    lines = [
        f"# Profiles from one song on the synthetic benchmark ({args.data.name}, split {args.split})", "",
        f"Base model: `{args.base}`. Each of the {len(per_listener)} held-out listeners gets a profile from one "
        f"song (seed {args.seed} picks it) made by `pdmer.profiles.create` with the base's adaptation "
        f"({adaptation['steps']} steps, lr {adaptation['lr']}, params {adaptation['params']}). Both models then "
        "predict the listener's other songs through onnxruntime; CCC per song against the listener's curve, "
        "averaged per listener, then over listeners.", "",
        f"Command: `python benchmarks/profiles_synth.py --data {args.data} --base {args.base} --seed {args.seed}"
        + "".join(f" --{k} {v}" for k, v in (("steps", args.steps), ("lr", args.lr), ("params", args.params)) if v)
        + "`",
        "", "| | valence CCC | arousal CCC |", "|---|---|---|",
        f"| base model | {base_mean[0]:.3f} | {base_mean[1]:.3f} |",
        f"| with the listener's profile | **{profile_mean[0]:.3f}** | **{profile_mean[1]:.3f}** |", "",
        f"Listeners whose CCC the profile raised: valence {raised['valence']}/{len(per_listener)}, arousal "
        f"{raised['arousal']}/{len(per_listener)}. Mean gain per listener, with a 95% bootstrap interval over "
        f"listeners: valence {gains[:, 0].mean():+.4f} [{low[0]:+.4f}, {high[0]:+.4f}], arousal "
        f"{gains[:, 1].mean():+.4f} [{low[1]:+.4f}, {high[1]:+.4f}].", "",
        "| listener | support song | other songs | base V / A | profile V / A | create s |", "|---|---|---|---|---|---|",
    ]
    for listener, r in per_listener.items():
        lines.append(f"| {listener} | {r['support']} | {r['songs']} | {r['base'][0]:.3f} / {r['base'][1]:.3f} | "
                     f"{r['profile'][0]:.3f} / {r['profile'][1]:.3f} | {r['create_s']:.1f} |")
    lines += ["", f"Profile creation: median {np.median(seconds):.1f} s per profile on this machine "
              f"({os.cpu_count()} cores; feature cache cold for the support song)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text)


if __name__ == "__main__":
    main()
