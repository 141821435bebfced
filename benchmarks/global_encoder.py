"""Time the global embedding of one audio window on the CPU: median and p95 over repeated runs.

    python benchmarks/global_encoder.py [--encoder musicnn] [--window 30] [--runs 30] [--threads 2] [--audio FILE]

Target for the embedded default (musicnn): < 150 ms for a 30 s window on 2 CPU cores. Prints figures; asserts
nothing (machines are noisy: compare medians on one machine).
"""

import argparse
import statistics
import time

import numpy as np
import torch

from pdmer.demo import generated_clip
from pdmer.model.encoders import load_global_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="musicnn")
    parser.add_argument("--imagebind", help="imagebind_huge.pth, for --encoder imagebind")
    parser.add_argument("--window", type=float, default=30.0, help="window length, seconds")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--audio", help="a file to cut the window from (default: a generated 44.1 kHz clip)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    if args.audio:
        from pdmer.audio import load_audio

        waveform, sample_rate = load_audio(args.audio)
    else:
        waveform, sample_rate = generated_clip(args.window), 44100
    waveform = np.ascontiguousarray(waveform[: int(args.window * sample_rate)])
    encoder = load_global_encoder(args.encoder, imagebind_checkpoint=args.imagebind)

    encoder.embed(waveform, sample_rate)  # warm-up: first-call allocations and kernel selection
    timings = []
    for _ in range(args.runs):
        start = time.perf_counter()
        encoder.embed(waveform, sample_rate)
        timings.append((time.perf_counter() - start) * 1000)
    timings.sort()
    p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
    print(
        f"{args.encoder}: {args.window:g} s window at {sample_rate} Hz, {args.threads} threads, {args.runs} runs: "
        f"median {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms, min {timings[0]:.1f} ms, max {timings[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
