"""pdmer's own checkpoints: the config travels with the weights; writes are atomic; bad files are named."""

import pytest
import torch
from safetensors.torch import save_file

from pdmer.errors import CheckpointError
from pdmer.model import DSAML, ModelConfig
from pdmer.model.checkpoint import load_model, save_model

TINY = dict(global_dim=24, hidden_dim=32, num_heads=4, ffn_dim=64, num_layers=2, lstm_hidden=8, head_hidden=8)


def test_round_trip_rebuilds_the_same_model_from_the_file_alone(tmp_path):
    torch.manual_seed(0)
    model = DSAML(ModelConfig.preset("small", **TINY, local_band=3)).eval()
    path = save_model(model, tmp_path / "models" / "m.safetensors", metadata={"note": "test"})
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.config.local_band == 3
    mel, global_feat = torch.randn(1, 9, 51, 128), torch.randn(1, 24)
    with torch.no_grad():
        assert torch.equal(model(mel, global_feat).va, loaded(mel, global_feat).va)
    assert [p.name for p in path.parent.iterdir()] == ["m.safetensors"]  # no temporary file left behind


def test_a_failed_save_keeps_the_previous_file(tmp_path):
    model = DSAML(ModelConfig.preset("small", **TINY))
    path = save_model(model, tmp_path / "m.safetensors")
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_model(model, path, metadata={"bad": 1})  # metadata values must be strings: the write fails
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nothing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_model(tmp_path / "junk.safetensors")
    save_file({"x": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="not a pdmer model checkpoint"):
        load_model(tmp_path / "other.safetensors")
