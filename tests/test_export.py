"""ONNX export and runtime: parity with torch, metadata, the cached-past path, predict, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from pdmer.errors import CheckpointError, InputError
from pdmer.export.graph import FORMAT, example_inputs, export_onnx, to_onnx, weights_hash
from pdmer.export.predict import predict_onnx
from pdmer.export.runtime import OnnxModel, cuda_usable
from pdmer.model.checkpoint import save_model
from pdmer.model.inference import predict_song
from pdmer.model.registry import build_model

from conftest import MUSICNN_INPUTS, shared_path

MUSICNN = MUSICNN_INPUTS["global_encoder"]


def trained_like(model):
    """Spread the weights a little past their init, so that parity is checked on a model with varied outputs, and
    give batch norm non-trivial running statistics."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                noise = torch.randn(tensor.shape, generator=generator) * 0.05
                tensor.copy_(tensor.abs() + 0.5 if "running_var" in name else tensor + noise)
    return model.eval()


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return trained_like(build_model("dsaml", "small", global_dim=200))


@pytest.fixture(scope="module")
def small_onnx(small, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "small.onnx"
    export_onnx(small, path, context={"global_encoder": MUSICNN})
    return path


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("steps", [1, 7, 29, 30, 31, 60, 120])
def test_onnx_matches_torch(small, small_onnx, batch, steps):
    """Dynamic B and T; T around n_g = 30 shows the band masks are built from the input's length, not the traced
    one (a frozen mask would differ from torch at every T but the traced 3)."""
    runtime = OnnxModel(small_onnx, device="cpu")
    mel, _, global_feat = example_inputs(small, batch, steps, seed=steps)
    with torch.no_grad():
        expected = small(mel, global_feat).va.numpy()
    got = runtime(mel.numpy(), global_feat.numpy()).va
    assert got.shape == (batch, steps, 2)
    assert np.abs(got - expected).max() <= 1e-4


def test_band_masks_are_exact_below_global_band(small, small_onnx):
    """At T = 20 < n_g the global mask is all ones and the local one still cuts: a change at step 0 moves every
    step's output in ONNX exactly as in torch."""
    runtime = OnnxModel(small_onnx, device="cpu")
    mel, _, global_feat = example_inputs(small, 1, 20)
    changed = mel.clone()
    changed[:, 0] += 3.0
    with torch.no_grad():
        torch_delta = small(changed, global_feat).va - small(mel, global_feat).va
    onnx_delta = runtime(changed.numpy(), global_feat.numpy()).va - runtime(mel.numpy(), global_feat.numpy()).va
    assert torch_delta.abs().max() > 1e-3  # the change matters...
    assert np.abs(onnx_delta - torch_delta.numpy()).max() <= 1e-4  # ...and the graph propagates it exactly as torch


def test_cached_past_equals_the_full_window(small, small_onnx):
    """The stream's call (one new slice + 59 cached local features) gives the full 60-step window's output."""
    runtime = OnnxModel(small_onnx, device="cpu")
    mel, _, global_feat = example_inputs(small, 2, 60)
    full = runtime(mel.numpy(), global_feat.numpy())
    step = runtime(mel[:, 59:].numpy(), global_feat.numpy(), past_local=full.local[:, :59])
    assert np.abs(step.va - full.va).max() <= 1e-5
    assert np.abs(step.local - full.local).max() == 0.0


def test_one_global_vector_is_repeated_over_time(small, small_onnx):
    runtime = OnnxModel(small_onnx, device="cpu")
    mel, _, global_feat = example_inputs(small, 2, 9)
    with torch.no_grad():
        expected = small(mel, global_feat[:, 0]).va.numpy()
    assert np.abs(runtime(mel.numpy(), global_feat[:, 0].numpy()).va - expected).max() <= 1e-4


def test_metadata_and_checker(small, small_onnx):
    proto = onnx.load(str(small_onnx))
    onnx.checker.check_model(proto, full_check=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["format"] == FORMAT and meta["architecture"] == "dsaml" and meta["preset"] == "small"
    assert meta["va_order"] == "valence,arousal" and json.loads(meta["global_encoder"])["name"] == "musicnn"
    assert json.loads(meta["config"]) == small.config.to_dict()
    assert meta["base_model_sha256"] == meta["weights_sha256"] == weights_hash(small)
    assert meta["pdmer_version"]
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert dims["mel"] == ["batch", "new_steps", 51, 128] and dims["global"] == ["batch", "steps", 200]


def test_adapted_weights_keep_the_base_hash(small):
    weights = {name: t.clone() for name, t in small.state_dict().items()}
    weights["predictor.out.bias"] = weights["predictor.out.bias"] + 0.25
    data = to_onnx(small, weights=weights, context={"global_encoder": MUSICNN, "profile": "alice"})
    runtime = OnnxModel(data, device="cpu")
    assert runtime.metadata["base_model_sha256"] == weights_hash(small) != runtime.metadata["weights_sha256"]
    assert runtime.metadata["profile"] == "alice"
    mel, _, global_feat = example_inputs(small, 1, 5)
    with torch.no_grad():
        base = small(mel, global_feat).va.numpy()
    assert np.abs(runtime(mel.numpy(), global_feat.numpy()).va - base - 0.25).max() <= 1e-4
    assert small.predictor.out.bias.abs().max() < 0.25  # the base model is untouched


@pytest.mark.parametrize("architecture", ["damff", "crnn"])
def test_baselines_export_too(architecture):
    torch.manual_seed(0)
    model = build_model(architecture, "small", global_dim=200).eval()
    runtime = OnnxModel(to_onnx(model), device="cpu")
    for steps in (3, 61):
        mel, _, global_feat = example_inputs(model, 2, steps)
        with torch.no_grad():
            expected = model(mel, global_feat).va.numpy()
        assert np.abs(runtime(mel.numpy(), global_feat.numpy()).va - expected).max() <= 1e-4


def test_offline_windows_match_torch_inference(small, small_onnx):
    """predict_onnx reads the same causal windows as predict_song on the torch model (T > 60)."""
    runtime = OnnxModel(small_onnx, device="cpu")
    mel, _, global_feat = example_inputs(small, 1, 131)
    expected = predict_song(small, mel[0], global_feat[0]).numpy()
    assert np.abs(predict_onnx(runtime, mel[0].numpy(), global_feat[0].numpy()) - expected).max() <= 1e-4


@pytest.mark.parametrize("slice_stats, trailing_stats", [(False, 0), (True, 0), (True, 20)])
def test_a_causal_model_exports_and_predicts_as_torch(slice_stats, trailing_stats):
    torch.manual_seed(0)
    model = trained_like(build_model("dsaml", "small", global_dim=200, causal=True, global_norm=True, global_skip=True,
                                     slice_stats=slice_stats, trailing_stats=trailing_stats)).eval()
    runtime = OnnxModel(to_onnx(model, context={"global_encoder": MUSICNN}), device="cpu")
    assert json.loads(runtime.metadata["config"])["causal"] is True
    assert runtime.local_dim == 476 + 3 * slice_stats
    mel, _, global_feat = example_inputs(model, 1, 75)
    expected = predict_song(model, mel[0], global_feat[0]).numpy()
    assert np.abs(predict_onnx(runtime, mel[0].numpy(), global_feat[0].numpy()) - expected).max() <= 1e-4


# -- bad input -------------------------------------------------------------------------------------------------------

def test_corrupt_truncated_and_foreign_files_are_refused(small_onnx, tmp_path):
    data = small_onnx.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 3])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all" * 100)
    for path in (truncated, garbage):
        with pytest.raises(CheckpointError, match="not a readable ONNX model.*pdmer export"):
            OnnxModel(path)
    foreign = tmp_path / "foreign.onnx"
    torch.onnx.export(torch.nn.Linear(3, 2), (torch.zeros(1, 3),), str(foreign), dynamo=False)
    with pytest.raises(CheckpointError, match="not a pdmer export"):
        OnnxModel(foreign)
    with pytest.raises(InputError, match="does not exist"):
        OnnxModel(tmp_path / "missing.onnx")


def test_onnx_from_another_config_is_refused(small_onnx):
    from pdmer.model.config import ModelConfig

    with pytest.raises(CheckpointError, match=r"another model config \(differs in \['hidden_dim'"):
        OnnxModel(small_onnx, expect=ModelConfig.preset("small", global_dim=200, hidden_dim=128))
    OnnxModel(small_onnx, expect=ModelConfig.preset("small", global_dim=200))  # its own config is accepted


def test_wrong_shapes_and_devices(small_onnx):
    runtime = OnnxModel(small_onnx, device="cpu")
    with pytest.raises(InputError, match=r"mel must be \[batch, steps >= 1, 51, 128\]"):
        runtime(np.zeros((1, 4, 51, 64)), np.zeros((1, 200)))
    with pytest.raises(InputError, match=r"global_feat must be"):
        runtime(np.zeros((1, 4, 51, 128)), np.zeros((1, 128)))
    with pytest.raises(InputError, match="device"):
        OnnxModel(small_onnx, device="tpu")
    if not cuda_usable(__import__("onnxruntime")):
        with pytest.raises(InputError, match="cannot use a CUDA GPU.*--device cpu"):
            OnnxModel(small_onnx, device="cuda")
    assert OnnxModel(small_onnx, device="auto").device in ("cpu", "cuda")


# -- the commands ----------------------------------------------------------------------------------------------------

def pdmer(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pdmer", *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def checkpoint(small, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "small.safetensors"
    return save_model(small, path, metadata={"global_encoder": MUSICNN})


def test_export_command_writes_a_checked_file(checkpoint, tmp_path):
    out = tmp_path / "model.onnx"
    result = pdmer("export", checkpoint, "-o", out)
    assert result.returncode == 0, result.stderr
    assert "checked against torch" in result.stdout
    assert OnnxModel(out).metadata["weights_sha256"] == weights_hash(build_model_from(checkpoint))


def build_model_from(path):
    from pdmer.model.checkpoint import load_model

    return load_model(path)


@pytest.mark.slow
def test_predict_a_real_track(checkpoint, small_onnx, tmp_path):
    """A real song from ../shared/data/music: CSV of one row per whole 0.5 s, a PNG; .safetensors and .onnx agree."""
    import soundfile

    song = shared_path("data", "music", "hr-savino-ocean.ogg")
    steps = int(soundfile.info(str(song)).duration / 0.5)
    csv, png = tmp_path / "ocean.csv", tmp_path / "ocean.png"
    result = pdmer("predict", song, "--model", small_onnx, "--csv", csv, "--plot", png)
    assert result.returncode == 0, result.stderr
    rows = np.loadtxt(csv, delimiter=",", skiprows=1)
    assert csv.read_text().splitlines()[0] == "time_s,valence,arousal"
    assert rows.shape == (steps, 3) and np.allclose(rows[:, 0], np.arange(steps) * 0.5)
    assert np.isfinite(rows).all() and rows[:, 1:].std(axis=0).min() > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    direct = pdmer("predict", song, "--model", checkpoint, "--json")
    assert direct.returncode == 0, direct.stderr
    assert np.abs(np.array(json.loads(direct.stdout)["rows"]) - rows).max() <= 1e-4


def test_predict_refuses_bad_input(small_onnx, tmp_path):
    import soundfile

    short = tmp_path / "short.wav"
    soundfile.write(str(short), np.zeros(int(0.3 * 44100), np.float32), 44100)
    unreadable = tmp_path / "text.wav"
    unreadable.write_text("this is not audio")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(small_onnx.read_bytes()[:1000])
    out = tmp_path / "out.csv"
    for args, message in (
        ((short, "--model", small_onnx), "0.30 s long; pdmer needs at least 0.5 s"),
        ((unreadable, "--model", small_onnx), "cannot decode"),
        ((short, "--model", truncated), "not a readable ONNX model"),
        ((short, "--model", tmp_path / "none.onnx"), "does not exist"),
    ):
        result = pdmer("predict", *args, "--csv", out)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert not out.exists()


def test_predict_several_files_into_a_folder(small_onnx, tmp_path):
    """One process, three files: the bad one is named and skipped, the others get the curves a single-file run
    gives, nothing half-written is left, and the exit code says something failed."""
    import soundfile

    rate = 22050
    t = np.arange(int(4 * rate)) / rate
    songs = []
    for name, freq in (("low", 220.0), ("high", 880.0)):
        path = tmp_path / f"{name}.wav"
        soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
        songs.append(path)
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"ID3 not really an mp3")
    out = tmp_path / "curves"
    result = pdmer("predict", songs[0], broken, songs[1], "--model", small_onnx, "--out-dir", out)
    assert result.returncode == 2, result.stderr
    assert f"cannot decode {broken}" in result.stderr and "Traceback" not in result.stderr
    assert "2 of 3 files" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["high.csv", "low.csv"]  # no temporary or partial file
    single = pdmer("predict", songs[1], "--model", small_onnx)
    assert single.returncode == 0 and (out / "high.csv").read_text() == single.stdout
    as_json = pdmer("predict", *songs, "--model", small_onnx, "--out-dir", out, "--json")
    assert as_json.returncode == 0 and json.loads((out / "low.json").read_text())["song"] == "low.wav"


def test_predict_several_files_refuses_what_it_cannot_write(small_onnx, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    clashing = [tmp_path / "a" / "song.wav", tmp_path / "b" / "song.wav"]
    result = pdmer("predict", *clashing, "--model", small_onnx, "--out-dir", tmp_path / "out")
    assert result.returncode == 2 and "would both write" in result.stderr and not (tmp_path / "out").exists()
    result = pdmer("predict", *clashing, "--model", small_onnx)
    assert result.returncode == 2 and "add --out-dir DIR" in result.stderr
    afile = tmp_path / "file"
    afile.write_text("")
    result = pdmer("predict", clashing[0], "--model", small_onnx, "--out-dir", afile)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_predict_makes_the_missing_folders_of_its_outputs(small_onnx, tmp_path):
    """--csv and --plot into folders that do not exist yet: they are made (as for every output of every command),
    and the files are written there; the check before the work creates nothing itself."""
    import soundfile

    rate = 22050
    t = np.arange(int(3 * rate)) / rate
    song = tmp_path / "tone.wav"
    soundfile.write(str(song), (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), rate)
    csv, png = tmp_path / "curves" / "deep" / "tone.csv", tmp_path / "plots" / "tone.png"
    result = pdmer("predict", song, "--model", small_onnx, "--csv", csv, "--plot", png)
    assert result.returncode == 0, result.stderr
    assert csv.read_text().startswith("time_s,valence,arousal\n") and png.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in csv.parent.iterdir()) == ["tone.csv"]  # no probe or temporary file left
    assert sorted(p.name for p in png.parent.iterdir()) == ["tone.png"]
    failed = pdmer("predict", tmp_path / "none.wav", "--model", small_onnx, "--csv", tmp_path / "later" / "x.csv")
    assert failed.returncode == 2 and not (tmp_path / "later").exists()  # a failed run leaves no empty folder
