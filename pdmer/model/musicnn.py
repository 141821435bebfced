"""MSD_musicnn (Pons & Serra, musicnn 0.1.0, ISC licence) in PyTorch: the embedded default global encoder.

Structure from musicnn's ``models.py:build_musicnn`` (read for facts): a batch-normalised log-mel patch
[187 frames, 96 mels] -> front end (two "timbral" convs over 7 frames x 40 % / 70 % of the mel axis, three
"temporal" convs over 128 / 64 / 32 frames; each conv -> ReLU -> BN -> max over frequency) -> mid end (three
7-frame convs over the concatenated features, the 2nd and 3rd residual) -> back end (max and mean over time,
BN, dense 200 + ReLU + BN = the "penultimate" features, dense 50 = tag logits). Every TF batch norm uses
epsilon 1e-3 (tf.compat.v1.layers default). Weights: ``pdmer/assets/musicnn_msd.safetensors``, converted from the
wheel by ``pdmer convert-musicnn``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from pdmer.errors import InputError
from pdmer.model.preprocess import Resampler, mel_power

# musicnn/configuration.py and extractor.py
SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "musicnn_msd.safetensors"  # `pdmer convert-musicnn`
ONNX = WEIGHTS.with_suffix(".onnx")  # the same network for onnxruntime, written by `pdmer convert-musicnn` too
PATCH_FRAMES = 187  # librosa.time_to_frames(3 s) + 1: the 3 s patches the model was trained on
TF_BN_EPS = 1e-3
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient",
    "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening",
    "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad",
    "House", "happy",
)  # fmt: skip


class FrontEndBranch(nn.Module):
    """conv -> ReLU -> BN -> max over the mel axis, giving one value per channel and frame."""

    def __init__(self, out_channels: int, frames: int, mels: int):
        super().__init__()
        self.conv = nn.Conv2d(1, out_channels, kernel_size=(frames, mels))
        self.bn = nn.BatchNorm2d(out_channels, eps=TF_BN_EPS)
        # TF pads time only: 3 + 3 for the 7-frame timbral convs, "same" (k-1)//2 before for the temporal ones.
        self.time_pad = ((frames - 1) // 2, frames - 1 - (frames - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, *self.time_pad))
        if self.training:
            return self.bn(torch.relu(self.conv(x))).amax(dim=3)  # (N, C, T), literally as musicnn's graph
        # Inference: ReLU and the BN's per-channel affine map are monotonic, so the max over frequency can come
        # first: max for channels with a positive BN scale, min for the others. Same values, 2-3x less work on
        # the largest tensors of the network. The min is a max of the negated conv, so the conv of those
        # channels runs with negated weights and one max serves all: min(x) = -max(-x).
        scale = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        sign = torch.where(scale >= 0, 1.0, -1.0)
        flipped = F.conv2d(x, self.conv.weight * sign[:, None, None, None], self.conv.bias * sign)
        extreme = flipped.amax(dim=3) * sign[:, None]  # (N, C, T): the max or the min of the conv over the mel axis
        return F.batch_norm(
            torch.relu(extreme), self.bn.running_mean, self.bn.running_var, self.bn.weight, self.bn.bias,
            training=False, eps=self.bn.eps,
        )


class FrontEnd(nn.Module):
    def __init__(self, mels: int = N_MELS):
        super().__init__()
        self.input_bn = nn.BatchNorm2d(1, eps=TF_BN_EPS)
        # build_musicnn: num_filt 1.6 -> 204 timbral and 51 temporal filters; kernels int(0.4 * 96), int(0.7 * 96).
        self.timbral = nn.ModuleList(FrontEndBranch(204, 7, int(fraction * mels)) for fraction in (0.4, 0.7))
        self.temporal = nn.ModuleList(FrontEndBranch(51, frames, 1) for frames in (128, 64, 32))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.input_bn(mel[:, None])  # (N, 1, T, mels)
        return torch.cat([branch(x) for branch in (*self.timbral, *self.temporal)], dim=1)  # (N, 561, T)


class MidEnd(nn.Module):
    def __init__(self, in_channels: int = 561, channels: int = 64):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(in_channels if i == 0 else channels, channels, kernel_size=7, padding=3) for i in range(3)
        )
        self.bns = nn.ModuleList(nn.BatchNorm1d(channels, eps=TF_BN_EPS) for _ in range(3))

    def forward(self, front: torch.Tensor) -> torch.Tensor:
        outputs = [front]
        x = None
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            y = bn(torch.relu(conv(outputs[-1])))  # (N, 64, T)
            x = y if i == 0 else y + x  # layers 2 and 3 are residual
            outputs.append(x)
        return torch.cat(outputs, dim=1)  # (N, 561 + 3 * 64 = 753, T)


class BackEnd(nn.Module):
    def __init__(self, channels: int = 753, units: int = 200, num_tags: int = 50):
        super().__init__()
        self.pool_bn = nn.BatchNorm1d(2 * channels, eps=TF_BN_EPS)
        self.dense = nn.Linear(2 * channels, units)
        self.dense_bn = nn.BatchNorm1d(units, eps=TF_BN_EPS)
        self.out = nn.Linear(units, num_tags)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        max_pool, mean_pool = features.amax(dim=2), features.mean(dim=2)  # (N, 753) each
        # TF concatenates [max, mean] on a trailing axis, then flattens: values interleave max_0, mean_0, max_1, ...
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)  # (N, 1506)
        penultimate = self.dense_bn(torch.relu(self.dense(self.pool_bn(pooled))))  # (N, 200)
        logits = self.out(penultimate)  # (N, 50)
        return {"max_pool": max_pool, "mean_pool": mean_pool, "penultimate": penultimate, "logits": logits}


class Musicnn(nn.Module):
    """log-mel patches (N, 187, 96) -> dict of taggram (N, 50), penultimate (N, 200), pools (N, 753), mid-end."""

    def __init__(self):
        super().__init__()
        self.front = FrontEnd()
        self.mid = MidEnd()
        self.back = BackEnd()

    def forward(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        if mel.ndim != 3 or mel.shape[-1] != N_MELS or mel.shape[1] < 1:
            raise InputError(f"musicnn expects log-mel patches [N, frames, {N_MELS}], got {tuple(mel.shape)}")
        features = self.mid(self.front(mel))  # (N, 753, T)
        out = self.back(features)
        out["taggram"] = torch.sigmoid(out["logits"])
        out["cnn1"], out["cnn2"], out["cnn3"] = (features[:, start : start + 64] for start in (561, 625, 689))
        return out


class MusicnnLogMel(nn.Module):
    """Waveform -> musicnn's log-mel [frames, 96]: librosa-style Slaney mel (n_fft 512, hop 256) at 16 kHz.

    log10(10000 x + 1) is computed in float32: musicnn's extractor casts to float16 first, which overflows to inf
    on loud input (an upstream bug). Centering pads by reflection, as librosa did when musicnn was trained
    (librosa >= 0.10 pads with zeros: only the first and last two frames of a signal differ).
    """

    def __init__(self):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE,
            n_fft=N_FFT,
            hop_length=HOP,
            n_mels=N_MELS,
            power=2.0,
            center=True,
            pad_mode="reflect",
            norm="slaney",
            mel_scale="slaney",
        )
        self.resample = Resampler(SAMPLE_RATE)

    def to_model_rate(self, waveform, sample_rate: int) -> torch.Tensor:
        """Mono float32 samples at 16 kHz."""
        return self.resample(waveform, sample_rate)

    def forward(self, waveform, sample_rate: int) -> torch.Tensor:
        wave = self.to_model_rate(waveform, sample_rate)
        if wave.numel() < N_FFT:
            raise InputError(
                f"audio is {wave.numel() / SAMPLE_RATE:.4f} s long; musicnn needs at least {N_FFT / SAMPLE_RATE} s"
            )
        return torch.log10(10000.0 * mel_power(self.mel, wave) + 1.0)  # (frames, 96)


class MusicnnOnnx:
    """``MusicnnOnnx()(mel [P, 187, 96], "penultimate")`` -> [P, dim] numpy: the network on onnxruntime.

    Refuses a graph made from other weights than :data:`WEIGHTS` (its metadata records their SHA-256)."""

    def __init__(self, path: Path = ONNX, *, threads: int | None = None):
        import onnxruntime as ort

        from pdmer.errors import CheckpointError
        from pdmer.sessions import session_options
        from pdmer.fileio import file_sha256

        self.session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
        recorded = self.session.get_modelmeta().custom_metadata_map.get("weights_sha256")
        if recorded != file_sha256(WEIGHTS):
            raise CheckpointError(f"{path} was not made from {WEIGHTS.name}: write it again with "
                                  "pdmer convert-musicnn (or use runtime='torch')")

    def __call__(self, mel, features: str):
        return self.session.run([features], {"mel": mel.astype("float32", copy=False)})[0]
