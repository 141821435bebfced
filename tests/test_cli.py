"""The pdmer command as a user runs it: a real subprocess of the installed console script."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BIN = Path(sys.executable).parent


def pdmer(*args, check=True):
    exe = shutil.which("pdmer", path=str(BIN)) or pytest.fail("pdmer console script is not installed in this venv")
    result = subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        pytest.fail(f"pdmer {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def test_help_does_not_import_torch():
    code = "import sys; from pdmer.cli import main\ntry:\n main(['--help'])\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "model-info" in result.stdout
    assert "The main program is pdmer-stream" in result.stdout  # a newcomer learns the streamer's name here
    assert result.stdout.strip().endswith("False")


def test_model_info_json_counts_paper_preset():
    report = json.loads(pdmer("model-info", "--preset", "paper", "--json").stdout)
    params = report["trainable_parameters"]
    assert abs(params["total"] - 29.7e6) / 29.7e6 < 0.03
    assert set(params) == {"adapter", "fusion", "encoder", "predictor", "total"}
    assert report["config"]["hidden_dim"] == 1024


def test_model_info_table():
    assert "total" in pdmer("model-info", "--preset", "small").stdout


def test_demo_prints_two_values_per_second():
    result = pdmer("demo", "--seconds", "3")
    rows = [line.split("\t") for line in result.stdout.splitlines() if line and not line.startswith(("#", "time"))]
    assert [row[0] for row in rows] == ["0.0", "0.5", "1.0", "1.5", "2.0", "2.5"]
    assert all(-10 < float(value) < 10 for row in rows for value in row[1:])
    assert "the embedded default model" in result.stdout  # the demo says whose numbers these are


def test_demo_reads_a_real_clip():
    from conftest import shared_path

    clip = shared_path("data", "deam", "emomusic_2013_subset", "clips_45s_mp3", "2.mp3")
    lines = pdmer("demo", "--audio", str(clip), "--seconds", "2").stdout.splitlines()
    assert len([line for line in lines if line[:1].isdigit()]) == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (("demo", "--audio", "/no/such/file.wav"), "does not exist"),
        (("demo", "--imagebind", "/no/such/imagebind_huge.pth", "--seconds", "1"), "imagebind_huge.pth"),
        (("demo", "--authors-checkpoint", "/no/such/epoch_1.pt", "--seconds", "1"), "does not exist"),
        (("demo", "--checkpoint", "/no/such/model.safetensors", "--seconds", "1"), "does not exist"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(args, message):
    result = pdmer(*args, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_undecodable_audio_is_named(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    result = pdmer("demo", "--audio", str(bad), check=False)
    assert result.returncode == 2 and "cannot decode" in result.stderr


# Each command's inputs are bad too (junk audio, missing checkpoints and data): the output's error can only come
# first if the output is checked before any of them is read.
UNWRITABLE = [
    (("predict", "{junk}", "--csv", "/proc/x.csv"), "--csv"),
    (("predict", "{junk}", "--csv", "{blocker}/x.csv"), "--csv"),
    (("predict", "{junk}", "--plot", "{blocker}/plots/x.png"), "--plot"),
    (("predict", "{junk}", "{junk}", "--out-dir", "{blocker}/curves"), "--out-dir"),
    (("eval", "{tmp}/none.safetensors", "--data", "{tmp}/none", "--json", "/proc/e.json"), "--json"),
    (("eval", "{tmp}/none.safetensors", "--data", "{tmp}/none", "--markdown", "{blocker}/t.md"), "--markdown"),
    (("export", "{tmp}/none.safetensors", "-o", "/proc/x.onnx"), "--output"),
    (("embed", "{junk}", "--output", "{blocker}/v.npy"), "--output"),
    (("convert-musicnn", "--wheel", "{tmp}/none.whl", "--output", "/proc/m.safetensors"), "--output"),
    (("synth", "{blocker}/bench"), "OUT"),
    (("train", "--out", "{blocker}/run"), "--out"),
    (("profile", "export", "nobody", "-o", "{blocker}/p"), "--output"),
]


@pytest.mark.parametrize("args, option", UNWRITABLE, ids=[" ".join(a[:1] + (o,)) for a, o in UNWRITABLE])
def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, args, option):
    junk, blocker = tmp_path / "junk.wav", tmp_path / "a-file"
    junk.write_text("this is not audio")
    blocker.write_text("a file where a folder would have to be")
    args = [arg.format(junk=junk, blocker=blocker, tmp=tmp_path) for arg in args]
    path = args[args.index(option) + 1] if option in args else args[-1]
    before = sorted(tmp_path.rglob("*"))
    exe = shutil.which("pdmer", path=str(BIN))
    result = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "PDMER_HOME": str(tmp_path / "home")})
    assert result.returncode == 2, result.stderr
    fix = "cannot create files in /proc" if path.startswith("/proc") else f"{blocker} is a file, not a folder"
    assert result.stderr.splitlines() == [result.stderr.strip()]  # one line, no traceback
    assert result.stderr.startswith(f"pdmer: error: {option} {path}: ") and fix in result.stderr
    assert sorted(tmp_path.rglob("*")) == before and not Path(path).exists()  # nothing written, nothing left


def test_quickstart_example_runs(tmp_path):
    import soundfile

    from pdmer.demo import generated_clip

    clip = tmp_path / "clip.wav"
    soundfile.write(clip, generated_clip(4.0), 44100)
    example = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"
    result = subprocess.run([sys.executable, str(example), str(clip)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert sum(" s  valence " in line for line in result.stdout.splitlines()) == 8
    assert "valence_ccc" in result.stdout


def test_demo_runs_a_saved_pdmer_checkpoint(tmp_path):
    import torch

    from pdmer.model import DSAML, ModelConfig
    from pdmer.model.checkpoint import save_model

    torch.manual_seed(1)
    path = save_model(DSAML(ModelConfig.preset("small")), tmp_path / "small.safetensors")  # 200-d: musicnn
    result = pdmer("demo", "--checkpoint", str(path), "--seconds", "1")
    assert f"weights from {path}" in result.stdout
    assert len([line for line in result.stdout.splitlines() if line[:1].isdigit()]) == 2


def test_cli_choice_lists_match_the_library():
    from pdmer import cli
    from pdmer.model.config import PRESETS
    from pdmer.model.adapt import PARAMS
    from pdmer.model.encoders import ENCODER_NAMES, FEATURE_DIMS

    assert set(cli.PRESET_NAMES) == set(PRESETS)
    assert cli.ENCODER_NAMES == ENCODER_NAMES
    assert set(cli.MUSICNN_FEATURES) == set(FEATURE_DIMS)
    assert cli.ADAPT_PARAMS == PARAMS
    from pdmer.data.curves import SCALES
    from pdmer.data.load import FORMATS

    assert cli.DATASET_FORMATS == FORMATS and cli.SCALES == tuple(SCALES)
    from pdmer.model.adapt import PARAMS
    from pdmer.train.config import PARAMS as TRAIN_PARAMS

    assert TRAIN_PARAMS == PARAMS


def test_embed_prints_the_musicnn_vector(tmp_path):
    import soundfile

    from pdmer.demo import generated_clip

    clip = tmp_path / "clip.flac"
    soundfile.write(clip, generated_clip(8.0), 44100)
    report = json.loads(pdmer("embed", str(clip), "--window", "1", "7").stdout)
    assert (report["encoder"], report["dim"], len(report["vector"])) == ("musicnn", 200, 200)
    tags = json.loads(pdmer("embed", str(clip), "--features", "taggram").stdout)["vector"]
    assert len(tags) == 50 and all(0 <= p <= 1 for p in tags)
    out = tmp_path / "vec.npy"
    assert "200-d" in pdmer("embed", str(clip), "--output", str(out)).stdout
    import numpy as np

    assert np.load(out).shape == (200,)


@pytest.mark.parametrize(
    "args, message",
    [
        (("--window", "5", "99"), "window="),
        (("--encoder", "imagebind"), "imagebind_huge.pth"),
        (("--encoder", "imagebind", "--imagebind", "/no/such.pth"), "not found"),
    ],
)
def test_embed_errors(tmp_path, args, message):
    import soundfile

    clip = tmp_path / "clip.wav"
    soundfile.write(clip, np.zeros(16000 * 4, dtype="float32"), 16000)
    result = pdmer("embed", str(clip), *args, check=False)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_convert_musicnn_command(musicnn_wheel, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "m.safetensors"
    assert "wrote" in pdmer("convert-musicnn", "--wheel", str(musicnn_wheel), "--output", str(out)).stdout
    from pdmer.model.musicnn import WEIGHTS

    committed = load_file(WEIGHTS)
    assert all(load_file(out)[k].equal(v) for k, v in committed.items())
    bad = pdmer("convert-musicnn", "--wheel", str(tmp_path / "none.whl"), "--output", str(out), check=False)
    assert bad.returncode == 2 and "pip download" in bad.stderr


def test_demo_refuses_a_model_whose_global_size_does_not_fit(tmp_path):
    from pdmer.model import DSAML, ModelConfig
    from pdmer.model.checkpoint import save_model

    path = save_model(DSAML(ModelConfig.preset("small", global_dim=1024)), tmp_path / "needs_imagebind.safetensors")
    result = pdmer("demo", "--checkpoint", str(path), "--seconds", "1", check=False)
    assert result.returncode == 2 and "needs --imagebind" in result.stderr
