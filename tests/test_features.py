"""Feature cache: computed once per (audio content, config), exact, aligned with curves, robust to bad entries."""

import numpy as np
import pytest
import soundfile
import torch

from pdmer.data import Curve, DataWarning
from pdmer.data.features import FeatureCache, GlobalWindows
from pdmer.errors import InputError
from pdmer.model.encoders import cut_window
from pdmer.model.preprocess import LogMelSlicer


class WindowStats:
    """A tiny deterministic global encoder (mean, std, length of the window) to test the cache's bookkeeping."""

    name, dim, sample_rate = "window-stats", 3, 8000

    def __init__(self):
        self.calls = []

    def embed(self, waveform, sample_rate, *, window=None):
        self.calls.append(window)
        wave = cut_window(waveform, sample_rate, window)
        return torch.stack([wave.mean(), wave.std(), torch.tensor(wave.numel() / sample_rate)])

    spec = {"name": "window-stats", "options": {}}
    fingerprint = spec


def write_song(path, seconds: float, frequency: float = 440.0, rate: int = 8000):
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * frequency * t) * np.linspace(0, 1, t.size)), rate)
    return path


def test_global_windows():
    trailing = GlobalWindows(seconds=4.0, refresh_steps=3, delay=0)
    assert trailing.window(0, 20.0) == (0.0, 0.5)  # causal: only what has been heard
    assert trailing.window(4, 20.0) == (0.0, 2.0)  # held since its refresh at step 3
    assert trailing.window(12, 20.0) == (2.5, 6.5)
    late = GlobalWindows(seconds=4.0, refresh_steps=3)  # delay 1, as the stream: one refresh period late
    assert [late.anchor(step) for step in range(10)] == [0, 0, 0, 0, 0, 0, 3, 3, 3, 6]
    assert late.window(4, 20.0) == (0.0, 0.5) and late.window(15, 20.0) == (2.5, 6.5)
    # the feature cache stores undelayed rows (row s: its own anchor's vector); the delay is a shift of them
    held = torch.tensor([float(late.undelayed().anchor(s)) for s in range(10)])[:, None]
    torch.testing.assert_close(late.delayed(held), torch.tensor([float(late.anchor(s)) for s in range(10)])[:, None])
    centred = GlobalWindows(placement="centred", seconds=4.0, refresh_steps=1, delay=0)
    assert centred.window(10, 20.0) == (3.25, 7.25)
    assert centred.window(39, 20.0) == (17.75, 20.0)  # cut at the end of the audio
    assert GlobalWindows(placement="centred", seconds=4.0, refresh_steps=1).window(11, 20.0) == (3.25, 7.25)
    with pytest.raises(InputError, match="placement"):
        GlobalWindows(placement="ahead")


def test_cache_computes_once_and_matches_direct_computation(tmp_path):
    song = write_song(tmp_path / "song.wav", 6.2)
    encoder = WindowStats()
    windows = GlobalWindows(seconds=2.0, refresh_steps=4)
    cache = FeatureCache(encoder, root=tmp_path / "cache", windows=windows)
    features = cache.song(song)
    assert features.log_mel.shape == (12, 51, 128) and features.global_feat.shape == (12, 3)
    assert cache.computed == 2 and len(encoder.calls) == 3  # windows refreshed at steps 0, 4, 8
    waveform, rate = soundfile.read(song, dtype="float32")
    torch.testing.assert_close(features.log_mel, LogMelSlicer()(waveform, rate))
    torch.testing.assert_close(features.global_feat[9], encoder.embed(waveform, rate, window=windows.window(9, 6.2)))
    torch.testing.assert_close(features.global_feat[3], encoder.embed(waveform, rate, window=windows.window(3, 6.2)))
    assert windows.window(9, 6.2) == windows.span(4, 6.2)  # read one refresh late (delay 1), as the stream

    again = FeatureCache(WindowStats(), root=tmp_path / "cache", windows=windows)
    torch.testing.assert_close(again.song(song).global_feat, features.global_feat)
    assert again.computed == 0 and again.encoder.calls == []

    # another window setting: new global vectors, the same log-mel entry
    other = FeatureCache(WindowStats(), root=tmp_path / "cache", windows=GlobalWindows(seconds=1.0))
    other.song(song)
    assert other.computed == 1

    # new content under the same name: computed again
    write_song(song, 6.2, frequency=880.0)
    fresh = FeatureCache(WindowStats(), root=tmp_path / "cache", windows=windows)
    assert not torch.equal(fresh.song(song).log_mel, features.log_mel) and fresh.computed == 2


def test_unreadable_entry_is_recomputed(tmp_path):
    song = write_song(tmp_path / "song.wav", 2.0)
    cache = FeatureCache(WindowStats(), root=tmp_path / "cache")
    expected = cache.song(song).log_mel
    entry = next((tmp_path / "cache").rglob("log_mel-*.safetensors"))
    entry.write_bytes(b"garbage")
    with pytest.warns(DataWarning, match="unreadable"):
        torch.testing.assert_close(FeatureCache(WindowStats(), root=tmp_path / "cache").song(song).log_mel, expected)


def test_features_for_a_curve(tmp_path):
    song = write_song(tmp_path / "song.wav", 5.0)
    features = FeatureCache(WindowStats(), root=tmp_path / "cache").song(song)
    curve = Curve("song", "ann", 1.0, np.linspace(-1, 1, 12)[:, None].repeat(2, 1))  # 1.0 .. 7.0 s: past the end
    with pytest.warns(DataWarning, match="past the end of the audio"):
        mel, global_feat, va = features.for_curve(curve)
    assert len(mel) == len(va) == 8  # slices 2..9 of the 10 whole slices
    torch.testing.assert_close(mel, features.log_mel[2:10])
    torch.testing.assert_close(va, torch.from_numpy(curve.va[:8]))
    with pytest.raises(InputError, match="after the audio's last whole slice"):
        features.for_curve(Curve("song", "ann", 6.0, np.zeros((2, 2))))


def test_real_musicnn_features(tmp_path):
    from pdmer.model.encoders import load_global_encoder

    song = write_song(tmp_path / "song.wav", 4.0)
    encoder = load_global_encoder("musicnn")
    features = FeatureCache(encoder, root=tmp_path / "cache").song(song)
    assert features.global_feat.shape == (8, 200) and torch.isfinite(features.global_feat).all()
    waveform, rate = soundfile.read(song, dtype="float32")
    # refreshed at step 6 and used from step 12 (delay 1): steps 6 and 7 still use step 0's window
    torch.testing.assert_close(features.global_feat[7], encoder.embed(waveform, rate, window=(0.0, 0.5)))
    undelayed = FeatureCache(encoder, root=tmp_path / "cache", windows=GlobalWindows(delay=0)).song(song)
    torch.testing.assert_close(undelayed.global_feat[7], encoder.embed(waveform, rate, window=(0.0, 3.5)))
