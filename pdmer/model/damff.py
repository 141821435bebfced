"""DAMFF baseline: multi-scale convolution -> dual attention feature fusion -> BiLSTM, per 0.5 s step.

Zhang, Yang, Zhang, Luo, "Dual Attention-based Multi-scale Feature Fusion Approach for Dynamic Music Emotion
Recognition", ISMIR 2023 (../shared/papers/damff-dynamic-mer-ismir2023.md). What comes from the paper:
- §3.1: each 0.5 s slice of the log-mel is convolved on its own; layer 1 has parallel 3x1 and 1x5 conv blocks whose
  outputs are concatenated along time; layers 2 and 3 have parallel 3x3 and 5x5 blocks, layer 2's outputs are
  concatenated along channels, layer 3's (A and B) go to the fusion; every conv is followed by BN, ReLU, max pooling.
- §3.2: SCAM on X = A + B: channel attention C (eq. 1), spatial attention S (eq. 2), X' = sigmoid(S + C) (eq. 3);
  fusion Z = X' * A + (1 - X') * B (eq. 4). §3.2.1 says the convolutions turn one channel into 64 (the "paper" preset).
- §3.3: reduce dimension, BiLSTM over the steps, a fully connected layer to (valence, arousal).
- §4.3: loss = (1 - CCC) for arousal + RMSE for valence; Adam, lr 3e-4, batch 32 (training settings, not here).
Every other number (channel counts of layers 1-2, pool sizes, reduction ratios, the reduced size, LSTM width,
dropout) is left open by the paper; the defaults below are small choices for CPU training.

DAMFF has no global (whole-song) branch: ``global_feat`` is accepted so that the model drops into pdmer's DSAML
pipeline (same forward signature, same DSAMLOutput), and is ignored. Tensors carry (valence, arousal).

The per-slice front end is the submodule ``adapter`` mapping (B, T, F, M) -> (B, T, feature_dim), as DSAML's, so
sliding-window inference can compute each slice's feature once (``forward(None, g, local=...)``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from pdmer.errors import InputError
from pdmer.metrics import va_scores
from pdmer.model.config import PresetConfig
from pdmer.model.dsaml import DSAMLOutput
from pdmer.model.loss import LossParts

# ---------------------------------------------------------------------------------------------------------------
# Helpers shared by the baselines (pdmer.model.crnn imports them).


def check_mel(mel: torch.Tensor | None, mel_frames: int, n_mels: int) -> None:
    if mel is None or mel.ndim != 4 or tuple(mel.shape[2:]) != (mel_frames, n_mels) or mel.shape[1] == 0:
        raise InputError(
            f"mel must be [batch, steps >= 1, {mel_frames}, {n_mels}], got {None if mel is None else tuple(mel.shape)}"
        )


def step_features(model: nn.Module, mel, global_feat, local) -> torch.Tensor:
    """A baseline's forward prologue: check the inputs, then its per-step features (B, T, F), given or computed."""
    cfg = model.config
    check_baseline_inputs(
        mel, global_feat, local, mel_frames=cfg.mel_frames, n_mels=cfg.n_mels, local_dim=model.adapter.out_dim
    )
    return model.local_features(mel) if local is None else local


def check_baseline_inputs(
    mel: torch.Tensor | None,
    global_feat: torch.Tensor,
    local: torch.Tensor | None,
    *,
    mel_frames: int,
    n_mels: int,
    local_dim: int,
) -> tuple[int, int]:
    """(batch, steps) of valid inputs, else InputError naming the expected shape. The global feature is only
    checked for its batch size: the baselines do not use it."""
    if local is not None:
        if local.ndim != 3 or local.shape[-1] != local_dim or local.shape[1] == 0:
            raise InputError(
                f"local must be [batch, steps >= 1, {local_dim}] (from local_features), got {tuple(local.shape)}"
            )
        batch, steps = local.shape[:2]
    else:
        check_mel(mel, mel_frames, n_mels)
        batch, steps = mel.shape[:2]
    if not isinstance(global_feat, torch.Tensor) or global_feat.ndim not in (2, 3) or global_feat.shape[0] != batch:
        shape = tuple(global_feat.shape) if isinstance(global_feat, torch.Tensor) else type(global_feat).__name__
        raise InputError(
            f"global_feat must be [batch={batch}, G] or [batch={batch}, steps, G] (it is not used by this baseline), "
            f"got {shape}"
        )
    return batch, steps


def agreement_score(scores: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean of CCC, PCC and 1 - RMSE over valence and arousal, as ``dsaml_loss``'s score."""
    return torch.stack([v if not name.endswith("rmse") else 1 - v for name, v in scores.items()]).mean()


def _same_padding(kernel: tuple[int, int]) -> tuple[int, int]:
    return kernel[0] // 2, kernel[1] // 2


# ---------------------------------------------------------------------------------------------------------------
# Config


@dataclass(frozen=True)
class DAMFFConfig(PresetConfig):
    # Input: one log-mel slice per 0.5 s step, [frames, mel bands] as everywhere in pdmer.
    mel_frames: int = 51
    n_mels: int = 128
    global_dim: int = 200  # accepted for pipeline compatibility; DAMFF does NOT use the global feature
    # Layer 1 (§3.1): a temporal (time_kernel x 1) and a frequency (1 x freq_kernel) filter, kernels as (time, freq)
    # in pdmer's layout. The paper writes "3x1 and 1x5" without naming the axes; its own "temporal l-by-n,
    # frequency m-by-l" convention would swap them (time_kernel=5, freq_kernel=3).
    time_kernel: int = 3
    freq_kernel: int = 5
    # Channel counts per branch: left open by the paper except "64 channels" into SCAM (§3.2.1, "paper" preset).
    channels1: int = 8  # each layer-1 branch; concatenated along time
    channels2: int = 16  # each layer-2 branch; concatenated along channels -> 2 * channels2
    channels3: int = 32  # each layer-3 branch = C of SCAM and of the fused map
    # Max-pool sizes (time, freq): left open by the paper. Layer 1 pools frequency harder (128 bands vs 51 frames),
    # which keeps layers 2-3 cheap on CPU.
    pool1_time: int = 2
    pool1_freq: int = 4
    pool_time: int = 2  # layers 2 and 3
    pool_freq: int = 2
    # SCAM bottlenecks (left open): channel attention C -> C/r -> C, spatial attention HW -> HW/r -> HW.
    channel_reduction: int = 4
    spatial_reduction: int = 4
    feature_dim: int = 128  # per-step feature after "reducing dimension" (§3.3; left open)
    lstm_hidden: int = 64  # per direction (left open)
    dropout: float = 0.2  # on the reduced feature and before the output layer (left open)
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        sizes = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.type in ("int", int)}
        bad = {k: v for k, v in sizes.items() if not isinstance(v, int) or v < 1}
        if bad:
            raise InputError(f"DAMFFConfig sizes must be integers >= 1, got {bad}")
        if self.time_kernel % 2 == 0 or self.freq_kernel % 2 == 0:
            raise InputError(
                f"layer-1 kernels must be odd (same padding), got time_kernel={self.time_kernel}, "
                f"freq_kernel={self.freq_kernel}"
            )
        if not 0 <= self.dropout < 1:
            raise InputError(f"dropout={self.dropout} must be in [0, 1)")
        height, width = self.grid
        if height < 1 or width < 1:
            raise InputError(
                f"a [{self.mel_frames}, {self.n_mels}] slice is pooled away before layer 3's output "
                f"(grid {height}x{width}); use smaller pool sizes"
            )

    @property
    def grid(self) -> tuple[int, int]:
        """(height, width) of layer 3's maps: time-concatenated height and frequency width after three poolings."""
        height = 2 * (self.mel_frames // self.pool1_time) // self.pool_time // self.pool_time
        width = self.n_mels // self.pool1_freq // self.pool_freq // self.pool_freq
        return height, width


PRESETS: dict[str, DAMFFConfig] = {
    # The paper's one stated width (64 channels into SCAM, §3.2.1), other widths doubled to match; for the
    # 1024-d ImageBind pipeline (the global feature is still ignored).
    "paper": DAMFFConfig(global_dim=1024, channels1=16, channels2=32, channels3=64),
    # The embedded default for the small offline pipeline (musicnn, 200-d): half the widths, ~5x less compute.
    "small": DAMFFConfig(global_dim=200),
}
DAMFFConfig.PRESETS = PRESETS


# ---------------------------------------------------------------------------------------------------------------
# Model parts, small to whole


class ConvBlock(nn.Module):
    """conv (same padding) -> BN -> ReLU -> max pool (§3.1: "after each convolutional layer ...")."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int], pool: tuple[int, int]):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, padding=_same_padding(kernel), bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.pool = nn.MaxPool2d(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.bn(self.conv(x))))


class ChannelAttention(nn.Module):
    """Eq. 1: C = BN(Conv2(ReLU(BN(Conv1(GAP(X)))))), point-wise convs C -> C/r -> C; (N, C, H, W) -> (N, C, 1, 1)."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.conv1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(dim=(2, 3), keepdim=True)  # global average pooling
        return self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))


class SpatialAttention(nn.Module):
    """Eq. 2: S = BN(Conv2(ReLU(BN(Conv1(Pool1d(S')))))) with S' = X viewed as (HW, C); (N, C, H, W) -> (N, 1, H, W).

    Pool1d averages over the channels of each position; the point-wise Conv1d then has the HW positions as its
    channels (the excitation "at distinct positions", HW -> HW/r -> HW), as a Conv1d on an (HW, C) view does."""

    def __init__(self, positions: int, reduction: int):
        super().__init__()
        hidden = max(1, positions // reduction)
        self.conv1 = nn.Conv1d(positions, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.conv2 = nn.Conv1d(hidden, positions, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(positions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        s = x.flatten(2).transpose(1, 2)  # S': (N, HW, C)
        s = s.mean(dim=-1, keepdim=True)  # (N, HW, 1)
        s = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(s)))))  # (N, HW, 1)
        return s.reshape(n, 1, height, width)


class DualAttentionFusion(nn.Module):
    """DAFF (§3.2): X = A + B, X' = sigmoid(S + C) (eq. 3), Z = X' * A + (1 - X') * B (eq. 4)."""

    def __init__(self, channels: int, positions: int, channel_reduction: int, spatial_reduction: int):
        super().__init__()
        self.channel = ChannelAttention(channels, channel_reduction)
        self.spatial = SpatialAttention(positions, spatial_reduction)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = a + b
        weight = torch.sigmoid(self.spatial(x) + self.channel(x))  # (N,1,H,W) + (N,C,1,1) -> (N, C, H, W)
        return weight * a + (1 - weight) * b


class MultiScaleFrontEnd(nn.Module):
    """Per-slice front end: multi-scale convolution (§3.1) -> DAFF (§3.2) -> reduced feature (§3.3).

    (B, T, F, M) -> (B, T, feature_dim); each slice is processed on its own (batch norm aside in training mode)."""

    def __init__(self, cfg: DAMFFConfig):
        super().__init__()
        pool1, pool = (cfg.pool1_time, cfg.pool1_freq), (cfg.pool_time, cfg.pool_freq)
        self.layer1_time = ConvBlock(1, cfg.channels1, (cfg.time_kernel, 1), pool1)
        self.layer1_freq = ConvBlock(1, cfg.channels1, (1, cfg.freq_kernel), pool1)
        self.layer2_small = ConvBlock(cfg.channels1, cfg.channels2, (3, 3), pool)
        self.layer2_large = ConvBlock(cfg.channels1, cfg.channels2, (5, 5), pool)
        self.layer3_small = ConvBlock(2 * cfg.channels2, cfg.channels3, (3, 3), pool)  # A
        self.layer3_large = ConvBlock(2 * cfg.channels2, cfg.channels3, (5, 5), pool)  # B
        height, width = cfg.grid
        self.fusion = DualAttentionFusion(cfg.channels3, height * width, cfg.channel_reduction, cfg.spatial_reduction)
        # "Reducing dimension": average the fused map over its (time) rows, then a linear layer over channels x bands.
        self.reduce = nn.Linear(cfg.channels3 * width, cfg.feature_dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out_dim = cfg.feature_dim

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        batch, steps, frames, mels = mel.shape
        x = mel.reshape(batch * steps, 1, frames, mels)  # (N, 1, 51, 128)
        x = torch.cat([self.layer1_time(x), self.layer1_freq(x)], dim=2)  # along time: (N, c1, 2*25, 32)
        x = torch.cat([self.layer2_small(x), self.layer2_large(x)], dim=1)  # along channels: (N, 2*c2, 25, 16)
        z = self.fusion(self.layer3_small(x), self.layer3_large(x))  # (N, c3, 12, 8)
        z = z.mean(dim=2).flatten(1)  # (N, c3 * 8)
        z = self.dropout(torch.relu(self.reduce(z)))  # (N, feature_dim)
        return z.reshape(batch, steps, self.out_dim)


class DAMFF(nn.Module):
    FRONT_END = ("adapter",)  # submodules that local_features runs: each slice on its own
    OUTPUT = ("out",)  # the last layer: what adaptation params="output" changes

    def __init__(self, cfg: DAMFFConfig):
        super().__init__()
        self.config = cfg
        self.adapter = MultiScaleFrontEnd(cfg)
        self.lstm = nn.LSTM(cfg.feature_dim, cfg.lstm_hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(2 * cfg.lstm_hidden, 2)  # (valence, arousal)

    def local_features(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, T, 51, 128) log-mel slices -> (B, T, feature_dim): each slice's features depend on that slice only."""
        check_mel(mel, self.config.mel_frames, self.config.n_mels)
        if self.training and mel.shape[0] * mel.shape[1] < 2:
            # The attention's batch norms see one value per channel and slice (after pooling to 1x1).
            raise InputError("DAMFF in training mode needs at least 2 slices per batch (batch * steps >= 2)")
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
        hidden, _ = self.lstm(features)  # (B, T, 2 * lstm_hidden)
        return DSAMLOutput(va=self.out(self.dropout(hidden)), attn_local=None, attn_global=None)

    def loss(self, output: DSAMLOutput, target_va: torch.Tensor) -> LossParts:
        """§4.3: (1 - CCC) of arousal + RMSE of valence, each per sequence then averaged over the batch."""
        scores = va_scores(output.va, target_va)
        total = (1 - scores["arousal_ccc"]) + scores["valence_rmse"]
        return LossParts(total=total, score=agreement_score(scores), attention=output.va.new_zeros(()), scores=scores)
