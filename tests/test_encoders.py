"""Global encoders: the musicnn default on real and awkward audio, the shared interface, ImageBind through it."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import shared_path
from pdmer.errors import InputError
from pdmer.model import DSAML
from pdmer.model.encoders import (
    ENCODER_NAMES,
    FEATURE_DIMS,
    ImageBindEncoder,
    MusicnnEncoderConfig,
    load_global_encoder,
    model_config_for,
)
from pdmer.model.musicnn import MSD_TAGS


@pytest.fixture(scope="module")
def musicnn_encoder():
    return load_global_encoder("musicnn")


def tone(seconds, rate=16000, freq=440.0, seed=0):
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * freq * t) * (1 + np.sin(2 * np.pi * 2 * t)) + 0.01 * noise).astype(np.float32)


def test_interface(musicnn_encoder):
    assert (musicnn_encoder.name, musicnn_encoder.dim, musicnn_encoder.sample_rate) == ("musicnn", 200, 16000)
    vector = musicnn_encoder.embed(tone(10), 16000, window=(2.0, 8.0))
    assert vector.shape == (200,) and vector.dtype == torch.float32


def test_window_selects_the_audio(musicnn_encoder):
    wave = np.concatenate([tone(6, freq=220), tone(6, freq=1760, seed=1)])
    first, second = musicnn_encoder.embed(wave, 16000, window=(0, 6)), musicnn_encoder.embed(wave, 16000, window=(6, 12))
    assert torch.allclose(first, musicnn_encoder.embed(wave[: 6 * 16000], 16000), atol=1e-5)
    assert not torch.allclose(first, second, atol=1e-2)


@pytest.mark.parametrize("features", sorted(FEATURE_DIMS))
def test_feature_choice_sets_the_dim_and_the_model_config(features):
    encoder = load_global_encoder("musicnn", features=features)
    assert encoder.embed(tone(4), 16000).shape == (FEATURE_DIMS[features],)
    config = model_config_for(encoder)
    assert config.global_dim == FEATURE_DIMS[features] and config.hidden_dim == 256  # the "small" preset


def test_the_embedding_drives_dsaml(musicnn_encoder):
    model = DSAML(model_config_for(musicnn_encoder)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 6, 51, 128), musicnn_encoder.embed(tone(4), 16000)[None])
    assert out.va.shape == (1, 6, 2)


def test_patches_are_spread_over_the_window(musicnn_encoder):
    patches = musicnn_encoder.patches(torch.from_numpy(tone(30)))
    assert patches.shape == (3, 187, 96)
    every = load_global_encoder("musicnn", patches_per_window=None).patches(torch.from_numpy(tone(30)))
    assert every.shape == (10, 187, 96)
    torch.testing.assert_close(patches[0], every[0])  # the first patch starts at the window's start


def test_silence_gives_finite_features(musicnn_encoder):
    vector = musicnn_encoder.embed(np.zeros(16000 * 5, dtype=np.float32), 16000)
    assert torch.isfinite(vector).all()


def test_short_audio_is_repeat_padded_to_one_patch(musicnn_encoder):
    """< 3 s: the audio is repeated to fill one 3 s patch (musicnn's pad_short setting), documented behaviour."""
    short = tone(1.2)
    tiled = np.tile(short, 3)[: 186 * 256]
    torch.testing.assert_close(musicnn_encoder.embed(short, 16000), musicnn_encoder.embed(tiled, 16000))


def test_too_short_audio_is_named(musicnn_encoder):
    with pytest.raises(InputError, match="musicnn needs at least 0.032 s"):
        musicnn_encoder.embed(np.zeros(400, dtype=np.float32), 16000)


def test_other_sample_rates_are_resampled(musicnn_encoder):
    t44 = np.arange(44100 * 6) / 44100
    wave44 = (0.3 * np.sin(2 * np.pi * 440 * t44)).astype(np.float32)
    t16 = np.arange(16000 * 6) / 16000
    wave16 = (0.3 * np.sin(2 * np.pi * 440 * t16)).astype(np.float32)
    a, b = musicnn_encoder.embed(wave44, 44100), musicnn_encoder.embed(wave16, 16000)
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.99


def test_stereo_is_downmixed(musicnn_encoder):
    left, right = tone(4, seed=1), tone(4, freq=660, seed=2)
    stereo = musicnn_encoder.embed(np.stack([left, right]), 16000)
    torch.testing.assert_close(stereo, musicnn_encoder.embed((left + right) / 2, 16000))


@pytest.mark.parametrize("window", [(3.0, 2.0), (-1.0, 2.0), (0.0, 99.0)])
def test_bad_windows_are_named(musicnn_encoder, window):
    with pytest.raises(InputError, match="window="):
        musicnn_encoder.embed(tone(4), 16000, window=window)


def test_bad_encoder_choices_are_named():
    with pytest.raises(InputError, match="unknown global encoder"):
        load_global_encoder("clap")
    with pytest.raises(InputError, match="imagebind_huge.pth"):
        load_global_encoder("imagebind")
    with pytest.raises(InputError, match="features="):
        MusicnnEncoderConfig(features="logits")


@pytest.mark.parametrize("track", ["hr-savino-ocean.ogg", "hr-savino-caribbean.ogg", "hr3-hell.ogg"])
def test_real_tracks_get_plausible_top_tags(musicnn_encoder, track):
    """Instrumental game music (CC BY-SA 3.0): its top tags should describe instrumental/electronic music."""
    from pdmer.audio import load_audio

    waveform, sample_rate = load_audio(shared_path("data", "music", track))
    taggram = load_global_encoder("musicnn", features="taggram").embed(waveform, sample_rate, window=(0, 30))
    top = [MSD_TAGS[i] for i in taggram.argsort(descending=True)[:5]]
    plausible = {"electronic", "instrumental", "ambient", "chillout", "jazz", "electronica", "chill", "experimental"}
    assert len(plausible & set(top)) >= 3, top
    assert not {"female vocalists", "male vocalists", "Hip-Hop", "metal", "punk"} & set(top[:3]), top
    for loud in (waveform, np.clip(waveform * 30, -1, 1)):  # also clipped and very loud
        for features in ("penultimate", "taggram"):
            vector = load_global_encoder("musicnn", features=features).embed(loud, sample_rate, window=(0, 30))
            assert torch.isfinite(vector).all()


def test_imagebind_through_the_same_interface(tmp_path):
    """The tiny official ImageBind weights, wrapped as a GlobalEncoder, give the fixture's own final output."""
    import soundfile

    folder = shared_path("fixtures", "imagebind")
    weights = load_file(folder / "tiny_audio.safetensors")
    save_file(weights, tmp_path / "tiny.safetensors")
    tiny = dict(embed_dim=64, num_blocks=2, num_heads=4, out_dim=32)
    encoder = ImageBindEncoder(tmp_path / "tiny.safetensors", model_sizes=tiny)
    assert (encoder.name, encoder.dim, encoder.sample_rate) == ("imagebind", 32, 16000)
    samples, rate = soundfile.read(folder / "test_7s_16k.wav", dtype="int16")
    vector = encoder.embed(samples.astype(np.float32) / 32768, rate)
    expected = load_file(folder / "tiny_audio_io.safetensors")["main7s.A_pv_pinned.final"][0]
    torch.testing.assert_close(vector, expected, atol=1e-5, rtol=0)
    assert "imagebind" in ENCODER_NAMES
