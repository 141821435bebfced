"""Per-call latency of the exported graph on onnxruntime against the torch model in eager mode.

For the `small` preset (or --preset), batch 1, T = 60 steps (a 30 s window), on the CPU:
  full    60 new log-mel slices (what an offline window costs)
  stream  1 new slice + 59 cached local features (what the live stream calls every 0.5 s hop)
Torch eager gets the same work: the full forward, and forward(local=) after the one new slice's adapter pass.
Both runtimes use --threads intra-op threads. Pin the process to match, e.g. 2 cores:

    taskset -c 0,1 python benchmarks/onnx_latency.py --threads 2

Prints median and p99 in ms over --calls calls (after warm-up), and the ratios; --json writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from pdmer.export.graph import example_inputs, to_onnx
from pdmer.export.runtime import OnnxModel
from pdmer.model.registry import build_model


def timed(call, calls: int, warmup: int = 10) -> dict:
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    ms = np.array(seconds) * 1e3
    return {"median_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99)), "calls": calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("dsaml", args.preset, global_dim=200).eval()
    runtime = OnnxModel(to_onnx(model), device="cpu", threads=args.threads)
    mel, _, global_feat = example_inputs(model, 1, args.steps)
    with torch.no_grad():
        past = model.local_features(mel[:, 1:])  # the cached local features of the 59 previous slices
    new = mel[:, -1:]
    mel_np, global_np, past_np, new_np = mel.numpy(), global_feat.numpy(), past.numpy(), new.numpy()

    def eager_full():
        with torch.no_grad():
            model(mel, global_feat)

    def eager_stream():
        with torch.no_grad():
            local = torch.cat([past, model.local_features(new)], dim=1)
            model(None, global_feat, local=local)

    results = {
        "eager_full": timed(eager_full, args.calls),
        "onnx_full": timed(lambda: runtime(mel_np, global_np), args.calls),
        "eager_stream": timed(eager_stream, args.calls),
        "onnx_stream": timed(lambda: runtime(new_np, global_np, past_local=past_np), args.calls),
    }
    info = {"preset": args.preset, "steps": args.steps, "threads": args.threads,
            "cpu_affinity": len(os.sched_getaffinity(0)), "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__}
    print(f"{args.preset} preset, T = {args.steps}, {args.threads} threads, {info['cpu_affinity']} cores allowed")
    print(f"{'call':<14}{'median ms':>11}{'p99 ms':>9}")
    for name, figures in results.items():
        print(f"{name:<14}{figures['median_ms']:>11.2f}{figures['p99_ms']:>9.2f}")
    for kind in ("full", "stream"):
        ratio = results[f"eager_{kind}"]["median_ms"] / results[f"onnx_{kind}"]["median_ms"]
        info[f"speedup_{kind}"] = ratio
        print(f"onnxruntime vs eager ({kind}): {ratio:.2f}x faster (medians)")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({**info, "results": results}, file, indent=1)


if __name__ == "__main__":
    main()
