"""The per-slice log-mel of DESIGN.md §2, checked against an independent numpy implementation."""

import numpy as np
import pytest
import torch

from pdmer.errors import InputError
from pdmer.model.preprocess import LogMelSlicer, MelConfig


def numpy_log_mel(slice_samples: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """STFT (centered, reflect pad, periodic Hann) -> power -> HTK triangular mel filters -> log(x + 1e-6)."""
    n_fft, hop = cfg.n_fft, cfg.hop_length
    padded = np.pad(slice_samples.astype(np.float64), n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.stack([padded[i : i + n_fft] * window for i in range(0, len(padded) - n_fft + 1, hop)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (frames, n_fft/2 + 1)
    hz_to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    mel_to_hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(cfg.sample_rate / 2), cfg.n_mels + 2))
    freqs = np.linspace(0, cfg.sample_rate // 2, n_fft // 2 + 1)
    rising = (freqs[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])
    falling = (edges[None, 2:] - freqs[:, None]) / (edges[2:] - edges[1:-1])
    filters = np.maximum(0, np.minimum(rising, falling))  # (freqs, mels)
    return np.log(power @ filters + cfg.log_offset)


def test_shape_is_51_by_128_per_half_second():
    mel = LogMelSlicer()(np.zeros(44100 * 3 + 1000, dtype=np.float32), 44100)
    assert mel.shape == (6, 51, 128)  # the partial tail is dropped


def test_matches_independent_numpy_log_mel():
    rng = np.random.default_rng(0)
    t = np.arange(44100) / 44100
    wave = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    mel = LogMelSlicer()(wave, 44100)
    cfg = MelConfig()
    for i in range(2):
        expected = numpy_log_mel(wave[i * 22050 : (i + 1) * 22050], cfg)
        np.testing.assert_allclose(mel[i].numpy(), expected, atol=2e-3, rtol=1e-4)


def test_slice_i_covers_samples_of_its_own_half_second():
    wave = np.zeros(44100 * 2, dtype=np.float32)
    wave[22050 * 2 : 22050 * 3] = np.sin(2 * np.pi * 1000 * np.arange(22050) / 44100)
    energy = LogMelSlicer()(wave, 44100).exp().sum(dim=(1, 2))
    assert energy.argmax().item() == 2
    assert energy[2] > 1e3 * energy[[0, 1, 3]].max()


def test_other_sample_rates_and_stereo_are_converted():
    stereo = np.random.default_rng(1).standard_normal((2, 16000 * 2)).astype(np.float32) * 0.1
    mel = LogMelSlicer()(torch.from_numpy(stereo), 16000)
    assert mel.shape == (4, 51, 128)


def test_too_short_audio_is_named():
    with pytest.raises(InputError, match=r"0\.200 s long; one slice needs 0\.5 s"):
        LogMelSlicer()(np.zeros(8820, dtype=np.float32), 44100)


def test_bad_waveform_rank_is_named():
    with pytest.raises(InputError, match="waveform must be"):
        LogMelSlicer()(np.zeros((1, 2, 44100), dtype=np.float32), 44100)
