"""The "ImageBind adapter": a small CNN that turns each 0.5 s log-mel slice into the local feature z_l.

Paper Fig. 3 and the authors' ``models/layer/spectrogram_feature_extractor.py``: two conv blocks
(conv -> BN -> ReLU -> MaxPool(2, pad 1)), a 1x1 conv to one channel, flatten. The Linear to D lives in the fusion
(as in the authors' ``FeatureFusionModel``), so this module's output is the flattened map: 476 values for [51, 128].

Not in the paper: with ``stats``, three numbers measured on the slice itself are appended (``slice_stats``).
"""

from __future__ import annotations

import torch
from torch import nn

from pdmer.errors import InputError


class ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int], padding: tuple[int, int]):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, padding=padding)
        self.bn = nn.BatchNorm2d(out_channels)
        self.pool = nn.MaxPool2d(kernel_size=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.bn(self.conv(x))))


def _pooled(size: int) -> int:
    return (size + 2 - 2) // 2 + 1  # MaxPool2d(kernel 2, stride 2, padding 1)


# Fixed centre and scale of each statistic (mean and standard deviation over 2,049 slices: the first 60 s of 12 4Q
# train clips and 12 VGMIDI train pieces as rendered with FluidR3_GM), so that each enters the fusion at about unit
# scale: it has no weights of its own to learn one.
STATS_CENTRE = (-3.4, 0.145, 0.77)
STATS_SCALE = (3.4, 0.06, 0.40)
EDGE = 3  # frames at each end of a slice that see its edge (the STFT's centre padding) more than the music


def slice_statistics(mel: torch.Tensor) -> torch.Tensor:
    """(N, frames, mels) log-mel slices -> (N, 3): loudness (mean log-mel), onset strength (the mean positive
    frame-to-frame rise, spectral flux) and its swing (the standard deviation over frames of each frame's mean).

    Why: within a piece, VGMIDI listeners' arousal follows how busy the music is (trailing onset strength, PCC 0.30
    on the train split: ``recipes/default-model/diagnostics/onset_arousal.py``), which a front end trained on
    synthetic music and then frozen may not carry. Parameter-free, so a frozen front end keeps them."""
    mel = mel[:, EDGE:-EDGE]
    frame_level = mel.mean(dim=2)  # (N, frames)
    stats = torch.stack([
        frame_level.mean(dim=1),
        torch.relu(mel[:, 1:] - mel[:, :-1]).mean(dim=(1, 2)),
        frame_level.std(dim=1),
    ], dim=1)
    centre, scale = stats.new_tensor(STATS_CENTRE), stats.new_tensor(STATS_SCALE)
    return (stats - centre) / scale


class SliceAdapter(nn.Module):
    def __init__(self, mel_frames: int = 51, n_mels: int = 128, stats: bool = False):
        super().__init__()
        if stats and mel_frames < 2 * EDGE + 2:
            raise InputError(f"slice_stats needs slices of at least {2 * EDGE + 2} mel frames, "
                             f"got mel_frames={mel_frames}")
        self.stats = stats
        self.blocks = nn.Sequential(
            ConvBlock(1, 8, kernel_size=(3, 1), padding=(2, 1)),  # (3,1) along time: +2 frames, +2 mels
            ConvBlock(8, 16, kernel_size=(3, 3), padding=(1, 1)),
        )
        self.reduce = nn.Conv2d(16, 1, kernel_size=1)
        height = _pooled(_pooled(mel_frames + 2))
        width = _pooled(_pooled(n_mels + 2))
        self.out_dim = height * width + (len(STATS_CENTRE) if stats else 0)  # 14 * 34 = 476 for [51, 128]

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        batch, steps, frames, mels = mel.shape
        x = mel.reshape(batch * steps, 1, frames, mels)  # (B*T, 1, 51, 128)
        maps = self.reduce(self.blocks(x)).flatten(1)  # (B*T, 14 * 34)
        if self.stats:
            maps = torch.cat([maps, slice_statistics(x[:, 0])], dim=1)  # (B*T, 476 + 3)
        return maps.reshape(batch, steps, self.out_dim)  # (B, T, 476)
