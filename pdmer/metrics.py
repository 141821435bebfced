"""CCC, PCC and RMSE of V-A sequences: computed per sequence over the last axis, then averaged over songs.

Same formulas as the authors' ``utils/score.py`` (population variances) and DEAM practice. Degenerate sequences
have documented values instead of NaN, so that averages over songs stay finite:
- PCC is 0 when either sequence is constant (no correlation can be measured);
- CCC is 1 when both sequences are the same constant (perfect agreement), its 0/0 case; every other case is
  the plain formula (a constant prediction of a varying or different constant target scores 0).
Works on torch tensors (differentiable; the training loss uses it) and on anything ``torch.as_tensor`` takes.
"""

from __future__ import annotations

import torch

from pdmer.errors import InputError

NAMES = ("valence", "arousal")  # column order of every (..., T, 2) V-A tensor in pdmer


def _pair(pred, target) -> tuple[torch.Tensor, torch.Tensor]:
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape or pred.ndim == 0 or pred.shape[-1] == 0:
        raise InputError(
            f"prediction and target must have the same non-empty shape [..., T], got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    return pred.to(dtype), target.to(dtype)


def _safe_divide(num: torch.Tensor, den: torch.Tensor, when_zero: float) -> torch.Tensor:
    # The double where keeps gradients finite where den == 0.
    nonzero = den != 0
    return torch.where(nonzero, num / torch.where(nonzero, den, torch.ones_like(den)), torch.full_like(num, when_zero))


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt with a zero gradient at 0 instead of inf: a constant curve (a rater who never moved the slider, or one
    clipped at the scale's end) would otherwise make the loss's gradient NaN (inf x 0 through _safe_divide)."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), torch.zeros_like(x))


def _centred(x: torch.Tensor) -> torch.Tensor:
    """x minus its mean over the last axis; exactly 0 for a constant sequence, whose float mean can be an ulp off
    (scale-free PCC would otherwise read a correlation into that rounding noise)."""
    constant = (x.amax(-1, keepdim=True) == x.amin(-1, keepdim=True))
    return torch.where(constant, torch.zeros_like(x), x - x.mean(-1, keepdim=True))


def ccc(pred, target) -> torch.Tensor:
    """Lin's concordance correlation coefficient over the last axis."""
    pred, target = _pair(pred, target)
    pred_mean, target_mean = pred.mean(-1), target.mean(-1)
    pred_dev, target_dev = _centred(pred), _centred(target)
    covariance = (pred_dev * target_dev).mean(-1)
    den = (pred_dev**2).mean(-1) + (target_dev**2).mean(-1) + (pred_mean - target_mean) ** 2
    return _safe_divide(2 * covariance, den, when_zero=1.0)


def pcc(pred, target) -> torch.Tensor:
    """Pearson's correlation coefficient over the last axis."""
    pred, target = _pair(pred, target)
    pred, target = _centred(pred), _centred(target)
    den = _safe_sqrt((pred**2).sum(-1) * (target**2).sum(-1))
    return _safe_divide((pred * target).sum(-1), den, when_zero=0.0)


def rmse(pred, target) -> torch.Tensor:
    """Root mean squared error over the last axis."""
    pred, target = _pair(pred, target)
    return _safe_sqrt(((pred - target) ** 2).mean(-1))


def va_scores(pred_va, target_va) -> dict[str, torch.Tensor]:
    """Per-song-averaged scores of (B, T, 2) V-A tensors: ``{"valence_ccc": ..., "arousal_rmse": ...}``.

    Each metric is computed per sequence, then averaged over the batch (songs), as the paper's tables do.
    """
    pred_va, target_va = _pair(pred_va, target_va)
    if pred_va.shape[-1] != 2 or pred_va.ndim != 3:
        raise InputError(f"V-A tensors must be [songs, steps, 2], got {tuple(pred_va.shape)}")
    scores = {}
    for column, name in enumerate(NAMES):
        pred, target = pred_va[..., column], target_va[..., column]
        scores[f"{name}_ccc"] = ccc(pred, target).mean()
        scores[f"{name}_pcc"] = pcc(pred, target).mean()
        scores[f"{name}_rmse"] = rmse(pred, target).mean()
    return scores


def auc(scores, positive) -> float:
    """Area under the ROC curve of ``scores`` for telling ``positive`` (bool) items from the rest: the chance that a
    random positive scores above a random negative, ties counting half (Mann-Whitney U / (n+ n-))."""
    import numpy as np

    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    if scores.shape != positive.shape or scores.ndim != 1:
        raise InputError(f"auc needs two 1-d arrays of one length, got {scores.shape} and {positive.shape}")
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise InputError(f"auc needs both classes; got {n_pos} positive and {n_neg} negative items")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    start = 0
    while start < len(scores):  # average ranks over ties
        stop = start
        while stop + 1 < len(scores) and sorted_scores[stop + 1] == sorted_scores[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bootstrap_interval(values, *, resamples: int = 10000, level: float = 0.95, seed: int = 0):
    """Percentile bootstrap interval of the mean of ``values`` [N] or [N, D] over its first axis (items drawn
    with replacement): (low, high), each a float or a [D] array."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        raise InputError("a bootstrap interval needs at least one value")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    return np.percentile(means, tail, axis=0), np.percentile(means, 100 - tail, axis=0)
