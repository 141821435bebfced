"""The live stream's figures: per-hop compute, tone-onset-to-OSC latency, and memory over a long run.

Each part runs the real ``pdmer-stream`` command (DSAML `small` with musicnn, the default deployment) and receives
its OSC with python-osc in this process. Pin to 2 cores to match the targets, e.g.

    taskset -c 0,1 python benchmarks/stream.py hop              # 60 s of real music at real-time pace
    taskset -c 0,1 python benchmarks/stream.py latency          # tone bursts into a PulseAudio null sink
    taskset -c 0,1 python benchmarks/stream.py memory           # RSS after 1 and 10 minutes of streaming
    taskset -c 0,1 python benchmarks/stream.py latency --hop 0.1  # any part with pdmer-stream --hop 0.1
    git worktree add /tmp/old REF && python benchmarks/stream.py hop --pythonpath /tmp/old   # an earlier version

hop      per-hop compute (log-mel, ONNX call, any wait for a global vector) over real music played at real-time
         pace, from the command's --stats-json: median, p90, p99, max over the hops after the first (target: p99
         < 50 ms), and the first hop on its own (it waits for the first global vector); and the stream process's
         CPU seconds (every thread) per second of audio, from /proc between its first and last frames.
latency  a private PulseAudio daemon with a null sink (the rig of DESIGN.md §10) is the input device. Tone bursts
         are written into it through pacat (20 ms buffer) after silence, at random phases of the 0.5 s hop grid;
         latency = arrival of the first /pdmer/frame after the burst - the moment the burst was written. It holds
         the wait for the slice to complete (0-0.5 s), the compute and the sound server's buffering.
memory   RSS of the stream process (VmRSS) when stream time passes 60 s and 600 s of real music (the three tracks
         of ../shared/data/music, looped), at real-time pace (--fast: as fast as the machine goes).

--model defaults to a randomly initialised `small` DSAML (the compute and memory do not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MUSIC = ROOT.parent / "shared" / "data" / "music"  # CC BY-SA tracks (see COPYRIGHT-hyperrogue-music there)
RATE = 44100


class Receiver:
    """A python-osc UDP server on a free port, keeping (arrival time.monotonic(), address, args) of every message."""

    def __init__(self):
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import ThreadingOSCUDPServer

        self.messages: list[tuple[float, str, tuple]] = []
        self.arrived = threading.Condition()
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(self.keep)
        self.server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def keep(self, address, *args) -> None:
        with self.arrived:
            self.messages.append((time.monotonic(), address, args))
            self.arrived.notify_all()

    def frames(self) -> list[tuple[float, tuple]]:
        return [(t, args) for t, address, args in list(self.messages) if address == "/pdmer/frame"]

    def wait_for(self, test, timeout: float):
        """The first true value of ``test()`` (re-checked at each arrival), or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not (found := test()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.arrived.wait(left)
        return found

    def close(self) -> None:
        self.server.shutdown()


def default_model(folder: Path) -> Path:
    import torch

    from pdmer.data.features import inputs_metadata
    from pdmer.model.checkpoint import save_model
    from pdmer.model.encoders import load_global_encoder
    from pdmer.model.registry import build_model

    torch.manual_seed(0)
    return save_model(build_model("dsaml", "small", global_dim=200), folder / "model.safetensors",
                      metadata=inputs_metadata(load_global_encoder("musicnn")))


def stream_command(args, port: int, *extra) -> list[str]:
    hop = ["--hop", str(args.hop)] if args.hop else []
    model = [] if str(args.model) == "default" else ["--model", str(args.model)]
    return [sys.executable, "-m", "pdmer.streamer", *model, "--osc", f"127.0.0.1:{port}", "--quiet", *hop,
            *map(str, extra)]


def music_file(folder: Path, seconds: float) -> Path:
    """The tracks of ../shared/data/music one after another, looped to ``seconds``, as one 44.1 kHz WAV."""
    import soundfile

    from pdmer.audio import load_audio

    loaded = [load_audio(path) for path in sorted(MUSIC.glob("*.ogg"))]
    if not loaded or any(rate != RATE for _, rate in loaded):
        raise SystemExit(f"this benchmark needs the 44.1 kHz tracks of ../shared/data/music ({MUSIC})")
    tracks = [wave for wave, _ in loaded]
    joined = np.concatenate(tracks)
    wave = np.tile(joined, int(np.ceil(seconds * RATE / joined.size)))[: int(seconds * RATE)]
    path = folder / f"music-{seconds:.0f}s.wav"
    soundfile.write(str(path), wave, RATE, subtype="FLOAT")
    return path


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (every thread), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hop(args, folder: Path) -> dict:
    stats = folder / "hop-stats.json"
    source = music_file(folder, args.seconds)
    receiver = Receiver()
    command = stream_command(args, receiver.port, "--source", source, "--stats-json", stats)
    stream = subprocess.Popen(command + (["--fast"] if args.fast else []), env={**os.environ, **args.extra_env}, cwd=args.cwd)
    samples = []  # (stream time of the newest frame, CPU seconds so far), from the first frame on
    while stream.poll() is None:
        frames = receiver.frames()
        try:
            cpu = cpu_seconds(stream.pid)
        except (FileNotFoundError, ProcessLookupError):
            break
        if frames:
            samples.append((frames[-1][1][0], cpu))
        time.sleep(0.25)
    if stream.wait() != 0:
        raise SystemExit(f"pdmer-stream exited with {stream.returncode}")
    receiver.close()
    report = json.loads(stats.read_text())
    (t0, c0), (t1, c1) = samples[0], samples[-1]
    return {"part": "hop", "audio_s": args.seconds, "pace": "fast" if args.fast else "real-time",
            "hop_s": report.get("hop_s", 0.5), "hops": report["steps"], "frames_received": len(receiver.frames()),
            "hop_compute_ms": report["hop_compute_ms"], "first_hop_ms": report["first_hop_ms"],
            # The stream process's CPU (every thread) per second of audio, between its first and last frames
            # (start-up left out), read from /proc: the same measure for any pdmer version (--pythonpath).
            "cpu_per_audio_s": (c1 - c0) / (t1 - t0), "overruns": report["overruns"]}


def latency(args, folder: Path) -> dict:
    from pdmer.streamer.pulse import private_pulse

    with private_pulse(folder / "pa", rate=RATE) as pulse:
        return tone_bursts(args, folder, pulse.env)


def tone_bursts(args, folder: Path, env: dict) -> dict:
    receiver = Receiver()
    log = folder / "stream.log"
    stream = subprocess.Popen(stream_command(args, receiver.port, "--no-start-at-sound"), env={**env, **args.extra_env}, cwd=args.cwd,
                              stderr=log.open("w"))
    player = subprocess.Popen(["pacat", "--playback", "--device=vmic", "--raw", "--format=float32le",
                               f"--rate={RATE}", "--channels=1", "--latency-msec=20"], stdin=subprocess.PIPE, env=env)
    t = np.arange(int(args.burst * RATE)) / RATE
    burst = (0.3 * np.sin(2 * np.pi * 440 * t)).astype("<f4").tobytes()
    rng = np.random.default_rng(0)
    results = []
    try:
        if receiver.wait_for(lambda: any(a == "/pdmer/status" for _, a, _ in receiver.messages), 180) is None:
            raise SystemExit("the stream sent no status within 180 s: " + log.read_text())
        for _ in range(args.trials):
            time.sleep(args.gap + rng.uniform(0, 0.5))  # silence, and a random phase against the hop grid
            seen = len(receiver.frames())
            written = time.monotonic()
            player.stdin.write(burst)
            player.stdin.flush()
            first = receiver.wait_for(lambda: receiver.frames()[seen:], 10)
            results.append(first[0][0] - written if first else float("nan"))
    finally:
        player.stdin.close()
        player.wait(timeout=10)
        stream.terminate()
        stream.wait(timeout=30)
        receiver.close()
    ms = np.array(results) * 1e3
    return {"part": "latency", "trials": len(ms), "missed": int(np.isnan(ms).sum()),
            "latency_ms": {"median": float(np.nanmedian(ms)), "p90": float(np.nanpercentile(ms, 90)),
                           "min": float(np.nanmin(ms)), "max": float(np.nanmax(ms))}}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def memory(args, folder: Path) -> dict:
    if args.seconds <= 60:
        raise SystemExit("memory: --seconds must be over 60 (RSS is compared with the first minute's)")
    marks = [60.0] + [mark for mark in (args.seconds / 2, args.seconds) if mark > 60.0]  # the first minute first
    source = music_file(folder, args.seconds + 5)
    receiver = Receiver()
    command = stream_command(args, receiver.port, "--source", source) + (["--fast"] if args.fast else [])
    stream = subprocess.Popen(command, env={**os.environ, **args.extra_env}, cwd=args.cwd)
    rss = {}
    try:
        for mark in marks:
            found = receiver.wait_for(lambda: [f for f in receiver.frames() if f[1][0] >= mark], args.seconds * 2)
            if found is None:
                raise SystemExit(f"no frame past {mark} s of stream time")
            rss[f"{mark:.0f}s"] = rss_kib(stream.pid) / 1024
    finally:
        stream.terminate()
        stream.wait(timeout=30)
        receiver.close()
    first, last = rss[f"{marks[0]:.0f}s"], rss[f"{marks[-1]:.0f}s"]
    return {"part": "memory", "pace": "fast" if args.fast else "real-time", "rss_mib": rss,
            "change_percent": 100 * (last - first) / first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["hop", "latency", "memory"])
    parser.add_argument("--model", type=Path, help="a .onnx or .safetensors, or 'default' for the embedded default "
                        "model (default: a random small DSAML on today's default features)")
    parser.add_argument("--seconds", type=float, help="audio to stream (hop: 60, memory: 600)")
    parser.add_argument("--fast", action="store_true", help="hop, memory: no real-time pacing")
    parser.add_argument("--trials", type=int, default=20, help="latency: tone bursts")
    parser.add_argument("--burst", type=float, default=1.0, help="latency: seconds of tone per burst")
    parser.add_argument("--gap", type=float, default=2.0, help="latency: seconds of silence before each burst")
    parser.add_argument("--hop", type=float, help="pdmer-stream --hop (default: the command's own)")
    parser.add_argument("--pythonpath", type=Path, help="run the pdmer of this checkout (e.g. a git worktree of an "
                        "earlier commit), to compare versions on one machine")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    args.extra_env = {"PYTHONPATH": str(args.pythonpath)} if args.pythonpath else {}
    # `python -m` puts the working directory first on sys.path: run from the checkout whose pdmer is wanted.
    args.cwd = args.pythonpath or ROOT
    args.seconds = args.seconds or {"hop": 60.0, "memory": 600.0}.get(args.part, 0.0)
    with tempfile.TemporaryDirectory(prefix="pdmer-bench-") as temporary:
        folder = Path(temporary)
        args.model = args.model or default_model(folder)
        figures = {"hop": hop, "latency": latency, "memory": memory}[args.part](args, folder)
    figures.update(cpus=len(os.sched_getaffinity(0)), python=sys.version.split()[0])
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
