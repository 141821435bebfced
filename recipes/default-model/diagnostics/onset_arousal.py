"""Does within-piece arousal follow how busy the music is? VGMIDI *train* pieces only, no model.

    python recipes/default-model/diagnostics/onset_arousal.py      (needs ../shared/data/vgmidi, rendered once)

For each piece's listener-mean curve, the PCC over its 0.5 s steps between arousal and (a) the trailing 3.5 s
spectral-flux onset strength, (b) the trailing 3.5 s level in dB; printed: the means over pieces.
(2026-12-02: onset 0.30, level 0.18, level against valence 0.05.)
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import soundfile as sf

from pdmer.data.curves import MEAN, STEP_SECONDS
from pdmer.data.render import with_rendered_audio
from pdmer.data.vgmidi import load_vgmidi



def onset_strength(y: np.ndarray) -> np.ndarray:
    """Spectral flux of 1024-sample Hann frames, hop 512: the summed rise of log magnitudes."""
    frames = np.lib.stride_tricks.sliding_window_view(y, 1024)[::512] * np.hanning(1024)
    magnitude = np.log1p(100 * np.abs(np.fft.rfft(frames, axis=1)))
    return np.maximum(np.diff(magnitude, axis=0), 0).sum(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="train", help="VGMIDI split whose pieces are measured (default train)")
    parser.add_argument("--trailing", type=float, default=3.0, help="seconds before each step's own 0.5 s")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    dataset = with_rendered_audio(load_vgmidi("../shared/data/vgmidi"))
    pieces = set(dataset.splits[args.split]["songs"])
    r_level, r_onset, r_level_valence = [], [], []
    for curve in dataset.curves:
        if curve.listener != MEAN or curve.song not in pieces or curve.va[:, 1].std() < 1e-6:
            continue
        y, rate = sf.read(dataset.songs[curve.song].audio, always_2d=True)
        y = y.mean(axis=1)
        flux, frames_per_s = onset_strength(y), rate / 512
        level, onset = [], []
        for t in range(len(curve.va)):
            start = max(curve.start_s + t * STEP_SECONDS - args.trailing, 0)
            end = curve.start_s + (t + 1) * STEP_SECONDS
            level.append(10 * np.log10(np.mean(y[int(start * rate) : max(int(end * rate), 1)] ** 2) + 1e-10))
            a, b = int(start * frames_per_s), int(end * frames_per_s)
            onset.append(flux[a : max(b, a + 1)].mean() if a < len(flux) else 0.0)
        r_level.append(np.corrcoef(level, curve.va[:, 1])[0, 1])
        r_onset.append(np.corrcoef(onset, curve.va[:, 1])[0, 1])
        r_level_valence.append(np.corrcoef(level, curve.va[:, 0])[0, 1])
    print(f"{len(r_level)} {args.split} pieces, trailing {args.trailing:g} s; mean within-piece PCC with arousal: "
          f"onset {np.nanmean(r_onset):.3f}, level {np.nanmean(r_level):.3f}; "
          f"level with valence {np.nanmean(r_level_valence):.3f}")


if __name__ == "__main__":
    main()
