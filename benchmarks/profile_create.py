"""Seconds to create a profile (``pdmer.profiles.create``): read the song, compute its features, adapt, write the
weights, export and check the ONNX, publish. Median over --runs runs, in one process (imports not counted).

    taskset -c 0,1 python benchmarks/profile_create.py --audio song.ogg --seconds 45 [--base model.safetensors]

Without --base: a `small` DSAML with the authors' adaptation (16 steps of lr 5e-3 over all parameters), the
slowest setting. The curve is the base's own prediction, raised by 0.2: the predict -> edit -> create workflow.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=45.0, help="cut the song to this length (the paper's 45 s)")
    parser.add_argument("--base", type=Path, help="base checkpoint (default: small DSAML, authors' adaptation)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import soundfile
    import torch

    import pdmer.profiles
    from pdmer.audio import load_audio
    from pdmer.export.predict import load_deployed, predict_file
    from pdmer.data.features import inputs_metadata
    from pdmer.data.plain import write_curve_csv
    from pdmer.model.checkpoint import save_model
    from pdmer.model.encoders import load_global_encoder
    from pdmer.model.registry import build_model

    work = Path(tempfile.mkdtemp(prefix="pdmer-profile-bench-"))
    os.environ["PDMER_HOME"] = str(work / "home")
    base = args.base
    if base is None:
        torch.manual_seed(0)
        base = save_model(build_model("dsaml", "small", global_dim=200), work / "base.safetensors",
                          metadata=inputs_metadata(load_global_encoder("musicnn")))
    waveform, rate = load_audio(args.audio)
    song = work / "song.wav"
    soundfile.write(str(song), waveform[: int(args.seconds * rate)], rate)
    prediction, _, _ = predict_file(load_deployed(base, device="cpu"), song)
    curve = work / "curve.csv"
    write_curve_csv(curve, prediction.times, np.minimum(1.0, prediction.va + 0.2))

    seconds = []
    for run in range(args.runs):
        started = time.perf_counter()
        profile = pdmer.profiles.create("bench", song, curve, base=base, force=True)
        seconds.append(time.perf_counter() - started)
        print(f"run {run + 1}: {seconds[-1]:.1f} s", flush=True)
    adaptation = profile.info["adaptation"]
    print(f"profile create, {len(waveform[: int(args.seconds * rate)]) / rate:.0f} s song, adaptation "
          f"{adaptation['steps']} steps / params {adaptation['params']}, {torch.get_num_threads()} torch threads, "
          f"{len(os.sched_getaffinity(0))} cores allowed: median {np.median(seconds):.1f} s "
          f"(min {min(seconds):.1f}, max {max(seconds):.1f})")


if __name__ == "__main__":
    main()
