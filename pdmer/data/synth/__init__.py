"""A synthetic per-listener benchmark: procedural songs whose cues drive each simulated listener's V-A curves.

Real per-rater curves are not at hand; here listeners differ in learnable ways (offset, gain, response lag, the
cues that drive their arousal, the polarity of their valence), so personalisation can be measured. See
``music`` (songs and cues), ``listeners`` (consensus and listener rules) and ``benchmark`` (splits, calibration to
DEAM, writing). Numpy only.
"""

from pdmer.data.synth.benchmark import (
    DEAM,
    Benchmark,
    baseline_scores,
    calibration_report,
    curve_statistics,
    generate,
    make_benchmark,
)
from pdmer.data.synth.listeners import CONSENSUS, Listener, consensus_curve, draw_listener, listener_curve
from pdmer.data.synth.music import CUE_NAMES, RATE, Score, Section, SynthSong, compose, cue_timeline, render

__all__ = [
    "DEAM", "Benchmark", "baseline_scores", "calibration_report", "curve_statistics", "generate", "make_benchmark",
    "CONSENSUS", "Listener", "consensus_curve", "draw_listener", "listener_curve",
    "CUE_NAMES", "RATE", "Score", "Section", "SynthSong", "compose", "cue_timeline", "render",
]
