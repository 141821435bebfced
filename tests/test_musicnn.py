"""Our MSD_musicnn against the original: converted weights bit-exact, golden outputs of TensorFlow musicnn.

Golden values: tests/fixtures/musicnn (made once with tensorflow-cpu + the wheel's own code; README there).
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from safetensors.torch import load_file

from pdmer.convert.musicnn import LAYERS, VARIABLES, convert_wheel
from pdmer.convert.tf_bundle import TensorBundle, masked_crc32c
from pdmer.errors import CheckpointError, InputError
from pdmer.model.encoders import load_musicnn
from pdmer.model.musicnn import MSD_TAGS, WEIGHTS as ASSET, Musicnn, MusicnnLogMel

FIXTURES = Path(__file__).parent / "fixtures" / "musicnn"


@pytest.fixture(scope="module")
def golden():
    return load_file(FIXTURES / "golden.safetensors")


@pytest.fixture(scope="module")
def model():
    return load_musicnn()


def to_tf_layout(ours: str, tensor: torch.Tensor) -> np.ndarray:
    """Inverse of the converter's layout change, to hash our tensors as TF stored them."""
    if tensor.ndim == 3:  # mid-end Conv1d (out, in, 7) -> TF (7, in, 1, out)
        return tensor.permute(2, 1, 0)[:, :, None, :].numpy()
    if tensor.ndim == 4:  # Conv2d (out, in, kh, kw) -> TF (kh, kw, in, out)
        return tensor.permute(2, 3, 1, 0).numpy()
    if tensor.ndim == 2:
        return tensor.T.numpy()
    return tensor.numpy()


def test_committed_weights_equal_the_checkpoint_bit_for_bit():
    """Hashes of every model variable as TensorFlow itself read it (checkpoint_tensors.json) vs our asset."""
    record = json.loads((FIXTURES / "checkpoint_tensors.json").read_text())
    expected = {v["name"]: v for v in record["variables"] if v["kind"] == "model"}
    ours = load_file(ASSET)
    checked = 0
    for tf_name, entry in expected.items():
        layer, _, variable = tf_name.partition("/")
        key = f"{LAYERS[layer]}.{VARIABLES[variable]}"
        array = np.ascontiguousarray(to_tf_layout(key, ours[key]))
        assert list(array.shape) == entry["shape"], key
        assert hashlib.sha256(array.astype("<f4").tobytes()).hexdigest() == entry["sha256"], key
        checked += array.size
    assert checked == record["model_numel_total"] == 792079
    assert sum(p.numel() for p in Musicnn().parameters()) == record["model_numel_trainable"]


def test_converter_reads_the_wheel_exactly(musicnn_wheel, tmp_path):
    output = convert_wheel(musicnn_wheel, tmp_path / "assets" / "m.safetensors")
    converted, committed = load_file(output), load_file(ASSET)
    assert converted.keys() == committed.keys()
    for key in committed:
        assert torch.equal(converted[key], committed[key]), key
    assert (tmp_path / "assets" / "LICENSE-musicnn.md").read_text().startswith(
        (FIXTURES / "LICENSE-musicnn.md").read_text()[:40]
    )


def test_reader_checks_crc_and_names_damage(musicnn_wheel, tmp_path):
    import zipfile

    with zipfile.ZipFile(musicnn_wheel) as archive:
        for name in ("musicnn/MSD_musicnn/.index", "musicnn/MSD_musicnn/.data-00000-of-00001"):
            archive.extract(name, tmp_path)
    prefix = f"{tmp_path}/musicnn/MSD_musicnn/"
    bundle = TensorBundle(prefix)
    assert len(bundle.names()) == 150  # 64 model variables + Adam slots + beta powers
    entry = bundle.entries["dense/kernel"]
    data = Path(prefix + ".data-00000-of-00001")
    raw = bytearray(data.read_bytes())
    assert masked_crc32c(bytes(raw[entry.offset : entry.offset + entry.size])) == entry.masked_crc32c
    raw[entry.offset + 10] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="CRC-32C"):
        TensorBundle(prefix).tensor("dense/kernel")


def test_bad_wheels_are_named(tmp_path):
    with pytest.raises(InputError, match="pip download --no-deps musicnn==0.1.0"):
        convert_wheel(tmp_path / "missing.whl", tmp_path / "out.safetensors")
    (tmp_path / "junk.whl").write_bytes(b"junk")
    with pytest.raises(InputError, match="not a wheel"):
        convert_wheel(tmp_path / "junk.whl", tmp_path / "out.safetensors")
    with pytest.raises(CheckpointError, match="no TensorFlow checkpoint index"):
        TensorBundle(tmp_path / "nothing")
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("case", ["main", "loud"])
def test_network_matches_tensorflow_golden(model, golden, case):
    with torch.no_grad():
        out = model(golden[f"{case}.log_mel"])
    torch.testing.assert_close(out["taggram"], golden[f"{case}.taggram"], atol=2e-4, rtol=0)
    torch.testing.assert_close(out["logits"], golden[f"{case}.logits"], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(out["penultimate"], golden[f"{case}.penultimate"], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(out["mean_pool"], golden[f"{case}.mean_pool"], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(out["max_pool"], golden[f"{case}.max_pool"], atol=1e-4, rtol=1e-5)
    if case == "main":
        # deeper residual sums: TF itself differs by ~2e-5 between batched and single patches here
        for name in ("cnn1", "cnn2", "cnn3"):  # golden (P, T, 64), ours (P, 64, T)
            torch.testing.assert_close(out[name].transpose(1, 2), golden[f"main.{name}"], atol=5e-4, rtol=1e-5)


def test_fast_inference_path_equals_the_literal_graph(model, golden):
    """Eval mode reduces over frequency before ReLU/BN; the literal order must give the same front end."""
    x = model.front.input_bn(golden["main.log_mel"][:, None])
    for branch in (*model.front.timbral, *model.front.temporal):
        with torch.no_grad():
            literal = torch.nn.functional.pad(x, (0, 0, *branch.time_pad))
            literal = branch.bn(torch.relu(branch.conv(literal))).amax(dim=3)
            torch.testing.assert_close(branch(x), literal, atol=1e-5, rtol=1e-5)


def wav_input() -> np.ndarray:
    samples, rate = soundfile.read(FIXTURES / "input_9p5s_16k.wav", dtype="int16")
    assert rate == 16000
    return samples.astype(np.float32) / 32768


def test_log_mel_matches_librosa(golden):
    """Our torchaudio log-mel vs librosa's (Slaney mel, reflect padding) as computed for the golden values."""
    mel = MusicnnLogMel()(wav_input(), 16000)
    patches = mel[: 3 * 187].reshape(3, 187, 96)
    torch.testing.assert_close(patches, golden["main.log_mel"], atol=1e-4, rtol=0)


def test_loud_input_stays_finite_where_upstream_overflowed(golden):
    """The float16 bug made 7405 loud bins inf upstream; in float32 all are finite and match."""
    loud = np.clip(wav_input() * 20, -1, 1)
    mel = MusicnnLogMel()(loud, 16000)
    assert torch.isfinite(mel).all()
    torch.testing.assert_close(mel[: 3 * 187].reshape(3, 187, 96), golden["loud.log_mel"], atol=1e-4, rtol=0)


def test_end_to_end_tags_from_the_wav(model, golden):
    mel = MusicnnLogMel()(wav_input(), 16000)[: 3 * 187].reshape(3, 187, 96)
    with torch.no_grad():
        taggram = model(mel)["taggram"]
    torch.testing.assert_close(taggram, golden["main.taggram"], atol=2e-4, rtol=0)
    assert json.loads((FIXTURES / "tags.json").read_text()) == list(MSD_TAGS)


@pytest.mark.parametrize("shape", [(187, 96), (2, 187, 95), (2, 0, 96)])
def test_wrong_patch_shapes_are_named(model, shape):
    with pytest.raises(InputError, match=r"log-mel patches \[N, frames, 96\]"):
        model(torch.zeros(shape))
