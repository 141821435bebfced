"""ImageBind audio branch: parity with the official code (../shared fixtures), state-dict layout, loader, bad input."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from conftest import shared_path
from safetensors.torch import load_file, save_file

from pdmer.errors import CheckpointError, InputError
from pdmer.model.imagebind import ImageBindAudio, clip_sample_ranges, imagebind_inputs, load_imagebind_audio

TINY = dict(embed_dim=64, num_blocks=2, num_heads=4, out_dim=32)  # tiny_audio.json: model.tiny_kwargs
PLACEMENT = {"A_pv_pinned": "imagebind", "B_pv_0.1.5": "pytorchvideo-0.1.5"}
CASE_VARIANTS = [(case, variant) for case in ("main7s", "short1p5s") for variant in PLACEMENT]
ATOL_MODEL = 1e-5
ATOL_INPUT = 1e-4


# --- fixtures -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recipe() -> dict:
    return json.loads(shared_path("fixtures", "imagebind", "tiny_audio.json").read_text())


@pytest.fixture(scope="module")
def tiny_weights() -> dict[str, torch.Tensor]:
    return load_file(shared_path("fixtures", "imagebind", "tiny_audio.safetensors"))


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    return load_file(shared_path("fixtures", "imagebind", "tiny_audio_io.safetensors"))


@pytest.fixture(scope="module")
def tiny_model(tiny_weights) -> ImageBindAudio:
    model = ImageBindAudio(**TINY)
    model.load_state_dict(tiny_weights, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def waveforms(io) -> dict[str, torch.Tensor]:
    """Each case's float waveform at 16 kHz, as the official loader saw it (int16 / 32768)."""
    pcm, rate = sf.read(shared_path("fixtures", "imagebind", "test_7s_16k.wav"), dtype="int16")
    assert rate == 16000
    short = io["short1p5s.waveform_int16"].float() / 32768
    return {"main7s": torch.from_numpy(pcm).float() / 32768, "short1p5s": short}


def stored_input(io, recipe, case, variant, name="input") -> torch.Tensor:
    """The stored official input; short1p5s B has none because it cuts exactly the samples A cuts (checked here)."""
    key = f"{case}.{variant}.{name}"
    if key in io:
        return io[key]
    slices = recipe["cases"][case]["variants"]
    assert slices[variant]["clip_sample_slices"] == slices["A_pv_pinned"]["clip_sample_slices"]
    return io[f"{case}.A_pv_pinned.{name}"]


# --- 1. the tiny official weights: strict load and exact outputs ----------------------------------------------------


def test_tiny_official_weights_load_strict_with_official_key_order(tiny_weights, recipe):
    model = ImageBindAudio(**TINY)
    result = model.load_state_dict(tiny_weights, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert list(model.state_dict()) == [entry["key"] for entry in recipe["model"]["keys"]]


@pytest.mark.parametrize("case, variant", CASE_VARIANTS)
def test_tiny_model_reproduces_official_outputs(tiny_model, io, recipe, case, variant):
    x = stored_input(io, recipe, case, variant)  # [1, 3, 1, 128, 204]
    with torch.no_grad():
        head = tiny_model.encode_clips(x, normalize=False)  # [1, 3, 32]
        post = tiny_model(x, per_clip=True)  # [1, 3, 32]
        final = tiny_model(x)  # [1, 32]
    torch.testing.assert_close(head[0], io[f"{case}.{variant}.head_per_clip"], atol=ATOL_MODEL, rtol=0)
    torch.testing.assert_close(post[0], io[f"{case}.{variant}.post_per_clip"], atol=ATOL_MODEL, rtol=0)
    torch.testing.assert_close(final, io[f"{case}.{variant}.final"], atol=ATOL_MODEL, rtol=0)


def test_tiny_model_reproduces_official_intermediates(tiny_model, io):
    clip0 = io["main7s.A_pv_pinned.input"][0, :1]  # [1, 1, 128, 204]
    with torch.no_grad():
        tokens = tiny_model.modality_preprocessors["audio"](clip0)  # [1, 229, 64]
        trunk = tiny_model.modality_trunks["audio"](tokens)
    torch.testing.assert_close(tokens, io["main7s.A_pv_pinned.preproc_tokens_clip0"], atol=ATOL_MODEL, rtol=0)
    torch.testing.assert_close(trunk, io["main7s.A_pv_pinned.trunk_out_clip0"], atol=ATOL_MODEL, rtol=0)


def test_final_is_mean_of_per_clip_outputs_each_of_norm_20(rng):
    model = ImageBindAudio(**TINY).eval()
    x = torch.randn(2, 3, 1, 128, 204, generator=rng)
    with torch.no_grad():
        per_clip = model(x, per_clip=True)
        final = model(x)
    torch.testing.assert_close(per_clip.norm(dim=-1), torch.full((2, 3), 20.0))
    torch.testing.assert_close(final, per_clip.mean(dim=1))


def test_train_mode_computes_the_same_as_eval(rng):
    model = ImageBindAudio(**TINY)
    x = torch.randn(1, 2, 1, 128, 204, generator=rng)
    with torch.no_grad():
        trained = model.train()(x)
        evaluated = model.eval()(x)
    torch.testing.assert_close(trained, evaluated, atol=0, rtol=0)


# --- 2. preprocessing against the official inputs ----------------------------------------------------------------


@pytest.mark.parametrize("case, variant", CASE_VARIANTS)
def test_clip_sample_ranges_match_pytorchvideo(waveforms, recipe, case, variant):
    ranges = clip_sample_ranges(len(waveforms[case]), 16000, clip_placement=PLACEMENT[variant])
    assert [list(r) for r in ranges] == recipe["cases"][case]["variants"][variant]["clip_sample_slices"]


@pytest.mark.parametrize(
    "case, variant, quirk, stored",
    [
        ("main7s", "A_pv_pinned", False, "input"),  # A's clips do not overlap at 7 s: both modes are official
        ("main7s", "A_pv_pinned", True, "input"),
        ("main7s", "B_pv_0.1.5", True, "input"),  # official: the in-place mean leaks into overlapping clips
        ("main7s", "B_pv_0.1.5", False, "input_noinplace"),  # pdmer's default: each clip's own mean
        ("short1p5s", "A_pv_pinned", True, "input"),
        ("short1p5s", "A_pv_pinned", False, "input"),  # three identical clips: the leak is float noise (5.7e-5)
        ("short1p5s", "B_pv_0.1.5", True, "input"),
    ],
)
def test_inputs_reproduce_official_preprocessing(waveforms, io, recipe, case, variant, quirk, stored):
    x = imagebind_inputs(waveforms[case], 16000, clip_placement=PLACEMENT[variant], inplace_mean_quirk=quirk)
    assert x.shape == (1, 3, 1, 128, 204) and x.dtype == torch.float32
    torch.testing.assert_close(x, stored_input(io, recipe, case, variant, stored), atol=ATOL_INPUT, rtol=0)


def test_inplace_quirk_never_touches_the_callers_waveform(waveforms):
    wave = waveforms["main7s"].clone()
    imagebind_inputs(wave, 16000, clip_placement="pytorchvideo-0.1.5", inplace_mean_quirk=True)
    assert torch.equal(wave, waveforms["main7s"])


def test_inputs_resample_to_16k_first(rng):
    wave = torch.randn(3 * 32000, generator=rng) * 0.1  # 3 s at 32 kHz
    expected = imagebind_inputs(torchaudio.functional.resample(wave, 32000, 16000), 16000)
    torch.testing.assert_close(imagebind_inputs(wave, 32000), expected, atol=0, rtol=0)


def test_inputs_authors_mode_computes_the_fbank_at_the_input_rate(rng):
    rate = 44100
    wave = torch.randn(5 * rate, generator=rng) * 0.1  # 5 s at 44.1 kHz, as the DSAML authors' global window
    x = imagebind_inputs(wave, rate, clip_placement="pytorchvideo-0.1.5", fbank_sample_rate=None)
    clip0 = wave[: 2 * rate].unsqueeze(0)  # clip 0 starts at 0 in either placement
    fbank = torchaudio.compliance.kaldi.fbank(
        clip0 - clip0.mean(), htk_compat=True, sample_frequency=rate, use_energy=False, window_type="hanning",
        num_mel_bins=128, dither=0.0, frame_length=25, frame_shift=10,
    ).T  # [128, 198]: 25 ms / 10 ms frames at 44.1 kHz
    assert fbank.shape == (128, 198)
    torch.testing.assert_close(x[0, 0, 0, :, :198], (fbank + 4.268) / 9.138, atol=1e-5, rtol=0)
    torch.testing.assert_close(x[0, 0, 0, :, 198:], torch.full((128, 6), 4.268 / 9.138), atol=1e-6, rtol=0)


def test_inputs_downmix_channels_and_accept_numpy(rng):
    stereo = torch.randn(2, 40000, generator=rng) * 0.1
    mono = imagebind_inputs(stereo.mean(dim=0), 16000)
    torch.testing.assert_close(imagebind_inputs(stereo, 16000), mono, atol=0, rtol=0)
    torch.testing.assert_close(imagebind_inputs(stereo.numpy(), 16000), mono, atol=0, rtol=0)
    torch.testing.assert_close(imagebind_inputs(stereo[:1], 16000), imagebind_inputs(stereo[0], 16000), atol=0, rtol=0)


def test_inputs_accept_exactly_one_fbank_frame():
    assert imagebind_inputs(np.zeros(400, dtype=np.float32), 16000).shape == (1, 3, 1, 128, 204)


# --- 3. full-size layout -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def huge_keys() -> list[dict]:
    return json.loads(shared_path("fixtures", "imagebind", "audio_keys_huge.json").read_text())["keys"]


@pytest.fixture(scope="module")
def huge_state() -> dict[str, torch.Tensor]:
    with torch.device("meta"):  # shapes only
        return ImageBindAudio().state_dict()


def test_huge_state_dict_keys_and_shapes_equal_official(huge_state, huge_keys):
    assert set(huge_state) == {entry["key"] for entry in huge_keys}
    assert {k: list(v.shape) for k, v in huge_state.items()} == {e["key"]: e["shape"] for e in huge_keys}
    assert list(huge_state) == [entry["key"] for entry in huge_keys]  # same order too


def test_huge_element_count():
    with torch.device("meta"):
        model = ImageBindAudio()
    assert sum(t.numel() for t in model.state_dict().values()) == 86_235_649  # 86 235 648 parameters + the scale
    assert [name for name, _ in model.named_buffers()] == ["modality_postprocessors.audio.1.log_logit_scale"]


# --- 4. loader -----------------------------------------------------------------------------------------------------


def full_checkpoint(tiny_weights, rng) -> dict[str, torch.Tensor]:
    """The tiny audio branch inside a checkpoint that also has other modalities, as imagebind_huge.pth has."""
    others = {
        "modality_preprocessors.vision.cls_token": torch.randn(1, 1, 32, generator=rng),
        "modality_trunks.vision.blocks.0.attn.in_proj_weight": torch.randn(96, 32, generator=rng),
        "modality_heads.text.proj.1.weight": torch.randn(32, 32, generator=rng),
    }
    return {**others, **tiny_weights}


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_loader_keeps_the_audio_branch_and_reproduces_final(tmp_path, tiny_weights, io, rng, suffix):
    path = tmp_path / f"imagebind_tiny{suffix}"
    state = full_checkpoint(tiny_weights, rng)
    torch.save(state, path) if suffix == ".pth" else save_file(state, path)
    model = load_imagebind_audio(path, **TINY)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        final = model(io["main7s.A_pv_pinned.input"])
    torch.testing.assert_close(final, io["main7s.A_pv_pinned.final"], atol=ATOL_MODEL, rtol=0)


def test_loader_missing_file_says_the_checkpoint_is_user_supplied(tmp_path):
    path = tmp_path / "nowhere" / "imagebind_huge.pth"
    with pytest.raises(CheckpointError) as err:
        load_imagebind_audio(path)
    message = str(err.value)
    assert str(path) in message and "user-supplied" in message
    assert "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth" in message and "non-commercial" in message


def test_loader_rejects_a_checkpoint_without_audio_keys(tmp_path, rng):
    path = tmp_path / "vision_only.pth"
    torch.save({"modality_trunks.vision.blocks.0.norm_1.weight": torch.ones(4)}, path)
    with pytest.raises(CheckpointError, match="no audio branch keys.*modality_trunks.vision.blocks.0.norm_1.weight"):
        load_imagebind_audio(path, **TINY)


@pytest.mark.parametrize(
    "sizes, problem",
    [
        ({}, "shape mismatch"),  # imagebind_huge's sizes against the tiny weights
        ({**TINY, "out_dim": 16}, "shape mismatch"),
        ({**TINY, "num_blocks": 3}, "missing"),
        ({**TINY, "num_blocks": 1}, "unexpected"),
    ],
)
def test_loader_rejects_wrong_sizes(tmp_path, tiny_weights, sizes, problem):
    path = tmp_path / "tiny.pth"
    torch.save(tiny_weights, path)
    with pytest.raises(CheckpointError, match=problem) as err:
        load_imagebind_audio(path, **sizes)
    assert "embed_dim=64, num_blocks=2, out_dim=32" in str(err.value)  # what the checkpoint's shapes say


def test_loader_rejects_a_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "imagebind_huge.pth"
    path.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(CheckpointError, match="could not read"):
        load_imagebind_audio(path)


# --- 5. bad input --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [(3, 1, 128, 204), (1, 3, 1, 128, 200), (1, 3, 2, 128, 204), (1, 3, 1, 64, 204), (1, 0, 1, 128, 204)],
)
def test_forward_rejects_wrong_shapes_naming_expected_and_got(shape):
    model = ImageBindAudio(**TINY)
    with pytest.raises(InputError) as err:
        model(torch.zeros(shape))
    assert "[B, S, 1, 128, 204]" in str(err.value) and str(list(shape)) in str(err.value)


@pytest.mark.parametrize("num_samples, rate", [(399, 16000), (0, 16000), (800, 44100)])
def test_too_short_waveform_names_its_length_and_the_minimum(num_samples, rate):
    with pytest.raises(InputError, match=r"s long .*at least one 25 ms frame = 0\.0250 s"):
        imagebind_inputs(torch.zeros(num_samples), rate)


@pytest.mark.parametrize(
    "waveform, kwargs",
    [
        (torch.zeros(1, 1, 16000), {}),  # 3-D
        (torch.zeros(16000, dtype=torch.int16), {}),  # integer PCM
        (torch.full((16000,), float("nan")), {}),
        (torch.zeros(16000), {"clip_placement": "centre"}),
        (torch.zeros(16000), {"num_clips": 0}),
        (torch.zeros(16000), {"fbank_sample_rate": -1}),
    ],
)
def test_inputs_reject_bad_waveforms_and_options(waveform, kwargs):
    with pytest.raises(InputError):
        imagebind_inputs(waveform, 16000, **kwargs)
