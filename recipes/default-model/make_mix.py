"""Write the training mix of the embedded default model: the synthetic per-listener benchmark plus the real DEAM
clips at hand, as one dataset in pdmer's plain format (audio and synthetic annotations are symlinked, not copied).

    python recipes/default-model/make_mix.py --synth SYNTH --deam ../shared/data/deam --out MIX

The 10 real clips (DEAM ids 2, 3, 4, 5, 7, 8, 10, 12, 13, 17: the only DEAM audio at hand) carry DEAM's averaged
curves (15-45 s of each 45 s clip) as listener "mean", split by id, fixed before any training:
  train  2, 3, 4, 5, 7      (5 clips)
  val    8, 10              (2 clips: choose between candidate models)
  test   12, 13, 17         (3 clips: the model card's held-out real numbers; never used to choose anything)
Synthetic songs and listeners keep their splits. Song ids: synthetic "s001"...; DEAM "deam2"... .
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pdmer.data.curves import MEAN
from pdmer.data.load import load_dataset
from pdmer.data.plain import write_curve_csv

DEAM_SPLITS = {"train": ["2", "3", "4", "5", "7"], "val": ["8", "10"], "test": ["12", "13", "17"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synth", type=Path, required=True, help="the synthetic benchmark (pdmer synth)")
    parser.add_argument("--deam", type=Path, required=True, help="DEAM in its official layout (../shared/data/deam)")
    parser.add_argument("--audio-dir", type=Path, help="DEAM clips (default: DEAM/emomusic_2013_subset/clips_45s_mp3)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeat-real", type=int, default=1, help="list each real TRAIN clip this many times (copies "
                        "deam2-r2, deam2-r3, ... share its audio and curve), so that batches meet real music often")
    args = parser.parse_args()

    audio_dir = args.audio_dir or args.deam / "emomusic_2013_subset" / "clips_45s_mp3"
    deam = load_dataset(args.deam, "deam", audio_dir=audio_dir)
    synth = json.loads((args.synth / "dataset.json").read_text())
    out = args.out
    if out.exists():
        raise SystemExit(f"{out} exists: remove it or choose another --out")
    (out / "audio").mkdir(parents=True)
    (out / "annotations" / MEAN).mkdir(parents=True)

    for audio in sorted((args.synth / synth.get("audio_dir", "audio")).iterdir()):
        os.symlink(audio.resolve(), out / "audio" / audio.name)
    for listener in sorted((args.synth / "annotations").iterdir()):
        os.symlink(listener.resolve(), out / "annotations" / listener.name)

    curves = {curve.song: curve for curve in deam.curves if curve.listener == MEAN}
    splits = {name: {"songs": list(split["songs"]), "listeners": list(split["listeners"])}
              for name, split in synth["splits"].items()}
    for split, ids in DEAM_SPLITS.items():
        for song_id in ids:
            song = deam.songs[song_id]
            if song.audio is None:
                raise SystemExit(f"DEAM clip {song_id} has no audio in {audio_dir}")
            copies = args.repeat_real if split == "train" else 1
            for copy in range(1, copies + 1):
                name = f"deam{song_id}" + (f"-r{copy}" if copy > 1 else "")
                os.symlink(Path(song.audio).resolve(), out / "audio" / f"{name}{Path(song.audio).suffix}")
                write_curve_csv(out / "annotations" / MEAN / f"{name}.csv", curves[song_id])
                splits[split]["songs"].append(name)
        splits[split]["listeners"].append(MEAN)
    (out / "dataset.json").write_text(json.dumps({
        "name": f"{synth.get('name', 'synth')}+deam10", "scale": "[-1,1]", "audio_dir": "audio", "splits": splits,
        "mix": {"synth": str(args.synth.resolve()), "deam": str(args.deam.resolve()), "deam_splits": DEAM_SPLITS,
                "repeat_real": args.repeat_real},
    }, indent=1) + "\n")
    print(f"wrote {out}: {sum(len(s['songs']) for s in splits.values())} songs "
          f"({sum(map(len, DEAM_SPLITS.values()))} real DEAM clips)")


if __name__ == "__main__":
    main()
