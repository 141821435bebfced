"""Global encoders: one interface over the frozen models that give DSAML its global feature z_g.

``encoder.embed(waveform, sample_rate, window=(start_s, end_s))`` -> [encoder.dim] for that window of audio.
- ``musicnn`` (the embedded default, offline, ISC weights in the package): mean of per-patch features of
  MSD_musicnn over the window's 3 s patches (``embed_windows`` encodes each patch shared by windows once);
- ``imagebind`` (the paper's; user-supplied CC BY-NC-SA 4.0 checkpoint): ImageBind's 3 clips over the window;
- ``descriptors`` (no weights, under 0.1 s per 30 s window on CPU): classic music-emotion descriptors of the window
  (loudness, timbre, register, mode, roughness, tempo: ``pdmer.model.descriptors``).
A DSAML config's ``global_dim`` must equal the encoder's ``dim``: :func:`model_config_for` builds one that does.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from dataclasses import dataclass
from typing import Protocol

import torch
from safetensors.torch import load_file

from pdmer.errors import InputError
from pdmer.fileio import file_sha256
from pdmer.model import descriptors, musicnn
from pdmer.model.config import ModelConfig
from pdmer.model.patches import PatchCache, check_window
from pdmer.model.preprocess import Resampler, to_mono_tensor

ENCODER_NAMES = ("musicnn", "imagebind", "descriptors")


class GlobalEncoder(Protocol):
    name: str
    dim: int
    sample_rate: int  # the rate the encoder works at; any input rate is resampled

    def embed(self, waveform, sample_rate: int, *, window: tuple[float, float] | None = None) -> torch.Tensor:
        """[dim] global feature of ``waveform[window]`` (seconds; None: all of it)."""

    def embed_windows(self, waveform, sample_rate: int, windows: list, progress=None) -> torch.Tensor:
        """[W, dim]: ``embed`` of each window (None: all of it), sharing whatever work the windows have in common;
        ``progress(done, total)`` after each step of work."""

    @property
    def spec(self) -> dict:
        """``{"name", "options"}``: what :func:`load_global_encoder` needs to build it again (saved in checkpoints)."""

    @property
    def fingerprint(self) -> dict:
        """Everything its outputs depend on (spec and weights): the feature cache's key."""


def cut_window(waveform, sample_rate: int, window: tuple[float, float] | None) -> torch.Tensor:
    """Mono float32 samples of ``window`` = (start, end) seconds; the whole waveform when None."""
    wave = to_mono_tensor(waveform)
    if window is None:
        return wave
    start, end = check_window(window, wave.numel() / sample_rate)
    return wave[round(start * sample_rate) : round(end * sample_rate)]


PATCHINGS = ("grid", "spread")


@dataclass(frozen=True)
class MusicnnEncoderConfig:
    # Which musicnn output is averaged over the window's patches: "penultimate" (200-d, the dense layer before
    # the tags), "mean_pool" / "max_pool" (753-d temporal pools), or "taggram" (50 tag probabilities).
    features: str = "penultimate"
    # Which 3 s patches summarise a window:
    # - "grid": patches tiled back from the window's end, each cut from the audio and encoded on its own
    #   (pdmer.model.patches). Windows whose ends are 3 s apart share patches, so a file or a stream encodes each
    #   patch once: ~3.6x fewer patches than "spread" for trailing 30 s windows refreshed every 3 s.
    # - "spread": ``patches_per_window`` patches evenly spread from the window's start to its end, cut from one
    #   log-mel of the whole window (pdmer 0.1's default: models trained on it record it and keep it).
    patches: str = "grid"
    # "spread" only: a 30 s window costs ~3 patches instead of 10. None: every non-overlapping patch from the start.
    patches_per_window: int | None = 3

    def __post_init__(self) -> None:
        if self.features not in FEATURE_DIMS:
            raise InputError(f"features={self.features!r} must be one of {sorted(FEATURE_DIMS)}")
        if self.patches not in PATCHINGS:
            raise InputError(f"patches={self.patches!r} must be one of {', '.join(PATCHINGS)}")
        if self.patches_per_window is not None and self.patches_per_window < 1:
            raise InputError(f"patches_per_window={self.patches_per_window} must be >= 1 (or None for all)")


FEATURE_DIMS = {"penultimate": 200, "mean_pool": 753, "max_pool": 753, "taggram": 50}


def load_musicnn(device: str | torch.device = "cpu") -> musicnn.Musicnn:
    """MSD_musicnn with the weights shipped in the package (frozen, eval mode)."""
    model = musicnn.Musicnn()
    model.load_state_dict(load_file(str(musicnn.WEIGHTS)), strict=True)
    return model.to(device).eval().requires_grad_(False)


class MusicnnEncoder:
    """musicnn's features averaged over a window's 3 s patches.

    ``runtime``: "onnx" (onnxruntime on the committed ``musicnn_msd.onnx``: about 2x faster than torch eager on
    CPU, equal to 1e-4), "torch", or "auto" (onnx on CPU, torch on CUDA). ``threads``: onnxruntime's intra-op
    threads (None: its default, every core; the stream gives it one, off the audio path)."""

    name = "musicnn"
    sample_rate = musicnn.SAMPLE_RATE

    def __init__(self, config: MusicnnEncoderConfig = MusicnnEncoderConfig(), *, device: str | torch.device = "cpu",
                 runtime: str = "auto", threads: int | None = None):
        self.config = config
        self.dim = FEATURE_DIMS[config.features]
        self.device = torch.device(device)
        self.log_mel = musicnn.MusicnnLogMel().to(self.device)
        if runtime not in ("auto", "onnx", "torch"):
            raise InputError(f"runtime={runtime!r} must be auto, onnx or torch")
        if runtime == "auto":
            runtime = "onnx" if self.device.type == "cpu" and musicnn.ONNX.is_file() else "torch"
        self.onnx = musicnn.MusicnnOnnx(threads=threads) if runtime == "onnx" else None
        self.model = load_musicnn(self.device) if self.onnx is None else None  # torch only where it runs
        self.runtime = runtime
        # Patches per forward pass (pdmer.model.patches). On CPU one at a time is fastest: measured on 2 cores
        # (onnxruntime, 2 threads), 45 ms CPU per patch alone, 50 in fours, 54-60 in tens and more (larger batches
        # leave the caches). A GPU wants batches.
        self.batch = 1 if self.device.type == "cpu" else 16

    @property
    def patched(self) -> bool:
        """Windows are made of shared 3 s patches: a :class:`pdmer.model.patches.PatchCache` can keep them."""
        return self.config.patches == "grid"

    def patches(self, wave: torch.Tensor) -> torch.Tensor:
        """"spread": 16 kHz mono samples -> the log-mel patches [P, 187, 96] the window is summarised by."""
        mel = self.log_mel(repeat_to_patch(wave, self.sample_rate).to(self.device), self.sample_rate)  # (frames, 96)
        frames, size = mel.shape[0], musicnn.PATCH_FRAMES
        if self.config.patches_per_window is None:
            starts = range(0, frames - size + 1, size)
        else:
            count = min(self.config.patches_per_window, math.ceil(frames / size))
            starts = torch.linspace(0, frames - size, count).round().long().tolist()
        return torch.stack([mel[start : start + size] for start in starts])

    def patch_log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """"grid": one patch's 16 kHz samples (at most 3 s) -> its log-mel [187, 96], from its own audio only."""
        wave = repeat_to_patch(wave, self.sample_rate)[-PATCH_SAMPLES:]  # the patch's newest 187 frames
        return self.log_mel(wave.to(self.device), self.sample_rate)

    @torch.no_grad()
    def features(self, mel: torch.Tensor) -> torch.Tensor:
        """log-mel patches [P, 187, 96] -> the configured features [P, dim] (on the CPU)."""
        if self.onnx is not None:
            return torch.from_numpy(self.onnx(mel.cpu().numpy(), self.config.features))
        return self.model(mel.to(self.device))[self.config.features].float().cpu()

    def encode_patches(self, waves: list) -> torch.Tensor:
        """"grid": [P, dim] for patches given as samples at this encoder's rate (each at most 3 s), in one batch."""
        return self.features(torch.stack([self.patch_log_mel(wave) for wave in waves]))

    def embed(self, waveform, sample_rate: int, *, window: tuple[float, float] | None = None) -> torch.Tensor:
        """The window's vector, computed from its own audio alone (nothing cached)."""
        if self.patched:
            return self.embed_windows(cut_window(waveform, sample_rate, window), sample_rate, [None])[0]
        wave = self.log_mel.to_model_rate(cut_window(waveform, sample_rate, window), sample_rate)
        return self.features(self.patches(wave)).mean(dim=0)  # (dim,)

    def embed_windows(self, waveform, sample_rate: int, windows: list, progress=None) -> torch.Tensor:
        """[W, dim] for several windows of one waveform: on "grid", each patch they share is encoded once."""
        if not self.patched:
            return embed_each(self, waveform, sample_rate, windows, progress)
        return PatchCache(self).windows(waveform, sample_rate, windows, progress=progress)

    @property
    def spec(self) -> dict:
        return {"name": self.name, "options": dataclasses.asdict(self.config)}

    @property
    def fingerprint(self) -> dict:
        return {**self.spec, "weights_sha256": file_sha256(musicnn.WEIGHTS)}


PATCH_SAMPLES = (musicnn.PATCH_FRAMES - 1) * musicnn.HOP  # 16 kHz samples that give one 187-frame patch (2.976 s)


def repeat_to_patch(wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Audio shorter than a patch is repeated until it fills one ("repeat-pad", musicnn's training setting
    pad_short in MSD_musicnn/config.json), rather than padded with silence the model never saw."""
    if wave.numel() >= PATCH_SAMPLES:
        return wave
    if wave.numel() < musicnn.N_FFT:
        raise InputError(f"audio window is {wave.numel() / sample_rate:.4f} s long; musicnn needs at least "
                         f"{musicnn.N_FFT / sample_rate} s")
    return wave.repeat(math.ceil(PATCH_SAMPLES / wave.numel()))[:PATCH_SAMPLES]


def embed_each(encoder, waveform, sample_rate: int, windows: list, progress=None) -> torch.Tensor:
    """[W, dim]: ``encoder.embed`` of each window in turn (encoders that share nothing between windows)."""
    vectors = []
    for done, window in enumerate(windows, 1):
        vectors.append(encoder.embed(waveform, sample_rate, window=window))
        if progress:
            progress(done, len(windows))
    return torch.stack(vectors)


class ImageBindEncoder:
    name = "imagebind"
    sample_rate = 16000

    def __init__(
        self, checkpoint, *, device: str | torch.device = "cpu", model_sizes: dict | None = None, **input_options
    ):
        from pdmer.model.imagebind import load_imagebind_audio

        self.device = torch.device(device)
        self.checkpoint = Path(checkpoint)
        self.model_sizes = model_sizes or {}
        # model_sizes: ImageBindAudio's size arguments, for checkpoints other than imagebind_huge
        self.model = load_imagebind_audio(checkpoint, device=self.device, **(model_sizes or {}))
        self.dim = self.model.config["out_dim"]
        self.input_options = input_options  # e.g. clip_placement, fbank_sample_rate: see imagebind_inputs

    @torch.no_grad()
    def embed(self, waveform, sample_rate: int, *, window: tuple[float, float] | None = None) -> torch.Tensor:
        from pdmer.model.imagebind import imagebind_inputs

        clips = imagebind_inputs(cut_window(waveform, sample_rate, window), sample_rate, **self.input_options)
        return self.model(clips.to(self.device))[0].cpu()  # (dim,)

    def embed_windows(self, waveform, sample_rate: int, windows: list, progress=None) -> torch.Tensor:
        return embed_each(self, waveform, sample_rate, windows, progress)

    @property
    def spec(self) -> dict:
        return {"name": self.name, "options": {"model_sizes": self.model_sizes, **self.input_options}}

    @property
    def fingerprint(self) -> dict:
        # Hashing a 4.5 GB checkpoint on every run would cost more than the features; its identity on disk will do.
        stat = self.checkpoint.stat()
        return {**self.spec, "checkpoint": str(self.checkpoint.resolve()), "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns}


class DescriptorsEncoder:
    name = "descriptors"
    sample_rate = descriptors.SAMPLE_RATE
    dim = descriptors.DIM

    def __init__(self, *, device: str | torch.device = "cpu"):
        self.describe = descriptors.Descriptors()  # small STFTs: the CPU is the right place whatever the device
        self.resample = Resampler(self.sample_rate)

    @torch.no_grad()
    def embed(self, waveform, sample_rate: int, *, window: tuple[float, float] | None = None) -> torch.Tensor:
        return self.describe(self.resample(cut_window(waveform, sample_rate, window), sample_rate))

    def embed_windows(self, waveform, sample_rate: int, windows: list, progress=None) -> torch.Tensor:
        return embed_each(self, waveform, sample_rate, windows, progress)

    @property
    def spec(self) -> dict:
        return {"name": self.name, "options": {}}

    @property
    def fingerprint(self) -> dict:
        # No weights: the descriptor list and the module's version of them are what the outputs depend on.
        return {**self.spec, "descriptors": list(descriptors.DESCRIPTOR_NAMES), "version": descriptors.VERSION}


def load_global_encoder(
    name: str, *, imagebind_checkpoint=None, device: str | torch.device = "cpu", **options
) -> GlobalEncoder:
    """``"musicnn"`` (options: MusicnnEncoderConfig fields, and ``runtime``, ``threads``: see MusicnnEncoder),
    ``"imagebind"`` (needs ``imagebind_checkpoint``) or ``"descriptors"`` (no options)."""
    if name == "descriptors":
        if options:
            raise InputError(f"the descriptors encoder takes no options, got {sorted(options)}")
        return DescriptorsEncoder(device=device)
    if name == "musicnn":
        runtime, threads = options.pop("runtime", "auto"), options.pop("threads", None)
        return MusicnnEncoder(MusicnnEncoderConfig(**options), device=device, runtime=runtime, threads=threads)
    if name == "imagebind":
        if imagebind_checkpoint is None:
            raise InputError("the imagebind encoder needs the path of imagebind_huge.pth (user-supplied)")
        return ImageBindEncoder(imagebind_checkpoint, device=device, **options)
    raise InputError(f"unknown global encoder {name!r}; choose one of {', '.join(ENCODER_NAMES)}")


def model_config_for(encoder: GlobalEncoder, preset: str | None = None, **overrides) -> ModelConfig:
    """A DSAML config whose ``global_dim`` follows ``encoder``; preset defaults: "paper" for ImageBind, else "small"."""
    preset = preset or ("paper" if encoder.name == "imagebind" else "small")
    return dataclasses.replace(ModelConfig.preset(preset, **overrides), global_dim=encoder.dim)
