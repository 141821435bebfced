"""ImageBind's audio branch (``imagebind_huge``): preprocessing, encoder, and a loader for the user's checkpoint.

Our own implementation, checked for exact parity against facebookresearch/ImageBind @ 53680b0 (read for facts only:
``imagebind/data.py``, ``imagebind/models/{imagebind_model,multimodal_preprocessors,transformer,helpers}.py``).
Module and parameter names follow the official state dict, so a checkpoint loads key by key with ``strict=True``:

    modality_preprocessors.audio.*   Conv2d patches + LayerNorm, CLS token, learnable positions
    modality_trunks.audio.*          pre-norm transformer blocks; attention with an extra learned key/value (bias_kv)
    modality_heads.audio.*           LayerNorm -> CLS token -> Linear (no bias)
    modality_postprocessors.audio.*  L2-normalize, then x20 (a fixed buffer, not learned)

Pipeline: waveform --imagebind_inputs--> [1, S=3, 1, 128, 204] --ImageBindAudio--> [1, 1024].

The weights are not shipped with pdmer: ``imagebind_huge.pth`` is a 4+ GB download licensed CC BY-NC-SA 4.0
(non-commercial use only). Users pass its path to :func:`load_imagebind_audio`.
"""

from __future__ import annotations

import math
import os
import pickle
import zipfile
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from pdmer.errors import CheckpointError, InputError
from pdmer.model.preprocess import to_mono_tensor

__all__ = [
    "CLIP_PLACEMENTS",
    "IMAGEBIND_HUGE_URL",
    "ImageBindAudio",
    "clip_sample_ranges",
    "imagebind_inputs",
    "load_imagebind_audio",
]

IMAGEBIND_HUGE_URL = "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
IMAGEBIND_SAMPLE_RATE = 16000  # data.py: load_and_transform_audio_data(sample_rate=16000); what ImageBind trained on
FBANK_MEAN = -4.268  # data.py defaults (mean, std): fbank statistics inherited from AST
FBANK_STD = 9.138
FRAME_LENGTH_MS = 25  # data.py: waveform2melspec -> kaldi fbank frame_length / frame_shift
FRAME_SHIFT_MS = 10
LOGIT_SCALE = 20.0  # imagebind_model.py: audio postprocessor LearnableLogitScaling(20, learnable=False)
MAX_LOGIT_SCALE = 100.0  # helpers.py: LearnableLogitScaling clips exp(log scale) at 100

# How the S clips are spread over the input (pytorchvideo ConstantClipsPerVideoSampler; ../shared/fixtures/README.md):
#   "imagebind"          pytorchvideo @ 6cdc929 (ImageBind's pin): clip k starts at k * (d - c) / max(S - 1, 1)
#   "pytorchvideo-0.1.5" PyPI 0.1.5 (the DSAML authors' pin):   clip k starts at k * (d - c) / S  (end never used)
CLIP_PLACEMENTS = ("imagebind", "pytorchvideo-0.1.5")


# ---------------------------------------------------------------------------------------------------------------
# Encoder parts, small to large
# ---------------------------------------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    """Cut the [1, mels, frames] fbank image into overlapping patches (official name: ``rgbt_stem``)."""

    def __init__(self, embed_dim: int, kernel_size: int, stride: int):
        super().__init__()
        # imagebind_model.py (audio_stem): kernel 16, stride 10 -> patches overlap by 6 bins / frames; no conv bias.
        self.proj = nn.Conv2d(1, embed_dim, kernel_size=kernel_size, stride=stride, bias=False)
        self.norm_layer = nn.LayerNorm(embed_dim)  # default eps 1e-5 here, unlike the 1e-6 of the trunk and head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # [N, D, 12, 19]: mel rows x time columns
        x = x.flatten(2).transpose(1, 2)  # [N, 228, D], row-major: all time steps of mel row 0 first
        return self.norm_layer(x)


class PositionTable(nn.Module):
    """One learnable vector per token, CLS first (official name: ``pos_embedding_helper``)."""

    def __init__(self, num_tokens: int, embed_dim: int):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.empty(1, num_tokens, embed_dim))


class AudioTokenizer(nn.Module):
    """fbank image -> CLS + patch tokens with positions (official: ``AudioPreprocessor``)."""

    def __init__(self, embed_dim: int, kernel_size: int, stride: int, num_mel_bins: int, target_len: int):
        super().__init__()
        self.grid = ((num_mel_bins - kernel_size) // stride + 1, (target_len - kernel_size) // stride + 1)  # (12, 19)
        self.cls_token = nn.Parameter(torch.empty(1, 1, embed_dim))
        self.rgbt_stem = PatchEmbed(embed_dim, kernel_size, stride)
        self.pos_embedding_helper = PositionTable(1 + self.grid[0] * self.grid[1], embed_dim)  # 229 tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.rgbt_stem(x)  # [N, 228, D]
        cls = self.cls_token.expand(patches.shape[0], -1, -1)  # [N, 1, D]
        # The input size is fixed (checked by ImageBindAudio), so the table never needs the official interpolation.
        return torch.cat([cls, patches], dim=1) + self.pos_embedding_helper.pos_embed  # [N, 229, D]


class SelfAttentionWithBiasKV(nn.Module):
    """Multi-head self-attention whose keys and values get one extra learned entry that every query can attend to.

    Same parameters and maths as ``nn.MultiheadAttention(add_bias_kv=True)`` (what transformer.py wraps): bias_k /
    bias_v live in projected space and are appended after the L projected tokens.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))  # q, k, v projections stacked
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.bias_k = nn.Parameter(torch.empty(1, 1, dim))
        self.bias_v = nn.Parameter(torch.empty(1, 1, dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape  # [N, L, D]
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)  # 3 x [N, L, D]
        k = torch.cat([k, self.bias_k.expand(n, 1, dim)], dim=1)  # [N, L+1, D]
        v = torch.cat([v, self.bias_v.expand(n, 1, dim)], dim=1)  # [N, L+1, D]
        heads = (self.num_heads, dim // self.num_heads)
        q = q.unflatten(-1, heads).transpose(1, 2)  # [N, h, L, hd]
        k = k.unflatten(-1, heads).transpose(1, 2)  # [N, h, L+1, hd]
        v = v.unflatten(-1, heads).transpose(1, 2)  # [N, h, L+1, hd]
        y = F.scaled_dot_product_attention(q, k, v)  # [N, h, L, hd], softmax(q k^T / sqrt(hd)) v
        return self.out_proj(y.transpose(1, 2).reshape(n, length, dim))  # [N, L, D]


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact (erf) GELU, transformer.py's default
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (official: ``BlockWithMasking``, no mask, no layer scale)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int = 4):
        super().__init__()
        # Registration order = official state-dict order: attn, norm_1, mlp, norm_2.
        self.attn = SelfAttentionWithBiasKV(dim, num_heads)
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)  # transformer.py: SimpleTransformer's _LAYER_NORM
        self.mlp = Mlp(dim, mlp_ratio * dim)
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Official training used stochastic depth (drop_path 0.1); it is the identity at inference and left out here,
        # so train mode computes exactly what eval mode does (there is no dropout anywhere in this branch either).
        x = x + self.attn(self.norm_1(x))
        return x + self.mlp(self.norm_2(x))


class Trunk(nn.Module):
    """The blocks, batch-first throughout (the official trunk permutes to [L, N, D] and back; no parameters)."""

    def __init__(self, dim: int, num_blocks: int, num_heads: int):
        super().__init__()
        # imagebind_model.py instantiate_trunk(audio): pre_transformer_ln=False, add_bias_kv=True, mlp_ratio 4.
        self.blocks = nn.Sequential(*[Block(dim, num_heads) for _ in range(num_blocks)])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.blocks(tokens)  # [N, L, D]


class SelectCLS(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]  # [N, L, D] -> [N, D]


class L2Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, p=2.0, dim=-1)


class FixedLogitScale(nn.Module):
    """Multiply by min(exp(log_logit_scale), 100); the log scale is a buffer, so the state dict carries it."""

    def __init__(self, scale: float):
        super().__init__()
        self.register_buffer("log_logit_scale", torch.tensor(math.log(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clip(self.log_logit_scale.exp(), max=MAX_LOGIT_SCALE) * x


# ---------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------


class ImageBindAudio(nn.Module):
    """ImageBind's audio encoder: [B, S, 1, mels, frames] fbank clips -> [B, out_dim] embedding.

    Defaults are ``imagebind_huge``'s audio branch (~86.2 M parameters). Each clip is encoded, L2-normalized and
    scaled by 20; the S clips are then averaged (not renormalized), exactly as the official forward does.

    Parameters
    ----------
    embed_dim, num_blocks, num_heads : int > 0
        Transformer width, depth and heads (``embed_dim`` divisible by ``num_heads``).
    out_dim : int > 0
        Size of the joint embedding space (1024 for imagebind_huge).
    kernel_size, stride : int > 0
        Patch size and step over the fbank image.
    num_mel_bins, target_len : int >= kernel_size
        Height (mel bins) and width (frames) of each clip's fbank image.
    """

    def __init__(
        self,
        embed_dim: int = 768,
        num_blocks: int = 12,
        num_heads: int = 12,
        out_dim: int = 1024,
        *,
        kernel_size: int = 16,
        stride: int = 10,
        num_mel_bins: int = 128,
        target_len: int = 204,
    ):
        super().__init__()
        for name, value in [("embed_dim", embed_dim), ("num_blocks", num_blocks), ("num_heads", num_heads),
                            ("out_dim", out_dim), ("kernel_size", kernel_size), ("stride", stride)]:
            if not isinstance(value, int) or value <= 0:
                raise InputError(f"{name}={value!r} must be a positive integer")
        if embed_dim % num_heads:
            raise InputError(f"embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
        if min(num_mel_bins, target_len) < kernel_size:
            raise InputError(f"num_mel_bins={num_mel_bins} and target_len={target_len} "
                             f"must be >= kernel_size={kernel_size}")
        self.config = dict(embed_dim=embed_dim, num_blocks=num_blocks, num_heads=num_heads, out_dim=out_dim,
                           kernel_size=kernel_size, stride=stride, num_mel_bins=num_mel_bins, target_len=target_len)
        self.clip_shape = (1, num_mel_bins, target_len)

        # ModuleDicts keyed "audio" and Sequential indices reproduce the official key names (and their order).
        self.modality_preprocessors = nn.ModuleDict(
            {"audio": AudioTokenizer(embed_dim, kernel_size, stride, num_mel_bins, target_len)})
        self.modality_trunks = nn.ModuleDict({"audio": Trunk(embed_dim, num_blocks, num_heads)})
        self.modality_heads = nn.ModuleDict({"audio": nn.Sequential(
            nn.LayerNorm(embed_dim, eps=1e-6),  # .0
            SelectCLS(),  # .1 (no parameters)
            nn.Linear(embed_dim, out_dim, bias=False),  # .2
        )})
        self.modality_postprocessors = nn.ModuleDict({"audio": nn.Sequential(
            L2Normalize(),  # .0
            FixedLogitScale(LOGIT_SCALE),  # .1 -> buffer log_logit_scale
        )})
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Fresh weights distributed as the official init (real use loads a checkpoint over them)."""
        scale = self.config["embed_dim"] ** -0.5
        tokenizer = self.modality_preprocessors["audio"]
        # multimodal_preprocessors.py init_parameters("openclip"): N(0, 1) * D^-0.5 for CLS and positions.
        nn.init.normal_(tokenizer.cls_token, std=scale)
        nn.init.normal_(tokenizer.pos_embedding_helper.pos_embed, std=scale)
        for block in self.modality_trunks["audio"].blocks:
            # nn.MultiheadAttention init, then transformer.py's "jax" init: xavier-uniform Linear weights, zero biases.
            nn.init.xavier_uniform_(block.attn.in_proj_weight)
            nn.init.zeros_(block.attn.in_proj_bias)
            nn.init.xavier_normal_(block.attn.bias_k)
            nn.init.xavier_normal_(block.attn.bias_v)
            for linear in (block.attn.out_proj, block.mlp.fc1, block.mlp.fc2):
                nn.init.xavier_uniform_(linear.weight)
                nn.init.zeros_(linear.bias)

    def _check_clips(self, audio: torch.Tensor) -> None:
        dims = ", ".join(map(str, self.clip_shape))  # "1, 128, 204"
        got = list(audio.shape) if isinstance(audio, torch.Tensor) else type(audio).__name__
        if (not isinstance(audio, torch.Tensor) or audio.ndim != 5 or tuple(audio.shape[2:]) != self.clip_shape
                or audio.shape[0] == 0 or audio.shape[1] == 0):
            raise InputError(f"ImageBindAudio expects fbank clips [B, S, {dims}] (batch, clips, channel, mel bins, "
                             f"frames; B, S >= 1), got {got}; imagebind_inputs() makes [1, 3, {dims}] from a waveform")
        if not audio.is_floating_point():
            raise InputError(f"ImageBindAudio expects floating-point clips, got dtype {audio.dtype}")

    def encode_clips(self, audio: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        """Per-clip embeddings [B, S, out_dim]: L2-normalized x20 (``normalize=True``) or the raw head output."""
        self._check_clips(audio)
        b, s = audio.shape[:2]
        clips = audio.reshape(b * s, *self.clip_shape)  # [B*S, 1, mels, frames]
        tokens = self.modality_preprocessors["audio"](clips)  # [B*S, 1+P, D]
        tokens = self.modality_trunks["audio"](tokens)  # [B*S, 1+P, D]
        emb = self.modality_heads["audio"](tokens)  # [B*S, out]
        if normalize:
            emb = self.modality_postprocessors["audio"](emb)  # [B*S, out], norm 20 each
        return emb.reshape(b, s, -1)  # [B, S, out]

    def forward(self, audio: torch.Tensor, *, per_clip: bool = False) -> torch.Tensor:
        """[B, S, 1, mels, frames] -> [B, out_dim] (mean over clips), or [B, S, out_dim] with ``per_clip=True``."""
        clips = self.encode_clips(audio)  # [B, S, out]
        # imagebind_model.py forward: normalize x20 per clip first, then mean over S; the mean is not renormalized.
        return clips if per_clip else clips.mean(dim=1)


# ---------------------------------------------------------------------------------------------------------------
# Preprocessing: waveform -> [1, S, 1, mels, frames]
# ---------------------------------------------------------------------------------------------------------------


def clip_sample_ranges(
    num_samples: int,
    sample_rate: int,
    *,
    clip_placement: str = "imagebind",
    num_clips: int = 3,
    clip_seconds: float = 2.0,
) -> list[tuple[int, int]]:
    """Sample ranges [start, end) of the clips, as ImageBind's data.py + pytorchvideo compute them.

    Exact rational arithmetic as pytorchvideo's sampler (Fraction of the float duration), then ``int()`` truncation as
    data.py slices. Ends may pass ``num_samples`` (audio shorter than a clip): slicing then simply stops at the end,
    and every clip of such audio starts at 0 and holds all of it.
    """
    if clip_placement not in CLIP_PLACEMENTS:
        raise InputError(f"clip_placement={clip_placement!r} must be one of {CLIP_PLACEMENTS}")
    if not isinstance(num_clips, int) or num_clips < 1:
        raise InputError(f"num_clips={num_clips!r} must be a positive integer")
    if not clip_seconds > 0:
        raise InputError(f"clip_seconds={clip_seconds!r} must be > 0")
    duration = num_samples / sample_rate  # a float, as data.py passes it to the sampler
    max_start = Fraction(max(duration - clip_seconds, 0))
    divisions = max(num_clips - 1, 1) if clip_placement == "imagebind" else num_clips
    spacing = max_start / divisions
    length = Fraction(clip_seconds)
    return [(int(spacing * k * sample_rate), int((spacing * k + length) * sample_rate)) for k in range(num_clips)]


def _fbank_window_samples(sample_rate: int) -> int:
    return int(sample_rate * FRAME_LENGTH_MS * 0.001)  # as torchaudio's kaldi fbank sizes its window: 400 at 16 kHz


def _positive_rate(value, name: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputError(f"{name}={value!r} must be a positive integer number of Hz")
    return int(value)


def _fbank_image(clip: torch.Tensor, sample_rate: int, num_mel_bins: int, target_len: int) -> torch.Tensor:
    """One mean-removed clip [1, n] -> log-mel fbank image [1, mels, target_len] (data.py: waveform2melspec)."""
    fbank = torchaudio.compliance.kaldi.fbank(
        clip,
        htk_compat=True,
        sample_frequency=sample_rate,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=num_mel_bins,
        dither=0.0,
        frame_length=FRAME_LENGTH_MS,
        frame_shift=FRAME_SHIFT_MS,
    ).T  # [mels, frames]; 198 frames for 2 s at 16 kHz (snip_edges)
    # Right-pad with zeros (before normalization, as data.py) or cut to target_len. The official code also logs a
    # warning when the gap is > 20 %; pdmer does not (streaming warm-up and short files would repeat it endlessly).
    frames = fbank.shape[1]
    fbank = F.pad(fbank, (0, target_len - frames)) if frames < target_len else fbank[:, :target_len]
    return fbank.unsqueeze(0)  # [1, mels, target_len]


def imagebind_inputs(
    waveform,
    sample_rate: int,
    *,
    clip_placement: str = "imagebind",
    num_clips: int = 3,
    clip_seconds: float = 2.0,
    num_mel_bins: int = 128,
    target_len: int = 204,
    fbank_sample_rate: int | None = IMAGEBIND_SAMPLE_RATE,
    inplace_mean_quirk: bool = False,
) -> torch.Tensor:
    """Waveform -> ImageBind's audio input [1, num_clips, 1, num_mel_bins, target_len] float32.

    Follows the official ``imagebind/data.py:load_and_transform_audio_data``: resample, cut ``num_clips`` clips of
    ``clip_seconds``, per clip subtract its mean, kaldi fbank (HTK mel, hanning, 25 ms / 10 ms, no dither, no energy),
    pad/cut to ``target_len`` frames, normalize (x + 4.268) / 9.138.

    Parameters
    ----------
    waveform : torch.Tensor or numpy.ndarray, [N], [1, N] or [C, N], floating point in [-1, 1]
        Several channels are averaged to mono (the official code would use channel 0 only). Never modified.
    sample_rate : int > 0
        Rate of ``waveform`` in Hz.
    clip_placement : {"imagebind", "pytorchvideo-0.1.5"}
        Where the clips start (see ``CLIP_PLACEMENTS``). "imagebind" is ImageBind's own; "pytorchvideo-0.1.5"
        reproduces the DSAML authors' environment (its last (d - 2)/3 s is never used). Clips overlap when the input
        is shorter than 6 s ("imagebind") or 8 s ("pytorchvideo-0.1.5"); under 2 s all clips are the whole input.
    fbank_sample_rate : int > 0 or None
        Rate the fbank is computed at; the waveform is resampled to it if needed. 16000 (default) is what ImageBind
        was trained on. ``None`` computes the fbank at the input's own rate without resampling: the DSAML authors'
        code feeds 44.1 kHz audio this way (mel bins then span up to 22.05 kHz, unlike ImageBind's training).
    inplace_mean_quirk : bool
        The official code subtracts each clip's mean in place on a view of the whole waveform, so when clips overlap
        the subtraction leaks into the next clip (a DC step inside it; with "pytorchvideo-0.1.5" on 7 s the input
        moves by up to 0.26). pdmer's default (False) removes each clip's own mean from a copy, which is what the
        code means to do and equals the official output whenever clips do not overlap; True reproduces the official
        numbers bit for bit.

    Raises
    ------
    InputError
        Audio shorter than one 25 ms fbank frame, a bad shape/dtype, or a bad option.
    """
    # Several channels are averaged (official data.py gives [C, N] to kaldi fbank, which reads channel 0 only).
    wave = to_mono_tensor(waveform)  # [N]
    sample_rate = _positive_rate(sample_rate, "sample_rate")
    rate = sample_rate if fbank_sample_rate is None else _positive_rate(fbank_sample_rate, "fbank_sample_rate")
    for name, value in [("num_mel_bins", num_mel_bins), ("target_len", target_len)]:
        if not isinstance(value, int) or value <= 0:
            raise InputError(f"{name}={value!r} must be a positive integer")
    seconds = wave.shape[0] / sample_rate
    if rate != sample_rate:
        wave = torchaudio.functional.resample(wave, orig_freq=sample_rate, new_freq=rate)  # data.py: default filter
    min_samples = _fbank_window_samples(rate)
    if wave.shape[0] < min_samples:
        raise InputError(f"waveform is {seconds:.4f} s long ({wave.shape[0]} samples at {rate} Hz); ImageBind's "
                         f"fbank needs at least one {FRAME_LENGTH_MS} ms frame = {min_samples / rate:.4f} s")
    ranges = clip_sample_ranges(wave.shape[0], rate, clip_placement=clip_placement, num_clips=num_clips,
                                clip_seconds=clip_seconds)

    wave = wave.unsqueeze(0).clone()  # [1, N], private: the quirk below writes into it, never into the caller's data
    images = []
    for start, end in ranges:
        clip = wave[:, start:end]  # [1, n] view
        if clip.shape[1] < min_samples:  # only reachable with clip_seconds below one frame
            raise InputError(f"clip_seconds={clip_seconds} gives {clip.shape[1]} samples per clip at {rate} Hz; "
                             f"the fbank needs at least {min_samples} ({FRAME_LENGTH_MS} ms)")
        if inplace_mean_quirk:
            clip -= clip.mean()  # data.py: waveform -= waveform.mean() on the view; leaks into later overlapping clips
        else:
            clip = clip - clip.mean()
        images.append(_fbank_image(clip, rate, num_mel_bins, target_len))
    clips = torch.stack(images)  # [S, 1, mels, frames]
    clips = (clips - torch.tensor(FBANK_MEAN)) / torch.tensor(FBANK_STD)  # float32 constants, as torchvision Normalize
    return clips.unsqueeze(0)  # [1, S, 1, mels, frames]


# ---------------------------------------------------------------------------------------------------------------
# Loading the user's checkpoint
# ---------------------------------------------------------------------------------------------------------------

_AUDIO_MARK = ".audio."  # every audio-branch key: modality_{preprocessors,trunks,heads,postprocessors}.audio.*


def _read_audio_state(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's ``.audio.`` tensors (only those are read from a .safetensors file)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import SafetensorError, safe_open

            try:
                with safe_open(str(path), framework="pt", device="cpu") as f:
                    keys = list(f.keys())
                    state = {k: f.get_tensor(k) for k in keys if _AUDIO_MARK in k}
            except SafetensorError as err:
                raise CheckpointError(f"could not read {path} as safetensors: {err}") from err
        else:
            # mmap: only the audio tensors' pages of the 4+ GB file are touched. Old (pre-zip) files cannot be mapped.
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
            if not isinstance(obj, Mapping):
                raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors")
            keys = [str(k) for k in obj]
            state = {k: v for k, v in obj.items() if isinstance(k, str) and _AUDIO_MARK in k}
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        raise CheckpointError(f"could not read checkpoint {path}: {type(err).__name__}: {err}") from err
    if not state:
        shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "") if keys else "(none)"
        raise CheckpointError(f"{path} has no audio branch keys (none contains '{_AUDIO_MARK}'); it has {len(keys)} "
                              f"keys, e.g. {shown}. Expected ImageBind's imagebind_huge.pth ({IMAGEBIND_HUGE_URL}).")
    return state


def _sizes_found(state: Mapping[str, torch.Tensor]) -> str:
    """What the checkpoint's shapes say about its sizes (num_heads is not recoverable from shapes)."""
    found = []
    cls = state.get("modality_preprocessors.audio.cls_token")
    if cls is not None:
        found.append(f"embed_dim={cls.shape[-1]}")
    blocks = {k.split(".")[3] for k in state if k.startswith("modality_trunks.audio.blocks.")}
    if blocks:
        found.append(f"num_blocks={len(blocks)}")
    head = state.get("modality_heads.audio.2.weight")
    if head is not None:
        found.append(f"out_dim={head.shape[0]}")
    return ", ".join(found) or "unknown"


def _check_fits(model: ImageBindAudio, state: Mapping[str, torch.Tensor], path: Path) -> None:
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    problems = []
    wrong = [f"{k} {have[k]} vs {want[k]}" for k in want if k in have and have[k] != want[k]]
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    for label, items in [("shape mismatches (checkpoint vs model)", wrong), ("missing keys", missing),
                         ("unexpected keys", unexpected)]:
        if items:
            problems.append(f"{len(items)} {label}, e.g. {'; '.join(items[:2])}")
    if problems:
        sizes = ", ".join(f"{k}={v}" for k, v in model.config.items())
        raise CheckpointError(
            f"{path}: its audio branch does not fit ImageBindAudio({sizes}): {' | '.join(problems)}. "
            f"The checkpoint's shapes say {_sizes_found(state)}; pass matching sizes "
            f"(imagebind_huge = the defaults; num_heads is not stored in a checkpoint: 12 for imagebind_huge).")


def load_imagebind_audio(
    path: str | os.PathLike, *, device: str | torch.device = "cpu", **size_kwargs
) -> ImageBindAudio:
    """Build :class:`ImageBindAudio` and load the audio branch of a user-supplied ImageBind checkpoint.

    Parameters
    ----------
    path : path to ``imagebind_huge.pth`` (a plain state dict, as published) or a ``.safetensors`` file
        Only keys containing ``.audio.`` are used; the other modalities in the file are ignored.
    device : where the model lives (CUDA when available is worth it: ~0.3 s per clip on 2 CPU cores)
    **size_kwargs : ImageBindAudio's size arguments, for checkpoints other than imagebind_huge

    Returns the model in eval mode with ``requires_grad=False`` (a frozen encoder).

    Raises
    ------
    CheckpointError
        The file is missing or unreadable, has no audio branch, or its shapes do not fit the requested sizes.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(
            f"ImageBind checkpoint not found: {path}. The checkpoint is user-supplied, not shipped with pdmer: "
            f"download imagebind_huge.pth (4+ GB) from {IMAGEBIND_HUGE_URL} — licensed CC BY-NC-SA 4.0, "
            f"non-commercial use only — and pass its path.")
    state = _read_audio_state(path)
    with torch.device("meta"):  # shapes only: no memory, no random init for 86 M parameters
        model = ImageBindAudio(**size_kwargs)
    _check_fits(model, state, path)
    model = model.to_empty(device=device)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:  # e.g. a dtype that cannot be copied; shapes and names were checked above
        raise CheckpointError(f"{path}: loading the audio branch failed: {err}") from err
    return model.eval().requires_grad_(False)
