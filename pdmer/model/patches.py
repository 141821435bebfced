"""The global encoder's patch cache: every 3 s patch of a file or a stream is encoded once.

A "grid" musicnn window vector (``MusicnnEncoderConfig.patches``) is the mean of the features of 3 s patches tiled
back from the window's end, as many as fit in it; a window shorter than one patch is one patch, repeat-padded. Each
patch is cut from the audio and encoded on its own, so its features depend on its own samples only, never on
which window asked for it. Trailing windows refreshed every 3 s (GlobalWindows.refresh_steps = 6) then share all
but their newest patch: a 30 s window costs one new patch, not ten. Other refresh periods stay correct and share
less.

Patches are keyed by their first and last sample in the file or stream (``offset`` places a piece of a stream), so a
stream's refreshes find the patches earlier refreshes encoded.
"""

from __future__ import annotations

import math

import torch

from pdmer.errors import InputError

PATCH_SECONDS = 3.0  # musicnn's training patches (187 frames at 16 kHz, hop 256)


def check_window(window: tuple[float, float], duration: float) -> tuple[float, float]:
    """``window`` = (start, end) seconds, checked against the audio's length. Here, not in pdmer.model.encoders (which
    builds a PatchCache), so that the cache's module does not import the encoders' back."""
    start, end = window
    if not 0 <= start < end <= duration + 1e-9:
        raise InputError(f"window=({start}, {end}) s must satisfy 0 <= start < end <= {duration:.3f} (the audio's length)")
    return start, end


def grid_spans(start: float, end: float) -> list[tuple[float, float]]:
    """(start, end) seconds of the patches summarising the window [start, end], newest first."""
    if end <= start:
        raise InputError(f"window ({start}, {end}) is empty")
    count = math.floor((end - start) / PATCH_SECONDS + 1e-9)
    if count == 0:
        return [(start, end)]
    return [(end - PATCH_SECONDS * (k + 1), end - PATCH_SECONDS * k) for k in range(count)]


class PatchCache:
    """``cache.windows(waveform, rate, [(start, end), ...])`` -> [W, dim]: each window's mean patch feature, every
    patch encoded at most once for the life of the cache (a file, or a whole stream with :meth:`forget_before`)."""

    def __init__(self, encoder):
        self.encoder = encoder  # a MusicnnEncoder with patches = "grid"
        self.vectors: dict[tuple[int, int], torch.Tensor] = {}  # (first sample, end sample) -> [dim]
        self.rate: int | None = None
        self.encoded = 0  # patches encoded so far: what the cache saves is visible (tests, benchmarks)

    def windows(self, waveform, rate: int, windows: list, *, offset: float = 0.0, progress=None) -> torch.Tensor:
        """``waveform`` holds the samples from ``offset`` seconds of the file or stream on; ``windows`` are
        (start, end) seconds within it (None: all of it)."""
        from pdmer.model.preprocess import to_mono_tensor

        if self.rate not in (None, rate):
            raise InputError(f"this patch cache holds patches at {self.rate} Hz; got audio at {rate} Hz")
        self.rate = rate
        wave = to_mono_tensor(waveform)
        duration = wave.numel() / rate
        first = round(offset * rate)
        spans = []
        for window in windows:
            start, end = check_window(window, duration) if window is not None else (0.0, duration)
            spans.append([(round(s * rate), round(e * rate)) for s, e in grid_spans(start, end)])
        missing = list(dict.fromkeys(key for patches in spans for key in patches
                                     if (key[0] + first, key[1] + first) not in self.vectors))
        resample = self.encoder.log_mel.to_model_rate
        for done in range(0, len(missing), self.encoder.batch):
            batch = missing[done : done + self.encoder.batch]
            encoded = self.encoder.encode_patches([resample(wave[s:e], rate) for s, e in batch])
            for (s, e), vector in zip(batch, encoded):
                self.vectors[s + first, e + first] = vector
            self.encoded += len(batch)
            if progress:
                progress(done + len(batch), len(missing))
        return torch.stack([torch.stack([self.vectors[s + first, e + first] for s, e in patches]).mean(dim=0)
                            for patches in spans])

    def forget_before(self, seconds: float) -> None:
        """Drop the patches that end before ``seconds`` of the stream: later windows start after them."""
        if self.rate is None:
            return
        limit = round(seconds * self.rate)
        for key in [key for key in self.vectors if key[1] <= limit]:
            del self.vectors[key]
