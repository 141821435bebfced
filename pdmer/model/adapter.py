"""The "ImageBind adapter": a small CNN that turns each 0.5 s log-mel slice into the local feature z_l.

Paper Fig. 3 and the authors' ``models/layer/spectrogram_feature_extractor.py``: two conv blocks
(conv -> BN -> ReLU -> MaxPool(2, pad 1)), a 1x1 conv to one channel, flatten. The Linear to D lives in the fusion
(as in the authors' ``FeatureFusionModel``), so this module's output is the flattened map: 476 values for [51, 128].
"""

from __future__ import annotations

import torch
from torch import nn


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


class SliceAdapter(nn.Module):
    def __init__(self, mel_frames: int = 51, n_mels: int = 128):
        super().__init__()
        self.blocks = nn.Sequential(
            ConvBlock(1, 8, kernel_size=(3, 1), padding=(2, 1)),  # (3,1) along time: +2 frames, +2 mels
            ConvBlock(8, 16, kernel_size=(3, 3), padding=(1, 1)),
        )
        self.reduce = nn.Conv2d(16, 1, kernel_size=1)
        height = _pooled(_pooled(mel_frames + 2))
        width = _pooled(_pooled(n_mels + 2))
        self.out_dim = height * width  # 14 * 34 = 476 for [51, 128]

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        batch, steps, frames, mels = mel.shape
        x = mel.reshape(batch * steps, 1, frames, mels)  # (B*T, 1, 51, 128)
        x = self.reduce(self.blocks(x))  # (B*T, 1, 14, 34)
        return x.reshape(batch, steps, self.out_dim)  # (B, T, 476)
