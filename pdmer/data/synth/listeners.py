"""Simulated listeners: how each one turns a song's cue timeline into (valence, arousal) curves at 2 Hz.

Every listener, and the consensus, follows one formula per dimension d (valence, arousal), on the song's normalised
cue timeline z(t) (``music.CUE_NAMES``) and its song mean z̄:

    curve_d(t) = clip( LEVEL_MEAN_d + LEVEL_SCALE_d * (c_d . z̄)                  the song's overall character
                       + bias_d                                                     the listener's offset
                       + gain_d * DYNAMICS_SCALE_d * respond(w_d . (z(t) - z̄))     their response to its changes
                       + noise(t),  -1, 1 )

- ``c_d`` are the consensus weights: listeners agree on a song's overall character (as raters' static ratings agree
  far more than their dynamic ones) and differ in offset and in how they follow the changes within a song.
- ``respond`` delays the signal by the listener's response lag (0-3 s on the 0.5 s grid) and smooths it with a
  first-order lag of ``SMOOTH_SECONDS``, starting settled on the first section (no attack from zero).
- Arousal weights ``w``: with chance 1 - ``MIX_CHANCE`` a single driver, drawn with the chances ``AROUSAL_SHARE``
  (tempo only, loudness only, brightness only or register only), else a Dirichlet mix of all four around them.
- Valence weights ``w``: a Dirichlet mix of mode, dissonance (negative), brightness (small) and home (positive: being
  in the home key set by the first section, which a listener must remember, usually for more than 10 s) around
  ``VALENCE_PULL``; with chance ``CONTRARIAN_CHANCE`` the listener likes minor keys and dissonance: the mode and
  dissonance terms of their response to changes flip sign (their level is the consensus level, as for everyone).
- bias ~ N(0, ``BIAS_SD``), gain ~ U``GAIN_RANGE``, per dimension; noise is AR(1) (coefficient ``NOISE_AR``) with a
  stationary standard deviation of ``NOISE_SD`` times DYNAMICS_SCALE_d, drawn per listener and song.

The consensus is the population's mean listener: bias 0, gain 1, the mean lag (1.5 s) and the expected weights
(``AROUSAL_SHARE``; ``VALENCE_PULL`` with mode and dissonance scaled by 1 - 2 ``CONTRARIAN_CHANCE``). So consensus
arousal rises with tempo, loudness, brightness and register; consensus valence rises with major mode, consonance,
brightness (a little) and being in the home key. The averaged curve of many listeners tends to it. The scales are
calibrated so that the benchmark's mean-over-listeners curves have DEAM's statistics (``benchmark.DEAM``): between
songs they spread like DEAM's averaged curves; within a song they move little, because listeners disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pdmer.data.curves import STEP_SECONDS
from pdmer.data.synth.music import CUE_NAMES

DIMENSIONS = ("valence", "arousal")  # column order of every curve
AROUSAL_SHARE = {"tempo": 0.35, "loudness": 0.30, "brightness": 0.20, "register": 0.15}
MIX_CHANCE = 0.2
VALENCE_PULL = {"mode": 0.4, "dissonance": -0.3, "brightness": 0.1, "home": 0.2}
CONTRARIAN_CHANCE = 0.25
CONCENTRATION = 4.0  # of the Dirichlet mixes: lower = more idiosyncratic listeners
MAX_LAG_SECONDS = 3.0
SMOOTH_SECONDS = 1.0
BIAS_SD = 0.12
GAIN_RANGE = (0.5, 1.5)  # mean 1: the consensus has gain 1
NOISE_SD, NOISE_AR = 0.05, 0.7
# Calibration (valence, arousal). LEVEL_MEAN is DEAM's mean of song means (listeners' offsets average 0).
# LEVEL_SCALE and DYNAMICS_SCALE were fitted so that generate()'s default benchmarks of seeds 0-4, averaged over
# listeners, have DEAM's spread of song means and median within-song std (benchmark.DEAM): each scale was multiplied
# by target / measured until they agreed to 1%. Refit after changing any rule in this module or in music.compose.
LEVEL_MEAN = (0.10, 0.14)
LEVEL_SCALE = (1.78, 1.89)
DYNAMICS_SCALE = (0.114, 0.154)


@dataclass(frozen=True)
class Listener:
    """One listener's mapping from cues to curves (see the module docstring); ``CONSENSUS`` is the mean listener."""

    id: str
    bias: tuple[float, float]  # (valence, arousal)
    gain: tuple[float, float]
    lag_s: float  # response delay, a multiple of 0.5 s
    weights: tuple[dict[str, float], dict[str, float]]  # (valence, arousal): cue name -> weight on its changes
    arousal_driver: str  # the one cue driving arousal, or "mix"
    contrarian: bool  # likes minor keys and dissonance

    def to_dict(self) -> dict:
        """The mapping as plain JSON-able values."""
        return {
            "bias": dict(zip(DIMENSIONS, self.bias)), "gain": dict(zip(DIMENSIONS, self.gain)), "lag_s": self.lag_s,
            "weights": dict(zip(DIMENSIONS, self.weights)), "arousal_driver": self.arousal_driver,
            "contrarian": self.contrarian,
        }


def rounded(weights: dict[str, float]) -> dict[str, float]:
    return {cue: round(float(w), 6) for cue, w in weights.items()}


def draw_listener(rng: np.random.Generator, listener_id: str, bias_sd: float = BIAS_SD) -> Listener:
    """A random listener from the population described in the module docstring; ``bias_sd`` widens or narrows how
    far listeners' offsets spread (a benchmark variant: the default is calibrated, see the docstring)."""
    cues = list(AROUSAL_SHARE)
    share = np.array(list(AROUSAL_SHARE.values()))
    if rng.random() < MIX_CHANCE:
        driver, arousal = "mix", rng.dirichlet(CONCENTRATION * share)
    else:
        driver = cues[rng.choice(len(cues), p=share)]
        arousal = np.array([float(c == driver) for c in cues])
    pull = np.array(list(VALENCE_PULL.values()))
    contrarian = bool(rng.random() < CONTRARIAN_CHANCE)
    signs = np.sign(pull) * [(-1 if contrarian and cue in ("mode", "dissonance") else 1) for cue in VALENCE_PULL]
    valence = signs * rng.dirichlet(CONCENTRATION * abs(pull) / abs(pull).sum()) * abs(pull).sum()
    return Listener(
        id=listener_id,
        bias=tuple(round(float(b), 6) for b in rng.normal(0.0, bias_sd, 2)),
        gain=tuple(round(float(g), 6) for g in rng.uniform(*GAIN_RANGE, 2)),
        lag_s=float(STEP_SECONDS * rng.integers(0, round(MAX_LAG_SECONDS / STEP_SECONDS) + 1)),
        weights=(rounded(dict(zip(VALENCE_PULL, valence))), rounded(dict(zip(cues, arousal)))),
        arousal_driver=driver,
        contrarian=contrarian,
    )


def consensus_listener() -> Listener:
    """The population's mean listener: expected weights, no bias, unit gain, the mean lag."""
    flip = 1.0 - 2.0 * CONTRARIAN_CHANCE
    valence = {cue: w * (flip if cue in ("mode", "dissonance") else 1.0) for cue, w in VALENCE_PULL.items()}
    return Listener("consensus", (0.0, 0.0), (1.0, 1.0), MAX_LAG_SECONDS / 2, (valence, dict(AROUSAL_SHARE)),
                    "mix", False)


CONSENSUS = consensus_listener()


def weigh(cues: np.ndarray, weights: dict[str, float]) -> np.ndarray:
    """[T] weighted sum of the named columns of a [T, len(CUE_NAMES)] cue timeline."""
    return sum(w * cues[:, CUE_NAMES.index(cue)] for cue, w in weights.items())


def respond(signal: np.ndarray, lag_s: float) -> np.ndarray:
    """Delay by ``lag_s`` (holding the first value), then a first-order lag of SMOOTH_SECONDS settled at the start."""
    delay = round(lag_s / STEP_SECONDS)
    delayed = np.r_[np.full(delay, signal[0]), signal][: len(signal)]
    alpha = 1.0 - np.exp(-STEP_SECONDS / SMOOTH_SECONDS)
    out = np.empty_like(delayed, dtype=np.float64)
    out[0] = delayed[0]
    for i in range(1, len(out)):  # T is ~100: a plain loop is clearer than a filter and fast enough
        out[i] = out[i - 1] + alpha * (delayed[i] - out[i - 1])
    return out


def level(cues: np.ndarray) -> np.ndarray:
    """[2] the consensus (valence, arousal) of the song as a whole, from its mean cues."""
    mean = cues.mean(0, keepdims=True)
    return np.array([LEVEL_MEAN[d] + LEVEL_SCALE[d] * weigh(mean, CONSENSUS.weights[d])[0] for d in range(2)])


def ar1_noise(rng: np.random.Generator, steps: int) -> np.ndarray:
    """[steps, 2] AR(1) noise with unit stationary standard deviation, started from its stationary law."""
    shocks = rng.standard_normal((steps, 2))
    noise = np.empty((steps, 2))
    noise[0] = shocks[0]
    for i in range(1, steps):
        noise[i] = NOISE_AR * noise[i - 1] + np.sqrt(1 - NOISE_AR**2) * shocks[i]
    return noise


def listener_curve(listener: Listener, cues: np.ndarray, noise: np.random.Generator | None = None) -> np.ndarray:
    """[T, 2] (valence, arousal) of ``listener`` for a song's cue timeline; without ``noise``, the noise-free curve
    (the oracle that knows the listener's mapping)."""
    cues = np.asarray(cues, dtype=np.float64)
    changes = cues - cues.mean(0, keepdims=True)
    curve = np.stack([
        level(cues)[d] + listener.bias[d]
        + listener.gain[d] * DYNAMICS_SCALE[d] * respond(weigh(changes, listener.weights[d]), listener.lag_s)
        for d in range(2)
    ], axis=1)
    if noise is not None:
        curve += NOISE_SD * np.array(DYNAMICS_SCALE) * ar1_noise(noise, len(curve))
    return np.clip(curve, -1.0, 1.0).astype(np.float32)


def consensus_curve(cues: np.ndarray) -> np.ndarray:
    """[T, 2] the consensus (valence, arousal) curve of a song: the mean listener's, noise-free."""
    return listener_curve(CONSENSUS, cues)
