"""What DSAML's forward returns. Its own module, below the model and its loss, because both use it: the loss reads
it and the model computes the loss (``DSAML.loss``). ``pdmer.model.dsaml`` re-exports it, where callers import it."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class DSAMLOutput:
    va: torch.Tensor  # (B, T, 2) as (valence, arousal)
    attn_local: torch.Tensor | None  # (B, T, T): last layer of the local pass, mean over heads
    attn_global: torch.Tensor | None  # (B, T, T): last layer of the global pass, mean over heads
    layer_maps_local: list[torch.Tensor] | None = None  # per layer (B, H, T, T), when asked for
    layer_maps_global: list[torch.Tensor] | None = None
