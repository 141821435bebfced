"""The paper's Table 4 on the synthetic per-listener benchmark: does per-listener meta-training personalize best?

For each seed, DSAML (small preset, musicnn global features) is first trained on mean labels for --pre-steps
steps (the usual start for meta-training, and what keeps the CPU budget to minutes). From that one start, each
condition then gets the same --steps further optimiser steps:
  ours        MAML with per-listener tasks (paper eq. 6)
  mean+adapt  more training on mean labels (traditional DMER), then adapted like the others  (Table 4: †‡)
  random      MAML with random tasks over mean labels (paper eq. 5)                         (Table 4: ‡)
  no-maml     per-listener labels without MAML (optional: --with-no-maml)                   (Table 4: †)
Every model then meets the same one-shot adaptation at test time. The script scores each on the test split's
held-out listeners with pdmer eval --task pdmer under both protocols: "song" (adapt on one song per listener,
score on that listener's other songs) and "frames" (the authors' Table 2-4 protocol: adapt on the first 60 labels
of each of the listener's curves, score on the rest of that curve), and writes a Markdown report with every
seed's numbers.

    pdmer synth /tmp/synth --seed 0
    python benchmarks/table4_synth.py --data /tmp/synth --runs /tmp/table4 --report reports/table4-synth.md

The CPU budget per run is a few minutes on 2 cores; a run already finished in --runs is reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pdmer.model.checkpoint import read_metadata
from pdmer.train.config import PARAMS

# Shared by every condition: sizes that fit a few minutes of 2 CPU cores. The paper's numbers (16 inner steps,
# 16 tasks x 15 query songs, Adam 5e-5, 2000 steps) would take days here.
BASE = """
[run]
preset = "small"
device = "cpu"
[data]
train_split = "train"
val_split = ""
window = 60
encoder = "{encoder}"
global_placement = "{placement}"
[optim]
lr = 0.001
batch_size = 8
[meta]
tasks_per_step = 4
support = 1
query = 3
inner_steps = {inner_steps}
inner_lr = {inner_lr}
inner_params = "{inner_params}"
[log]
validate_every = 0
checkpoint_every = 25
"""

WINDOW = 60
PROTOCOLS = {"song": "", "frames": "-frames"}  # pdmer eval --support, and the suffix of its report's file name

CONDITIONS = {
    "ours": ["--mode", "pdmer", "--tasks", "listener"],
    "mean+adapt": ["--mode", "dmer"],
    "random": ["--mode", "pdmer", "--tasks", "random"],
    "no-maml": ["--mode", "pdmer", "--tasks", "listener", "--no-maml"],
}
LABELS = {
    "ours": "DSAML, MAML with per-listener tasks (eq. 6)",
    "mean+adapt": "trained on mean labels, then adapted (†‡)",
    "random": "MAML with random tasks over mean labels (eq. 5, ‡)",
    "no-maml": "per-listener labels without MAML (†)",
}


def pdmer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pdmer", *args], check=True, capture_output=True, text=True)


def train(name: str, seed: int, args, base: Path, steps: int, extra: list[str]) -> tuple[Path, float]:
    out = args.runs / f"{name}-seed{seed}"
    model = out / "model.safetensors"
    if model.is_file() and read_metadata(model)["step"] == str(steps):
        return model, float("nan")
    started = time.perf_counter()
    common = ["--config", str(base), "--data", str(args.data), "--cache", str(args.cache), "--seed", str(seed),
              "--steps", str(steps)]
    resume = (out / "state.pt").is_file()
    pdmer("train", *(["--resume", str(out), "--steps", str(steps)] if resume else [*common, *extra, "--out", str(out)]))
    return model, time.perf_counter() - started


def listener_mean(report: dict) -> dict[str, float]:
    """Mean over test listeners of each listener's mean CCC over their query songs."""
    listeners = report["tasks"]["pdmer"]["listeners"]
    return {dim: float(np.mean([scores[f"{dim}_ccc"] for scores in listeners.values()]))
            for dim in ("valence", "arousal")}


def adaptation_losses(model_path: Path, args) -> tuple[float, float]:
    """Mean DSAML loss on each test listener's other songs before and after adapting on their support song."""
    import torch

    from pdmer.data.load import load_dataset
    from pdmer.evaluate.run import model_predictor
    from pdmer.model.adapt import run

    dataset = load_dataset(args.data).split("test")
    predictor = model_predictor(model_path, dataset, cache_dir=args.cache)
    model = predictor.model
    rng = np.random.default_rng(0)  # the support song pdmer eval --seed 0 chooses
    before, after = [], []
    for curves in dataset.by_listener(min_songs=2).values():
        chosen = int(rng.integers(len(curves)))
        adapted = predictor.personalize([curves[chosen]])
        for curve in curves[:chosen] + curves[chosen + 1:]:
            mel, glob, va = (t[:WINDOW][None] for t in predictor.features(curve))  # the song's first 30 s
            with torch.no_grad():
                before.append(float(model.loss(model(mel, glob), va).total))
                after.append(float(model.loss(run(model, adapted.weights, mel, glob), va).total))
    return float(np.mean(before)), float(np.mean(after))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the synthetic benchmark (pdmer synth)")
    parser.add_argument("--cache", type=Path, required=True, help="feature cache folder")
    parser.add_argument("--runs", type=Path, required=True, help="folder for the training runs")
    parser.add_argument("--report", type=Path, required=True, help="Markdown report to write")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pre-steps", type=int, default=200, help="steps on mean labels before the conditions")
    parser.add_argument("--steps", type=int, default=40, help="steps of each condition from that start")
    parser.add_argument("--inner-steps", type=int, default=5)
    parser.add_argument("--inner-lr", type=float, default=0.05)
    parser.add_argument("--inner-params", default="head", choices=PARAMS,
                        help="what the inner loop and the test-time adaptation change")
    parser.add_argument("--encoder", default="musicnn", choices=("musicnn", "descriptors"),
                        help="global encoder: the --start model's, if given")
    parser.add_argument("--global-placement", default="trailing", choices=("trailing", "centred"),
                        help="global windows: the --start model's, if given")
    parser.add_argument("--with-no-maml", action="store_true")
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS),
                        help="test protocols to score (frames adapts once per curve: with a 16-step inner loop over "
                        "all parameters it costs several times the song protocol)")
    parser.add_argument("--start", type=Path, help="a trained model to start every seed's conditions from, instead "
                        "of --pre-steps on mean labels per seed (e.g. a longer run than fits per seed)")
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    base = args.runs / "base.toml"
    base.write_text(BASE.format(inner_steps=args.inner_steps, inner_lr=args.inner_lr, inner_params=args.inner_params,
                                encoder=args.encoder, placement=args.global_placement))
    names = [n for n in CONDITIONS if n != "no-maml" or args.with_no_maml]

    protocols = {protocol: PROTOCOLS[protocol] for protocol in args.protocols}
    rows = {protocol: {n: [] for n in names} for protocol in protocols}
    seconds, losses = {n: [] for n in names}, {n: [] for n in names}
    for seed in args.seeds:
        if args.start:
            start = args.start
        else:
            start, took = train("start", seed, args, base, args.pre_steps, ["--mode", "dmer"])
            print(f"seed {seed} shared start on mean labels: trained ({took:.0f} s)", flush=True)
        models = {}
        for name in names:
            models[name], took = train(name, seed, args, base, args.steps, [*CONDITIONS[name], "--init", str(start)])
            seconds[name].append(took)
            print(f"seed {seed} {name}: trained ({took:.0f} s)", flush=True)
        newest_model = max(m.stat().st_mtime for m in models.values())
        for protocol, suffix in protocols.items():
            report_path = args.runs / f"eval{suffix}-seed{seed}.json"
            if not report_path.is_file() or report_path.stat().st_mtime < newest_model:
                pdmer("eval", *map(str, models.values()), "--data", str(args.data), "--split", "test", "--task",
                      "pdmer", "--support", protocol, "--cache", str(args.cache), "--json", str(report_path))
            for name, report in zip(names, json.loads(report_path.read_text())):
                rows[protocol][name].append(listener_mean(report))
                print(f"seed {seed} {name} ({protocol}): {rows[protocol][name][-1]}", flush=True)
        if "song" in protocols:  # reported in the song protocol's table only
            for name in names:
                losses[name].append(adaptation_losses(models[name], args))
                print(f"seed {seed} {name}: loss on other songs before/after adaptation {losses[name][-1]}",
                      flush=True)

    lines = ["# Table 4 on the synthetic benchmark: personalization after one-shot adaptation", "",
             f"Data: `{args.data.name}` (pdmer synth), test split = held-out listeners on held-out songs. "
             "Each model: DSAML `small`, "
             + (f"started from `{args.start}` (one start for every seed), then " if args.start else
                f"{args.pre_steps} steps on mean labels (one shared start per seed), then ")
             + f"{args.steps} steps of its own training; seeds {args.seeds}; adaptation at test time: "
             f"{args.inner_steps} steps of SGD lr {args.inner_lr} ({args.inner_params}), the inner loop's "
             "(pdmer eval --task pdmer --seed 0). Scores: each test listener's mean CCC over their query curves, "
             "averaged over listeners, under the protocols below.", "",
             f"Command: `python benchmarks/table4_synth.py --data {args.data} --cache CACHE --runs RUNS --report "
             f"{args.report} " + (f"--start {args.start}" if args.start else f"--pre-steps {args.pre_steps}")
             + f" --steps {args.steps} --inner-steps {args.inner_steps} --inner-lr {args.inner_lr} --inner-params {args.inner_params}"
             f" --encoder {args.encoder} --global-placement {args.global_placement}"
             f"{' --with-no-maml' if args.with_no_maml else ''} --protocols {' '.join(protocols)}`"]
    for protocol in protocols:
        lines += ["", f"Protocol `{protocol}`: " + (
            "adapt on one song per listener, score on their other songs." if protocol == "song" else
            "adapt on the first 60 labels of each curve, score on the rest of it (the authors' protocol)."), "",
            "| Training | valence CCC | arousal CCC | " + " | ".join(f"seed {s} (V / A)" for s in args.seeds)
            + (" | loss on other songs before → after adaptation | train s/run |" if protocol == "song" else " |"),
            "|---|---|---|" + "---|" * len(args.seeds) + ("---|---|" if protocol == "song" else "")]
        table = rows[protocol]
        for name in names:
            valence = np.mean([r["valence"] for r in table[name]])
            arousal = np.mean([r["arousal"] for r in table[name]])
            per_seed = " | ".join(f"{r['valence']:.3f} / {r['arousal']:.3f}" for r in table[name])
            line = f"| {LABELS[name]} | **{valence:.3f}** | **{arousal:.3f}** | {per_seed} |"
            if protocol == "song":
                before, after = np.mean([b for b, _ in losses[name]]), np.mean([a for _, a in losses[name]])
                took = np.nanmean(seconds[name]) if not np.all(np.isnan(seconds[name])) else float("nan")
                line += f" {before:.3f} → {after:.3f} | {took:.0f} |"
            lines.append(line)
        ours = table["ours"]
        wins = {name: sum(o["valence"] > r["valence"] and o["arousal"] > r["arousal"] for o, r in zip(ours, table[name]))
                for name in names if name != "ours"}
        lines += ["", "Seeds where per-listener MAML beats the other training on both valence and arousal: "
                  + ", ".join(f"{LABELS[n]}: {w}/{len(ours)}" for n, w in wins.items()) + "."]
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
