"""The two evaluation tasks of the DSAML paper, scored per song and averaged over songs.

- traditional DMER (Table 1): the averaged (mean-over-raters) curve of each song of the split;
- personalized DMER (Table 2): each listener's own curves, after adapting to that listener with
  ``support="song"``: one of their songs (chosen by ``seed``), scored on all their other songs; or
  ``support="frames"``: the first 60 labels of each of their curves, scored on the rest of that curve (the authors'
  protocol for DEAM's test songs: ``split_batch_seq(batch, [60, -1])`` in ``utils/train.py:validate_model``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pdmer.data.curves import MEAN, Curve, CurveSet
from pdmer.errors import InputError
from pdmer.evaluate.predictors import Predictor
from pdmer.metrics import va_scores

SUPPORT_FRAMES = 60  # authors' model_feature_num_per_audio: the support part of a test song
METRICS = ("ccc", "pcc", "rmse")
SUPPORT_MODES = ("song", "frames")


@dataclass
class CurveScore:
    song: str
    listener: str
    steps: int
    scores: dict[str, float]  # "valence_ccc", ..., "arousal_rmse"


def score_curve(predicted: np.ndarray, curve: Curve) -> CurveScore:
    steps = len(predicted)
    scores = va_scores(predicted[None], curve.va[None, :steps])  # one song: its own scores
    return CurveScore(curve.song, curve.listener, steps, {key: float(value) for key, value in scores.items()})


def mean_scores(results: list[CurveScore]) -> dict[str, float]:
    if not results:
        return {}
    return {key: float(np.mean([r.scores[key] for r in results])) for key in results[0].scores}


Progress = Callable[[str], None]


def traditional(split: CurveSet, predictor: Predictor, *, progress: Progress | None = None) -> list[CurveScore]:
    curves = split.mean_curves()
    if not curves:
        raise InputError(f"{split.name}: no curves to evaluate")
    results = []
    for curve in curves:
        results.append(score_curve(predictor.predict(curve), curve))
        progress and progress(f"dmer song {curve.song}")
    return results


def personalized(
    split: CurveSet,
    predictor: Predictor,
    *,
    support: str = "song",
    seed: int = 0,
    progress: Progress | None = None,
) -> list[CurveScore]:
    if support not in SUPPORT_MODES:
        raise InputError(f"support={support!r} must be one of {', '.join(SUPPORT_MODES)}")
    results = []
    if support == "song":
        tasks = split.by_listener(min_songs=2)
        if not tasks:
            raise InputError(f"{split.name}: no listener has 2 or more songs (1 to adapt on, 1 or more to score)")
        rng = np.random.default_rng(seed)
        for listener, curves in tasks.items():
            chosen = int(rng.integers(len(curves)))
            adapted = predictor.personalize([curves[chosen]])
            for curve in curves[:chosen] + curves[chosen + 1 :]:
                results.append(score_curve(adapted.predict(curve), curve))
            progress and progress(f"pdmer listener {listener}")
    else:
        curves = [c for c in split.curves if c.listener != MEAN and len(c.va) > SUPPORT_FRAMES + 1]
        if not curves:
            raise InputError(f"{split.name}: no listener curve is longer than {SUPPORT_FRAMES + 1} labels")
        for curve in curves:
            adapted = predictor.personalize([curve.window(0, SUPPORT_FRAMES)])
            query = curve.window(SUPPORT_FRAMES)
            results.append(score_curve(adapted.predict(query), query))
            progress and progress(f"pdmer {curve.listener} song {curve.song}")
    return results
