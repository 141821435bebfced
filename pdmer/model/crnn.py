"""CRNN baseline: one conv layer on the log-mel, then bidirectional GRU branches for valence and arousal.

Malik, Adavanne, Drossos, Virtanen, Ticha, Jarina, "Stacked convolutional and recurrent neural networks for music
emotion recognition", SMC 2017 (arXiv:1706.02292). What comes from the paper (its abstract,
https://ar5iv.org/html/1706.02292): one CNN layer on the audio features followed by two branches of RNNs, one for
arousal and one for valence, trained separately, with significantly fewer parameters than the previous state of the
art; evaluated on MediaEval 2015 (RMSE 0.202 arousal, 0.268 valence). The layer pattern (conv 3x3 -> BN -> ReLU -> max
pooling along frequency only on log mel-band energies -> bidirectional GRU -> time-distributed dense) is that of the
same group's CRNN family, whose code lists this paper among its uses (github.com/sharathadavanne/sed-crnn, README and
``get_model``). Loss: MSE per dimension (a regression loss; RMSE is the paper's metric). The filter count, pool size,
GRU width and depth, and dropout of the emotion paper were not found; the numbers below are small choices and say so.

Adaptation to pdmer's steps: the group's CRNNs run the GRUs over STFT frames; here the conv front end runs on each
0.5 s slice [51 frames, 128 bands] on its own and is averaged over the slice's frames, and the GRUs run over the slices,
so the model has DSAML's interface (per-step features computed once per slice, ``forward(None, g, local=...)``).

CRNN has no global (whole-song) branch: ``global_feat`` is accepted for pipeline compatibility and ignored. Tensors
carry (valence, arousal).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from pdmer.errors import InputError
from pdmer.metrics import va_scores
from pdmer.model.config import PresetConfig
from pdmer.model.damff import agreement_score, check_mel, step_features
from pdmer.model.dsaml import DSAMLOutput
from pdmer.model.loss import LossParts


@dataclass(frozen=True)
class CRNNConfig(PresetConfig):
    # Input: one log-mel slice per 0.5 s step, [frames, mel bands] as everywhere in pdmer.
    mel_frames: int = 51
    n_mels: int = 128
    global_dim: int = 200  # accepted for pipeline compatibility; CRNN does NOT use the global feature
    conv_channels: int = 16  # filters of the single conv layer (not found in the paper's text)
    conv_kernel: int = 3  # square kernel, as in the group's CRNN code (not found for this paper)
    freq_pool: int = 8  # max pooling along frequency only: 128 bands -> 16 (not found; chosen)
    rnn_hidden: int = 32  # GRU units per direction, in each branch (not found; chosen)
    rnn_layers: int = 2  # stacked bidirectional GRU layers per branch (not found; chosen)
    dropout: float = 0.25  # after the conv block, between GRU layers, before the output (not found; chosen)
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        sizes = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.type in ("int", int)}
        bad = {k: v for k, v in sizes.items() if not isinstance(v, int) or v < 1}
        if bad:
            raise InputError(f"CRNNConfig sizes must be integers >= 1, got {bad}")
        if self.conv_kernel % 2 == 0:
            raise InputError(f"conv_kernel={self.conv_kernel} must be odd (same padding)")
        if self.freq_pool > self.n_mels:
            raise InputError(f"freq_pool={self.freq_pool} pools away all {self.n_mels} mel bands")
        if not 0 <= self.dropout < 1:
            raise InputError(f"dropout={self.dropout} must be in [0, 1)")

    @property
    def feature_dim(self) -> int:
        """Per-step feature: conv channels x pooled bands."""
        return self.conv_channels * (self.n_mels // self.freq_pool)


PRESETS: dict[str, CRNNConfig] = {
    # Same sizes (the paper gives none that we could find); for the 1024-d ImageBind pipeline, whose global
    # feature the model ignores.
    "paper": CRNNConfig(global_dim=1024),
    # The embedded default for the small offline pipeline (musicnn, 200-d).
    "small": CRNNConfig(global_dim=200),
}
CRNNConfig.PRESETS = PRESETS


class ConvFrontEnd(nn.Module):
    """conv -> BN -> ReLU -> frequency max pool -> dropout, then the mean over the slice's frames.

    (B, T, F, M) -> (B, T, conv_channels * M // freq_pool); each slice is processed on its own."""

    def __init__(self, cfg: CRNNConfig):
        super().__init__()
        pad = cfg.conv_kernel // 2
        self.conv = nn.Conv2d(1, cfg.conv_channels, cfg.conv_kernel, padding=pad, bias=False)
        self.bn = nn.BatchNorm2d(cfg.conv_channels)
        self.pool = nn.MaxPool2d((1, cfg.freq_pool))
        self.dropout = nn.Dropout(cfg.dropout)
        self.out_dim = cfg.feature_dim

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        batch, steps, frames, mels = mel.shape
        x = mel.reshape(batch * steps, 1, frames, mels)  # (N, 1, 51, 128)
        x = self.dropout(self.pool(torch.relu(self.bn(self.conv(x)))))  # (N, C, 51, 16)
        x = x.mean(dim=2).flatten(1)  # over the slice's frames: (N, C * 16)
        return x.reshape(batch, steps, self.out_dim)


class GRUBranch(nn.Module):
    """Stacked bidirectional GRU over the steps -> dropout -> Linear(1): one emotion dimension."""

    def __init__(self, cfg: CRNNConfig):
        super().__init__()
        self.gru = nn.GRU(
            cfg.feature_dim,
            cfg.rnn_hidden,
            num_layers=cfg.rnn_layers,
            batch_first=True,
            bidirectional=True,
            dropout=cfg.dropout if cfg.rnn_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(2 * cfg.rnn_hidden, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.gru(features)  # (B, T, 2 * rnn_hidden)
        return self.out(self.dropout(hidden))  # (B, T, 1)


class CRNN(nn.Module):
    FRONT_END = ("adapter",)  # submodules that local_features runs: each slice on its own
    OUTPUT = ("valence.out", "arousal.out")  # the last layer: what adaptation params="output" changes

    def __init__(self, cfg: CRNNConfig):
        super().__init__()
        self.config = cfg
        self.adapter = ConvFrontEnd(cfg)  # shared by both branches
        self.valence = GRUBranch(cfg)
        self.arousal = GRUBranch(cfg)

    def local_features(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, T, 51, 128) log-mel slices -> (B, T, feature_dim): each slice's features depend on that slice only."""
        check_mel(mel, self.config.mel_frames, self.config.n_mels)
        return self.adapter(mel)

    def forward(
        self,
        mel: torch.Tensor | None,
        global_feat: torch.Tensor,
        *,
        local: torch.Tensor | None = None,
        return_layer_maps: bool = False,
    ) -> DSAMLOutput:
        """mel (B, T, 51, 128) or None when ``local`` (B, T, feature_dim) is given; global_feat (B, G) or (B, T, G),
        ignored. -> DSAMLOutput with va (B, T, 2) as (valence, arousal) and no attention maps."""
        features = step_features(self, mel, global_feat, local)  # (B, T, feature_dim)
        va = torch.cat([self.valence(features), self.arousal(features)], dim=-1)  # (B, T, 2)
        return DSAMLOutput(va=va, attn_local=None, attn_global=None)

    def loss(self, output: DSAMLOutput, target_va: torch.Tensor) -> LossParts:
        """MSE of valence + MSE of arousal: each branch gets only its own dimension's error, as if trained
        separately (the paper); the shared conv layer gets both."""
        scores = va_scores(output.va, target_va)  # also checks that the shapes are [B, T, 2] and equal
        squared = (output.va - target_va.to(output.va)) ** 2  # (B, T, 2)
        total = squared.mean(dim=(0, 1)).sum()
        return LossParts(total=total, score=agreement_score(scores), attention=output.va.new_zeros(()), scores=scores)
