"""Score audio files with vibenet; runs INSIDE vibenet's scratch venv, never in the project's.

Started by benchmarks/peer_vibenet.py as `<venv>/bin/python vibenet_worker.py PATHS.json`, where
PATHS.json holds a JSON list of audio paths. Writes one JSON line per file to stdout:

    {"path", "valence", "arousal", "raw": {all 7 vibenet outputs}, "seconds", "wall_seconds"}

or {"path", "error", "seconds", "wall_seconds"} for a file that fails; then it carries on. The last line is
{"peak_rss_mib"}: the process's peak memory.
"seconds" is process CPU time (all threads) for decode + resample + features + inference of that
file; the model load and a warm-up call are done once up front and not counted.
Progress goes to stderr.
"""

import json
import sys
import time

import numpy as np
import soundfile as sf


def main() -> int:
    # Keep stdout for our JSON lines only: anything vibenet or its deps print goes to stderr.
    out, sys.stdout = sys.stdout, sys.stderr
    with open(sys.argv[1]) as f:
        paths = json.load(f)

    from vibenet import load_model

    t0 = time.perf_counter()
    model = load_model()
    # One throw-away call so the first file's time does not include onnxruntime's warm-up.
    model.predict(np.zeros(16000, dtype=np.float32), sr=16000)
    print(f"vibenet model loaded in {time.perf_counter() - t0:.2f} s", file=sys.stderr)

    for i, path in enumerate(paths, 1):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        try:
            # We decode ourselves rather than pass the path: vibenet's own loader falls back to a
            # channels-first librosa array and then averages the wrong axis for stereo files.
            # soundfile (libsndfile >= 1.1) reads wav, ogg/opus and mp3.
            y, sr = sf.read(path, dtype="float32", always_2d=True)
            y = np.ascontiguousarray(y.mean(axis=1))  # vibenet is mono
            # predict() resamples a raw waveform to its 16 kHz itself when given sr.
            raw = model.predict(y, sr=sr)[0].to_dict()
            rec = {"path": path, "valence": raw["valence"], "arousal": raw["energy"], "raw": raw}
        except Exception as e:  # one bad file must not stop the run
            rec = {"path": path, "error": f"{type(e).__name__}: {e}"}
        rec["seconds"] = time.process_time() - cpu0
        rec["wall_seconds"] = time.perf_counter() - wall0
        out.write(json.dumps(rec) + "\n")
        out.flush()
        if i % 50 == 0 or i == len(paths):
            print(f"vibenet: {i}/{len(paths)} files", file=sys.stderr)
    import resource

    out.write(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
