"""The patch cache: each 3 s patch encoded once, the same values as encoding every window from its own audio."""

import json

import numpy as np
import pytest
import torch

from conftest import shared_path
from pdmer.errors import CheckpointError, InputError
from pdmer.model.encoders import MusicnnEncoder, MusicnnEncoderConfig, load_global_encoder
from pdmer.model.patches import PatchCache, grid_spans


def test_patches_tile_back_from_the_window_end():
    assert grid_spans(0.0, 0.5) == [(0.0, 0.5)]  # shorter than a patch: itself (repeat-padded by the encoder)
    assert grid_spans(0.0, 6.5) == [(3.5, 6.5), (0.5, 3.5)]  # the remainder at the start is left out
    spans = grid_spans(10.5, 40.5)
    assert len(spans) == 10 and spans[0] == (37.5, 40.5) and spans[-1] == (10.5, 13.5)
    with pytest.raises(InputError, match="empty"):
        grid_spans(2.0, 2.0)


@pytest.fixture(scope="module")
def real_music():
    from pdmer.audio import load_audio

    waveform, rate = load_audio(shared_path("data", "music", "hr3-hell.ogg"))
    return waveform[: 75 * rate], rate  # 75 s: windows past the first 30 s, where they slide


def test_cached_and_uncached_agree_on_real_music(real_music):
    """Trailing 30 s windows every 3 s over 75 s of real music: the cache encodes each patch once, and every window's
    vector equals the window encoded alone from its own samples (a fresh encoder call, nothing shared)."""
    from pdmer.data.features import GlobalWindows, global_vectors

    waveform, rate = real_music
    encoder, windows = load_global_encoder("musicnn"), GlobalWindows(delay=0)  # every refresh read
    steps = int(len(waveform) / rate / 0.5)
    spans = list(dict.fromkeys(windows.window(step, len(waveform) / rate) for step in range(steps)))
    cache = PatchCache(encoder)
    cached = cache.windows(waveform, rate, spans)
    assert cache.encoded == len(spans) == 25  # one new patch per refresh
    for span, vector in zip(spans, cached):
        start, end = round(span[0] * rate), round(span[1] * rate)
        alone = encoder.embed(waveform[start:end].copy(), rate)
        assert (vector - alone).abs().max() <= 1e-5, span
    per_step = global_vectors(encoder, windows, waveform, rate, steps)  # what the feature cache and predict use
    assert torch.equal(per_step[-1], cached[-1]) and per_step.shape == (steps, 200)


def test_a_stream_offset_finds_the_patches_already_encoded(real_music):
    waveform, rate = real_music
    cache = PatchCache(load_global_encoder("musicnn"))
    whole = cache.windows(waveform, rate, [(0.0, 30.5)])[0]
    piece = waveform[round(6.5 * rate) : round(36.5 * rate)]  # the next window, as a stream's ring hands it over
    before = cache.encoded
    cache.windows(piece, rate, [None], offset=6.5)
    assert cache.encoded - before == 2  # [30.5, 33.5] and [33.5, 36.5]: the 8 others were kept
    cache.forget_before(20.0)
    assert all(end > 20.0 * rate for _, end in cache.vectors) and len(cache.vectors) == 6
    assert torch.isfinite(whole).all()


@pytest.mark.parametrize("features", ["penultimate", "mean_pool", "max_pool", "taggram"])
def test_onnxruntime_equals_torch_on_real_music(real_music, features):
    waveform, rate = real_music
    config = MusicnnEncoderConfig(features=features)
    onnx, eager = MusicnnEncoder(config, runtime="onnx"), MusicnnEncoder(config, runtime="torch")
    assert onnx.onnx is not None and eager.onnx is None
    windows = [(0.0, 30.0), (30.0, 60.0), (12.0, 14.0)]
    difference = (onnx.embed_windows(waveform, rate, windows) - eager.embed_windows(waveform, rate, windows)).abs()
    assert difference.max() <= 1e-4


def test_an_onnx_graph_of_other_weights_is_refused(tmp_path):
    import onnx

    from pdmer.model.musicnn import ONNX, MusicnnOnnx

    proto = onnx.load(str(ONNX))
    for prop in proto.metadata_props:
        if prop.key == "weights_sha256":
            prop.value = "0" * 64
    stale = tmp_path / "stale.onnx"
    onnx.save(proto, str(stale))
    with pytest.raises(CheckpointError, match="pdmer convert-musicnn"):
        MusicnnOnnx(stale)


def test_models_recorded_before_grid_patches_keep_spread_patches():
    from pdmer.data.features import recorded_inputs

    legacy = {"global_encoder": json.dumps({"name": "musicnn", "options": {"features": "penultimate"}})}
    encoder, windows = recorded_inputs(legacy, 200, source="old.safetensors")
    assert encoder.config.patches == "spread" and windows.refresh_steps == 5
    current = {"global_encoder": json.dumps(load_global_encoder("musicnn").spec),
               "global_windows": json.dumps({"placement": "trailing", "seconds": 30.0, "refresh_steps": 6})}
    encoder, windows = recorded_inputs(current, 200, source="new.safetensors")
    assert encoder.patched and windows.refresh_steps == 6


def test_short_windows_are_one_repeat_padded_patch():
    rate = 16000
    t = np.arange(int(1.2 * rate)) / rate
    short = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    encoder = load_global_encoder("musicnn")
    tiled = np.tile(short, 3)[: 186 * 256]  # one patch's 187 frames
    torch.testing.assert_close(encoder.embed(short, rate), encoder.embed(tiled, rate))
