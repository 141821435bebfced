"""Peer model: score audio with vibenet (valence and energy/arousal), from its own scratch venv.

vibenet (PyPI `vibenet`, https://github.com/jaeheonshim/vibenet, licence GPL-3.0-or-later) predicts
seven Spotify/Echonest-style track attributes from raw audio with a small EfficientNet student
distilled from a PANNs-based teacher trained on FMA with Echonest labels. We compare against it;
we never ship it: being GPL, it is never imported by pdmer nor installed into the project's .venv.
This module only starts `vibenet_worker.py` with the python of a separate venv
(default .cache/peers/vibenet-venv, git-ignored) that `ensure_venv` creates on first use.

Facts about the pinned release, vibenet==0.1.0 (read from the wheel):
  * Weights ship inside the wheel (vibenet/artifacts/efficientnet_model.onnx, 18.5 MB); inference
    runs on onnxruntime, so nothing is downloaded at run time and torch is not needed.
  * Input: mono at 16 kHz (it resamples with soxr); features are a 128-band log-mel (0-8 kHz,
    40 ms window, 20 ms hop) of the WHOLE file, so it gives one prediction per file, not per window.
  * Outputs, all on [0, 1]: valence, energy, danceability, speechiness (regression outputs clipped
    to [0, 1]) and acousticness, instrumentalness, liveness (sigmoid likelihoods).
    "energy" is its arousal ("perceived intensity and activity level"), so arousal = energy here.
    Our datasets label on other scales (e.g. DEAM 1-9, 4Q quadrants): correlate, or rescale first.
  * Declared deps: librosa, onnxruntime, audioread, pydub, typer (plus numpy/scipy/soxr/soundfile
    through librosa); no torch. The venv is ~640 MB, mostly llvmlite + numba (pulled in by
    librosa), scipy and onnxruntime.
  * onnxruntime is left at its default thread count (vibenet builds single-thread session options
    but does not pass them), so we record CPU seconds (all threads) as well as wall seconds.

    python benchmarks/peer_vibenet.py FILE [FILE ...] [--venv DIR] [--json OUT]
    python benchmarks/peer_vibenet.py --data ../shared/data/4q --split val --levels OUT.json

With --data, the clips of the split that carry a song-level quadrant (4Q, EMOPIA: MIDI rendered by pdmer first)
are scored, and --levels writes the levels evaluation of pdmer eval (AUCs of valence and energy for the signs of
the quadrant, quadrant accuracy with 0.5 as vibenet's midpoint) for `pdmer eval --task real --peer OUT.json`.

Standard library only at import time, so other benchmark scripts can import `vibenet_scores`
without pulling in anything heavy (and without ever importing vibenet themselves).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

VIBENET_VERSION = "0.1.0"
# soundfile is imported by the worker (and by vibenet) but not declared by vibenet; the libsndfile
# bundled with soundfile >= 0.12 decodes the Opus-in-Ogg 4Q clips and mp3.
REQUIREMENTS = [f"vibenet=={VIBENET_VERSION}", "soundfile>=0.12.1"]
REPO = Path(__file__).resolve().parents[1]
DEFAULT_VENV = REPO / ".cache" / "peers" / "vibenet-venv"
WORKER = Path(__file__).resolve().with_name("vibenet_worker.py")


def _log(msg: str) -> None:
    print(f"[peer_vibenet] {msg}", file=sys.stderr, flush=True)


def _installed_version(python: Path) -> str | None:
    probe = "import importlib.metadata as m; print(m.version('vibenet'))"
    r = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def ensure_venv(venv: Path = DEFAULT_VENV) -> Path:
    """Create `venv` with the pinned vibenet unless it already has it; return the venv's python."""
    venv = Path(venv).absolute()
    python = venv / "bin" / "python"
    if python.exists() and _installed_version(python) == VIBENET_VERSION:
        return python
    if not python.exists():
        _log(f"creating venv {venv}")
        # sys.executable works from any venv: `-m venv` bases the new one on the base interpreter.
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    _log(f"pip install {' '.join(REQUIREMENTS)} into {venv}")
    # pip's output goes to stderr so that our stdout stays the result table.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
                   check=True, stdout=sys.stderr)
    return python


def vibenet_scores(paths: list[Path], *, venv: Path = DEFAULT_VENV) -> dict[str, dict]:
    """Score each file with vibenet in a subprocess; return str(path) -> the worker's record.

    A record has valence, arousal (vibenet's energy), raw (all its outputs), seconds (CPU) and
    wall_seconds, or "error" instead of the scores for a file that could not be scored.
    """
    python = ensure_venv(venv)
    keys = [str(p) for p in paths]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(keys, f)
    try:
        # stderr is inherited, so the worker's progress and warnings show up live.
        proc = subprocess.run([str(python), str(WORKER), f.name], stdout=subprocess.PIPE, text=True)
    finally:
        os.unlink(f.name)
    records = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):  # skip anything a native library may have printed to fd 1
            rec = json.loads(line)
            if "path" in rec:  # (the last line is the worker's peak memory)
                records[rec["path"]] = rec
    if proc.returncode != 0:
        raise RuntimeError(f"vibenet worker exited with {proc.returncode} "
                           f"after {len(records)}/{len(keys)} files")
    return records


def print_table(records: dict[str, dict]) -> None:
    print(f"{'file':<40} {'valence':>8} {'arousal':>8} {'cpu s':>7} {'wall s':>7}")
    for path, r in records.items():
        name = Path(path).name
        if "error" in r:
            print(f"{name:<40} ERROR {r['error']}")
        else:
            print(f"{name:<40} {r['valence']:8.3f} {r['arousal']:8.3f} "
                  f"{r['seconds']:7.2f} {r['wall_seconds']:7.2f}")
    ok = [r for r in records.values() if "error" not in r]
    if ok:
        print(f"median per file over {len(ok)} files: "
              f"{statistics.median(r['seconds'] for r in ok):.2f} s CPU, "
              f"{statistics.median(r['wall_seconds'] for r in ok):.2f} s wall")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Score audio files with the peer model vibenet.")
    ap.add_argument("files", nargs="*", type=Path, help="audio files (wav, ogg/opus, mp3)")
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="vibenet's scratch venv")
    ap.add_argument("--json", type=Path, help="write all records to this JSON file")
    ap.add_argument("--data", type=Path, help="a dataset with song-level quadrants (4Q, EMOPIA), read by pdmer")
    ap.add_argument("--split", default="val", help="with --data: the split to score (default val)")
    ap.add_argument("--soundfont", help="with --data of MIDI: the .sf2 pdmer renders with")
    ap.add_argument("--cache", help="with --data of MIDI: pdmer's cache folder (where renderings live)")
    ap.add_argument("--levels", type=Path, help="with --data: write the levels evaluation here (pdmer eval --peer)")
    args = ap.parse_args(argv)

    paths = list(args.files)
    part = quadrant_split(args) if args.data else None
    if part is not None:
        paths += [part.songs[song].audio for song in sorted(part.quadrants)]
    if not paths:
        ap.error("no audio files given (FILE ... or --data DIR)")

    records = vibenet_scores(paths, venv=args.venv)
    print_table(records)
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
    if part is not None:
        levels = level_results(part, records)
        print(json.dumps({k: v for k, v in levels["evaluations"]["levels"].items() if k != "per_song"}))
        if args.levels:
            args.levels.write_text(json.dumps(levels, indent=1))
    return 1 if any("error" in r for r in records.values()) else 0


def quadrant_split(args):
    """The split's clips with quadrants, through pdmer's own loaders (MIDI rendered into pdmer's cache)."""
    from pdmer.data.load import load_dataset
    from pdmer.data.render import MidiRenderer, with_rendered_audio
    from pdmer.evaluate.real import evaluation_split

    part = evaluation_split(load_dataset(args.data), args.split, None)  # the split pdmer eval --task real scores
    if any(s.midi is not None for s in part.songs.values()):
        part = with_rendered_audio(part, MidiRenderer(soundfont=args.soundfont, root=args.cache))
    if not part.quadrants:
        raise SystemExit(f"{args.data}: no song-level quadrants in split {args.split!r}")
    return part


def level_results(part, records: dict[str, dict]) -> dict:
    """pdmer's levels evaluation of vibenet's per-song values (0.5, the middle of its scale, as the sign)."""
    from pdmer.data.curves import quadrant_of
    from pdmer.evaluate.real import level_scores

    rows = []
    for song, quadrant in sorted(part.quadrants.items()):
        record = records.get(str(part.songs[song].audio), {})
        if "error" in record or not record:
            continue
        valence, arousal = record["valence"] - 0.5, record["arousal"] - 0.5
        rows.append({"song": song, "quadrant": quadrant, "valence": valence, "arousal": arousal,
                     "predicted_quadrant": quadrant_of(valence, arousal)})
    seconds = statistics.median(r["seconds"] for r in records.values() if "error" not in r)
    return {"model": f"vibenet {VIBENET_VERSION} (peer)", "data": part.name, "median_cpu_seconds_per_clip": seconds,
            "evaluations": {"levels": {"songs": len(rows), **level_scores(rows), "per_song": rows}}}


if __name__ == "__main__":
    sys.exit(main())
