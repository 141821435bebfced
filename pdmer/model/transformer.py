"""The dual-scale attention transformer: ONE encoder, run twice under two band masks (paper eq. 1-2).

Layers are BERT-style post-norm blocks with relative-key position scores and no absolute positions, as the authors'
``models/layer/{attention,transformer_encoder}.py`` (built on transformers' Blip2QFormer parts). The local pass sees
|i - j| <= n_l, the global pass |i - j| <= n_g; both use the same parameters.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pdmer.model.config import ModelConfig


def band_mask(steps: int, band: int, device: torch.device | None = None, *, causal: bool = False) -> torch.Tensor:
    """M_n of paper eq. 1 as a bool [T, T]: True where |i - j| <= band (``causal``: and j <= i, the past only).
    Attention takes a mask as [T, T] (one for the batch) or [B, 1, T, T] (one per sequence)."""
    position = torch.arange(steps, device=device)
    distance = position[:, None] - position[None, :]  # i - j
    return (distance >= 0) & (distance <= band) if causal else distance.abs() <= band


class RelativeKeySelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.max_distance = cfg.max_relative_distance
        self.query = nn.Linear(cfg.hidden_dim, cfg.hidden_dim)
        self.key = nn.Linear(cfg.hidden_dim, cfg.hidden_dim)
        self.value = nn.Linear(cfg.hidden_dim, cfg.hidden_dim)
        # One learned vector per signed distance i - j in (-max, max): 2*max - 1 rows.
        self.distance_embedding = nn.Embedding(2 * cfg.max_relative_distance - 1, cfg.head_dim)
        self.dropout = nn.Dropout(cfg.dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, _ = x.shape
        return x.view(batch, steps, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, steps, dim = x.shape
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        position = torch.arange(steps, device=x.device)
        # Distances past the table are clamped; the band masks (n <= 30) never let them through anyway.
        distance = (position[:, None] - position[None, :]).clamp(1 - self.max_distance, self.max_distance - 1)
        relative = self.distance_embedding(distance + self.max_distance - 1)  # (T, T, hd)
        scores = q @ k.transpose(-1, -2) + torch.einsum("bhld,lrd->bhlr", q, relative)  # (B, H, T, T)
        scores = scores / math.sqrt(self.head_dim)
        # -inf, not the authors' additive -10000: identical softmax, and masked weights are exactly zero.
        probs = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        context = self.dropout(probs) @ v  # (B, H, T, hd)
        return context.transpose(1, 2).reshape(batch, steps, dim), probs


class EncoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attention = RelativeKeySelfAttention(cfg)
        self.attention_out = nn.Linear(cfg.hidden_dim, cfg.hidden_dim)
        self.attention_norm = nn.LayerNorm(cfg.hidden_dim, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(cfg.hidden_dim, cfg.ffn_dim)
        self.ffn_out = nn.Linear(cfg.ffn_dim, cfg.hidden_dim)
        self.ffn_norm = nn.LayerNorm(cfg.hidden_dim, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        context, probs = self.attention(x, mask)
        x = self.attention_norm(x + self.dropout(self.attention_out(context)))  # post-norm, as BERT
        ffn = self.ffn_out(nn.functional.gelu(self.ffn_in(x)))
        return self.ffn_norm(x + self.dropout(ffn)), probs


class SharedEncoder(nn.Module):
    """f_theta of paper eq. 2: a stack of layers; ``forward`` returns the output and each layer's (B, H, T, T) map."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        maps = []
        for layer in self.layers:
            x, probs = layer(x, mask)
            maps.append(probs)
        return x, maps
