"""DSAML's training loss: 1 - mean of six agreement scores, plus the diagonal attention loss (paper eq. 3).

Authors' ``utils/train.py:get_loss_with_batch``: score = mean(CCC_v, PCC_v, 1 - RMSE_v, CCC_a, PCC_a, 1 - RMSE_a),
each per sequence then averaged over the batch; loss = 1 - score + L_att.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pdmer.metrics import va_scores
from pdmer.model.config import ModelConfig
from pdmer.model.output import DSAMLOutput


@dataclass
class LossParts:
    total: torch.Tensor
    score: torch.Tensor  # mean of the six agreement scores (higher is better)
    attention: torch.Tensor  # L_att, already weighted
    scores: dict[str, torch.Tensor]


def diagonal_attention_loss(
    attn_local: torch.Tensor | None,
    attn_global: torch.Tensor | None,
    alpha: float,
    beta: float,
    *,
    reduction: str = "per_sequence",
) -> torch.Tensor:
    """Paper eq. 3: mean_i[(diag(A_l)_i - alpha)^2 + (diag(A_g)_i - beta)^2] for head-averaged (B, T, T) maps.

    ``reduction="per_sequence"`` applies it to each sequence's maps and averages over the batch;
    ``"batch_map"`` applies it once to the batch-averaged maps, as the authors' code does. A missing map (an
    ablation without that attention pass) contributes nothing.
    """
    loss = torch.zeros(())
    for maps, target in ((attn_local, alpha), (attn_global, beta)):
        if maps is None:
            continue
        if reduction == "batch_map":
            maps = maps.mean(dim=0, keepdim=True)
        diagonal = torch.diagonal(maps, dim1=-2, dim2=-1)  # (B, T)
        loss = loss.to(maps) + ((diagonal - target) ** 2).mean(dim=-1).mean()
    return loss


def dsaml_loss(output: DSAMLOutput, target_va: torch.Tensor, cfg: ModelConfig) -> LossParts:
    """The loss of one batch: ``output.va`` and ``target_va`` are (B, T, 2) as (valence, arousal)."""
    scores = va_scores(output.va, target_va)
    agreement = [value if not name.endswith("rmse") else 1 - value for name, value in scores.items()]
    score = torch.stack(agreement).mean()
    attention = cfg.attn_loss_weight * diagonal_attention_loss(
        output.attn_local,
        output.attn_global,
        cfg.attn_loss_local_target,
        cfg.attn_loss_global_target,
        reduction=cfg.attn_loss_reduction,
    )
    return LossParts(total=1 - score + attention, score=score, attention=attention, scores=scores)


SIGN_TEMPERATURE = 0.1  # the soft margin of song_sign_loss, in units of the [-1, 1] scale


def song_sign_loss(va: torch.Tensor, signs: torch.Tensor, temperature: float = SIGN_TEMPERATURE) -> torch.Tensor:
    """Song-level quadrant labels (not in the paper): a logistic loss on the sign of each clip's mean prediction.

    ``va`` (B, T, 2) predictions, ``signs`` (B, 2) of +-1 (the quadrant's valence and arousal signs). Per clip and
    dimension: t * softplus(-s m / t), with m the mean over the clip: about -s m while the sign is wrong, fading to
    0 once the mean is a few t past zero on the right side. It asks for the right side of neutral, not for a level
    the labels do not give; t scales it so that it is of the size of the curve loss."""
    means = va.mean(dim=1)
    return (temperature * torch.nn.functional.softplus(-signs * means / temperature)).mean()
