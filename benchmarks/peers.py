"""pdmer and its peer vibenet side by side on the same real clips: CPU per 30 s of audio, cold start, memory.

    taskset -c 0,1 python benchmarks/peers.py                      # 20 clips of the 4Q val split
    taskset -c 0,1 python benchmarks/peers.py --clips 40 --baseline-ref 12128d2 --json peers.json

Figures, for each program:
- CPU per 30 s: process CPU time (every thread) to decode, featurise and predict one clip, in a process that has
  already loaded its model and run one clip (what `pdmer predict A B ... --out-dir` pays per song, and vibenet's
  `predict` per call), scaled to 30 s of audio; the median over the clips (p90 beside it).
- cold start: wall time of the command line on one clip, from a fresh process to its output written: `pdmer predict
  CLIP --csv OUT` and `vibenet CLIP` (median of --cold-runs runs).
- memory: the peak RSS of the process that scored every clip.
``--baseline-ref REF`` also times pdmer at that git commit (a worktree of it, run from this venv), so "today" and
the working tree are measured in one run, on one machine.

pdmer's side is the embedded default model (DSAML small, musicnn global features), its `predict_file`. vibenet
(GPL-3.0) runs in its own scratch venv (benchmarks/peer_vibenet.py installs it there); it is never imported here.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "4q"
sys.path.insert(0, str(ROOT / "benchmarks"))

from peer_vibenet import WORKER as VIBENET_WORKER, ensure_venv  # noqa: E402  (standard library only)


def clips(data: Path, split: str, count: int) -> list[Path]:
    """The first ``count`` clips of the split, in its file's order (the same clips for both programs)."""
    names = json.loads((data / "split.json").read_text())[split]
    found = [path for name in names if (path := next((data / "audio").glob(f"{name}.*"), None))]
    if len(found) < count:
        raise SystemExit(f"{data}: the {split} split has {len(found)} clips with audio, {count} asked for")
    return found[:count]


def pdmer_worker(paths: list[str]) -> None:
    """Runs in a child process (--worker): one JSON line per clip, as vibenet_worker.py writes them."""
    import soundfile

    import pdmer.export.predict as predict

    if hasattr(predict, "use_threads"):  # what `pdmer predict` sets up (--threads, default 1)
        threads = int(os.environ.get("PDMER_THREADS", "1"))
        predict.use_threads(threads)
        deployed = predict.load_deployed(None, device="cpu", threads=threads, encoder_threads=threads)
    else:  # a --baseline-ref from before --threads: its own defaults
        deployed = predict.load_deployed(None, device="cpu")
    predict_file = predict.predict_file
    predict_file(deployed, paths[0])  # warm-up, as the vibenet worker's throw-away call
    for path in paths:
        cpu, wall = time.process_time(), time.perf_counter()
        predict_file(deployed, path)
        record = {"path": path, "seconds": time.process_time() - cpu, "wall_seconds": time.perf_counter() - wall,
                  "audio_seconds": soundfile.info(path).duration}
        print(json.dumps(record), flush=True)
    print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))  # KiB on Linux


def run_worker(command: list[str], paths: list[Path], env: dict | None = None) -> tuple[list[dict], float]:
    """(per-clip records, the worker's peak RSS in MiB, which it reports last)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as listing:
        json.dump([str(p) for p in paths], listing)
    try:
        result = subprocess.run([*command, listing.name], stdout=subprocess.PIPE, text=True, env=env)
    finally:
        os.unlink(listing.name)
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} worker failed with exit code {result.returncode}")
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return [r for r in lines if "path" in r], next(r["peak_rss_mib"] for r in lines if "peak_rss_mib" in r)


def summary(records: list[dict], durations: dict[str, float]) -> dict:
    per30 = [r["seconds"] * 30 / durations[r["path"]] for r in records if "error" not in r]
    wall30 = [r["wall_seconds"] * 30 / durations[r["path"]] for r in records if "error" not in r]
    ordered = sorted(per30)
    return {"clips": len(per30), "errors": sum("error" in r for r in records),
            "cpu_s_per_30s": {"median": statistics.median(per30), "p90": ordered[int(0.9 * (len(ordered) - 1))]},
            "wall_s_per_30s": {"median": statistics.median(wall30)}}


def cold_start(command: list[str], runs: int, env: dict | None = None) -> dict:
    # `python -m` puts the working directory first on sys.path: run from the checkout whose pdmer is wanted.
    cwd = env["PYTHONPATH"] if env and "PYTHONPATH" in env else ROOT
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)
        walls.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {result.stderr[-500:]}")
    return {"median_s": statistics.median(walls), "runs": [round(w, 3) for w in walls]}


def worktree(ref: str, folder: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), ref], check=True,
                   capture_output=True)
    return folder


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        pdmer_worker(json.loads(Path(sys.argv[2]).read_text()))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="a 4Q-layout folder (audio/, split.json)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--baseline-ref", help="also time pdmer at this git commit (e.g. the last release)")
    parser.add_argument("--venv", type=Path, help="vibenet's scratch venv (default: peer_vibenet's)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    import soundfile

    paths = clips(args.data, args.split, args.clips)
    durations = {str(p): soundfile.info(str(p)).duration for p in paths}
    vibenet_python = ensure_venv(args.venv) if args.venv else ensure_venv()
    me = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    programs = {"pdmer": (me, None), "vibenet": ([str(vibenet_python), str(VIBENET_WORKER)], None)}
    scratch = Path(tempfile.mkdtemp(prefix="pdmer-peers-"))
    if args.baseline_ref:
        tree = worktree(args.baseline_ref, scratch / "baseline")
        programs[f"pdmer@{args.baseline_ref}"] = (me, {**os.environ, "PYTHONPATH": str(tree)})
    figures = {"clips": [p.name for p in paths], "audio_s": sum(durations.values()),
               "cpus": len(os.sched_getaffinity(0)), "programs": {}}
    try:
        for name, (command, env) in programs.items():
            print(f"[peers] {name}: {len(paths)} clips", file=sys.stderr, flush=True)
            records, rss = run_worker(command, paths, env)
            figures["programs"][name] = {**summary(records, durations), "peak_rss_mib": rss}
        clip, out = str(paths[0]), scratch / "cold.csv"
        cold = {"pdmer": ([sys.executable, "-m", "pdmer", "predict", clip, "--csv", str(out)], None),
                "vibenet": ([str(vibenet_python.parent / "vibenet"), clip], None)}
        if args.baseline_ref:
            cold[f"pdmer@{args.baseline_ref}"] = (cold["pdmer"][0], programs[f"pdmer@{args.baseline_ref}"][1])
        for name, (command, env) in cold.items():
            print(f"[peers] {name}: cold start x{args.cold_runs}", file=sys.stderr, flush=True)
            figures["programs"][name]["cold_start"] = cold_start(command, args.cold_runs, env)
    finally:
        if args.baseline_ref:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(scratch / "baseline")],
                           capture_output=True)
    ours, peer = figures["programs"]["pdmer"], figures["programs"]["vibenet"]
    figures["pdmer_over_vibenet_cpu"] = ours["cpu_s_per_30s"]["median"] / peer["cpu_s_per_30s"]["median"]
    if args.baseline_ref:
        before = figures["programs"][f"pdmer@{args.baseline_ref}"]["cpu_s_per_30s"]["median"]
        figures["baseline_over_pdmer_cpu"] = before / ours["cpu_s_per_30s"]["median"]
    print(json.dumps(figures, indent=1))
    print_table(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


def print_table(figures: dict) -> None:
    print(f"\n{'program':<22} {'CPU s / 30 s (median)':>22} {'p90':>6} {'cold start s':>13} {'peak RSS MiB':>13}")
    for name, f in figures["programs"].items():
        print(f"{name:<22} {f['cpu_s_per_30s']['median']:>22.3f} {f['cpu_s_per_30s']['p90']:>6.3f} "
              f"{f['cold_start']['median_s']:>13.2f} {f['peak_rss_mib']:>13.0f}")


if __name__ == "__main__":
    main()
