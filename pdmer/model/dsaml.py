"""DSAML: local + global features -> dual-scale attention -> BiLSTM -> (valence, arousal) per 0.5 s step.

Paper §Method (Fig. 2) and the authors' ``models/PDMER.py``. Tensors carry V-A as (valence, arousal); the authors'
code uses (arousal, valence), which ``pdmer.model.authors`` converts when loading their weights.
"""

from __future__ import annotations

import torch
from torch import nn

from pdmer.errors import InputError
from pdmer.model.adapter import STATS_CENTRE, SliceAdapter
from pdmer.model.config import ModelConfig
from pdmer.model.loss import dsaml_loss
from pdmer.model.output import DSAMLOutput
from pdmer.model.transformer import SharedEncoder, band_mask


class Fusion(nn.Module):
    """z = sigma(W z_l + z_g) (paper §Dual-Scale Feature Extractor), then the authors' extra Linear(D, D)."""

    def __init__(self, cfg: ModelConfig, local_dim: int | None):
        super().__init__()
        self.local_proj = nn.Linear(local_dim, cfg.hidden_dim) if local_dim else None  # None: no adapter
        # Not in the paper: an encoder whose size differs from D (musicnn's 200-d) needs a projection.
        self.global_proj = nn.Linear(cfg.global_dim, cfg.hidden_dim) if cfg.global_dim != cfg.hidden_dim else None
        self.out_proj = nn.Linear(cfg.hidden_dim, cfg.hidden_dim) if cfg.fusion_linear else None
        self.input_dropout = nn.Dropout(cfg.input_dropout)

    def forward(self, local: torch.Tensor | None, global_feat: torch.Tensor, steps: int) -> torch.Tensor:
        global_feat = self.input_dropout(global_feat)
        local = None if local is None else self.input_dropout(local)
        if self.global_proj is not None:
            global_feat = self.global_proj(global_feat)
        if local is None:  # ablation without the adapter: the global feature alone, repeated over the steps
            z = torch.sigmoid(global_feat).expand(-1, steps, -1)
        else:
            z = torch.sigmoid(self.local_proj(local) + global_feat)  # global (B, 1, D) broadcasts over time
        return self.out_proj(z) if self.out_proj is not None else z


class SequencePredictor(nn.Module):
    """BiLSTM -> Linear -> Dropout -> Linear(2), the authors' ``SequenceValuePredictionModel``; a causal model
    runs one forward LSTM of twice the width instead (the same output size)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.causal:
            self.lstm = nn.LSTM(cfg.hidden_dim, 2 * cfg.lstm_hidden, batch_first=True)
        else:
            self.lstm = nn.LSTM(cfg.hidden_dim, cfg.lstm_hidden, batch_first=True, bidirectional=True)
        self.hidden = nn.Linear(2 * cfg.lstm_hidden, cfg.head_hidden)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.head_hidden, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self.lstm(x)  # (B, T, 2 * lstm_hidden)
        return self.out(self.dropout(self.hidden(x)))  # (B, T, 2)


def trailing_mean(x: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, T, C) -> (B, T, C): each step's mean over itself and up to ``steps - 1`` steps before it (fewer at the
    start of the sequence), by differences of a cumulative sum (one graph for any T, as ONNX needs)."""
    total = torch.cumsum(x, dim=1)
    before = torch.cat([torch.zeros_like(total[:, :steps]), total], dim=1)[:, : x.shape[1]]  # total[t - steps]
    count = torch.cumsum(torch.ones_like(x[..., :1]), dim=1).clamp(max=steps)
    return (total - before) / count


def _head_mean(maps: list[torch.Tensor]) -> torch.Tensor:
    return maps[-1].mean(dim=1)  # last layer, (B, H, T, T) -> (B, T, T)


class DSAML(nn.Module):
    FRONT_END = ("adapter",)  # submodules that local_features runs: each slice on its own
    OUTPUT = ("predictor.out",)  # the last layer: what adaptation params="output" changes

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        adapter = SliceAdapter(cfg.mel_frames, cfg.n_mels, stats=cfg.slice_stats)
        self.local_dim = adapter.out_dim
        self.adapter = adapter if cfg.use_adapter else None
        self.fusion = Fusion(cfg, self.local_dim if cfg.use_adapter else None)
        self.encoder = SharedEncoder(cfg)  # ONE module: both passes use these parameters
        self.predictor = SequencePredictor(cfg)
        if cfg.global_norm:  # set from the training data (pdmer.train.run), saved with the weights
            self.register_buffer("global_mean", torch.zeros(cfg.global_dim))
            self.register_buffer("global_scale", torch.ones(cfg.global_dim))
        self.level = nn.Linear(cfg.global_dim, 2) if cfg.global_skip else None
        self.trail = nn.Linear(len(STATS_CENTRE), 2) if cfg.trailing_stats else None

    def _check_inputs(self, mel: torch.Tensor | None, global_feat: torch.Tensor, local: torch.Tensor | None):
        cfg = self.config
        if local is not None:
            if local.ndim != 3 or local.shape[-1] != self.local_dim or local.shape[1] == 0:
                raise InputError(
                    f"local must be [batch, steps >= 1, {self.local_dim}] (from local_features), "
                    f"got {tuple(local.shape)}"
                )
            batch, steps = local.shape[:2]
        else:
            if mel is None or mel.ndim != 4 or tuple(mel.shape[2:]) != (cfg.mel_frames, cfg.n_mels) or mel.shape[1] == 0:
                raise InputError(
                    f"mel must be [batch, steps >= 1, {cfg.mel_frames}, {cfg.n_mels}], "
                    f"got {None if mel is None else tuple(mel.shape)}"
                )
            batch, steps = mel.shape[:2]
        if global_feat.ndim == 2:
            global_feat = global_feat[:, None, :]  # one vector per sequence, broadcast over time
        if global_feat.ndim != 3 or global_feat.shape[0] != batch or global_feat.shape[-1] != cfg.global_dim:
            raise InputError(
                f"global_feat must be [batch={batch}, {cfg.global_dim}] (or [batch, steps, "
                f"{cfg.global_dim}] for a per-step global vector), got {tuple(global_feat.shape)}"
            )
        if global_feat.shape[1] not in (1, steps):
            raise InputError(f"global_feat has {global_feat.shape[1]} steps but the input has {steps}")
        return global_feat

    def local_features(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, T, 51, 128) log-mel slices -> (B, T, 476) adapter outputs: each slice's own, so a song's can be
        computed once and reused by every window that contains the slice (``forward(..., local=)``).
        Without the adapter (ablation) they are zeros that forward ignores."""
        if self.adapter is None:
            return mel.new_zeros(*mel.shape[:2], self.local_dim)
        return self.adapter(mel)

    def forward(
        self,
        mel: torch.Tensor | None,
        global_feat: torch.Tensor,
        *,
        local: torch.Tensor | None = None,
        return_layer_maps: bool = False,
    ) -> DSAMLOutput:
        """mel (B, T, 51, 128) log-mel slices, global_feat (B, G) or (B, T, G) -> DSAMLOutput with va (B, T, 2).

        ``local``: precomputed :meth:`local_features` of the slices, used instead of ``mel`` (which may be None)."""
        cfg = self.config
        global_feat = self._check_inputs(mel, global_feat, local)
        if cfg.global_norm:
            global_feat = (global_feat - self.global_mean) * self.global_scale
        steps = (mel if local is None else local).shape[1]
        if self.adapter is None:
            local = None
        elif local is None:
            local = self.adapter(mel)
        z = self.fusion(local, global_feat, steps)  # (B, T, D)

        local_maps = global_maps = None
        if cfg.use_local_attention and cfg.use_global_attention:
            # Both passes of the shared encoder as one batch [local; global] under a mask per sequence: the same
            # numbers as two calls, in half as many (larger) operations, which is what small models spend time on.
            batch = z.shape[0]
            masks = torch.stack([band_mask(steps, cfg.local_band, z.device, causal=cfg.causal),
                                 band_mask(steps, cfg.global_band, z.device, causal=cfg.causal)])  # (2, T, T)
            both, maps = self.encoder(torch.cat([z, z]), masks.repeat_interleave(batch, dim=0)[:, None])
            z_local, z_global = both[:batch], both[batch:]
            local_maps, global_maps = [m[:batch] for m in maps], [m[batch:] for m in maps]
            z = torch.sigmoid(z_local + z_global)  # z' of paper §Dual-Scale Attention Transformer
        elif cfg.use_local_attention:
            z_local, local_maps = self.encoder(z, band_mask(steps, cfg.local_band, z.device, causal=cfg.causal))
            z = z_local
        elif cfg.use_global_attention:
            z, global_maps = self.encoder(z, band_mask(steps, cfg.global_band, z.device, causal=cfg.causal))
        else:  # ablation without either mask: plain full attention, as the authors' code falls back to
            z, global_maps = self.encoder(z, band_mask(steps, steps, z.device, causal=cfg.causal))

        va = self.predictor(z)
        if self.level is not None:
            va = va + self.level(global_feat)  # (B, 1 or T, 2): the song-level path
        if self.trail is not None and local is not None:  # the statistics are the adapter output's last columns
            va = va + self.trail(trailing_mean(local[..., -len(STATS_CENTRE):], cfg.trailing_stats))
        return DSAMLOutput(
            va=va,
            attn_local=_head_mean(local_maps) if local_maps else None,
            attn_global=_head_mean(global_maps) if global_maps else None,
            layer_maps_local=local_maps if return_layer_maps else None,
            layer_maps_global=global_maps if return_layer_maps else None,
        )

    def loss(self, output: DSAMLOutput, target_va: torch.Tensor):
        """The training loss of ``output`` against (B, T, 2) targets (:func:`pdmer.model.loss.dsaml_loss`)."""
        return dsaml_loss(output, target_va, self.config)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def parameter_report(model: DSAML) -> dict[str, int]:
    """Trainable parameters per part and in total (the frozen global encoder is not part of DSAML)."""
    parts = {name: count_parameters(child) for name, child in model.named_children()}
    parts["total"] = sum(parts.values())
    return parts
