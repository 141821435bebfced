"""Exact parity with the authors' DSAML (Littleor/Personalized-DMER models/PDMER.py) on ../shared/fixtures/dsaml."""

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import shared_path
from pdmer.errors import CheckpointError
from pdmer.model.authors import ALIASES, build_from_authors, load_authors_checkpoint
from pdmer.model.loss import dsaml_loss

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def fixture():
    folder = shared_path("fixtures", "dsaml")
    weights = {k: v.float() if v.is_floating_point() else v for k, v in load_file(folder / "dsaml_tiny_weights.safetensors").items()}
    io = {k: v.float() for k, v in load_file(folder / "dsaml_tiny_io.safetensors").items()}
    recipe = json.loads((folder / "dsaml_tiny.json").read_text())
    return weights, io, recipe


def run(model, io):
    captured = {}
    model.adapter.register_forward_hook(lambda m, i, o: captured.__setitem__("adapter", o))
    model.fusion.register_forward_hook(lambda m, i, o: captured.__setitem__("fusion", o))
    model.predictor.register_forward_hook(lambda m, i, o: captured.__setitem__("predictor_in", i[0]))
    with torch.no_grad():
        out = model(io["input.log_mel_spectrogram"], io["input.global_imagebind_audio_embedding"][:, 0], return_layer_maps=True)
    return out, captured


def authors_model(weights, recipe):
    cfg = recipe["model"]["config"]
    run_config = {"local_context_length": cfg["local_context_length"], "global_context_length": cfg["global_context_length"]}
    return build_from_authors(weights, run_config)


def test_inferred_config_matches_the_fixture_recipe(fixture):
    weights, _, recipe = fixture
    config = authors_model(weights, recipe).config
    cfg = recipe["model"]["config"]
    assert (config.hidden_dim, config.num_layers, config.num_heads) == (64, cfg["num_hidden_layers"], cfg["num_attention_heads"])
    assert (config.local_band, config.global_band, config.ffn_dim, config.max_relative_distance) == (5, 30, 2048, 512)
    assert (config.attn_loss_local_target, config.attn_loss_global_target) == (0.9, 0.1)


def test_outputs_attention_and_intermediates_match(fixture):
    weights, io, recipe = fixture
    out, captured = run(authors_model(weights, recipe), io)
    # Ours is (valence, arousal); theirs returns (arousal, valence).
    torch.testing.assert_close(out.va[..., 0], io["output.valence"], atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(out.va[..., 1], io["output.arousal"], atol=TOLERANCE, rtol=0)
    maps = torch.stack(out.layer_maps_local + out.layer_maps_global, dim=1)  # their [B, 2L, H, T, T] order
    torch.testing.assert_close(maps, io["output.attention_maps"], atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(captured["adapter"], io["intermediate.spectrogram_feature"], atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(captured["fusion"], io["intermediate.fused_hidden"], atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(captured["predictor_in"], io["intermediate.multi_scale_hidden"], atol=TOLERANCE, rtol=0)


def test_loss_matches(fixture):
    weights, io, recipe = fixture
    model = authors_model(weights, recipe)
    out, _ = run(model, io)
    target = torch.stack([io["target.valence"], io["target.arousal"]], dim=-1)
    loss = dsaml_loss(out, target, model.config)
    assert loss.total.item() == pytest.approx(io["loss"].item(), abs=TOLERANCE)
    expected = recipe["loss"]["scores"]
    for theirs, ours in (("arousal_CCC", "arousal_ccc"), ("valence_PCC", "valence_pcc"), ("valence_RMSE", "valence_rmse")):
        assert loss.scores[ours].item() == pytest.approx(expected[theirs], abs=TOLERANCE)
    assert loss.attention.item() == pytest.approx(recipe["loss"]["attention_map_loss_derived"], abs=TOLERANCE)


def test_a_saved_authors_checkpoint_streams_through_the_loader(fixture, tmp_path):
    """Their save_model output: the aliases of the shared encoder present, maybe a `module.` prefix, config.json."""
    weights, io, recipe = fixture
    full = dict(weights)
    for key, value in weights.items():
        if key.startswith("multi_scale_attention.encoder."):
            for alias in ALIASES:
                full[alias + key[len("multi_scale_attention.encoder."):]] = value
    run_dir = tmp_path / "run"
    (run_dir / "models").mkdir(parents=True)
    torch.save({"module." + k: v for k, v in full.items()}, run_dir / "models" / "epoch_9.pt")
    (run_dir / "config.json").write_text(json.dumps({"local_context_length": 5, "global_context_length": 30, "dropout_rate": 0.1}))
    out, _ = run(load_authors_checkpoint(run_dir / "models" / "epoch_9.pt"), io)
    torch.testing.assert_close(out.va[..., 1], io["output.arousal"], atol=TOLERANCE, rtol=0)


def test_bad_authors_checkpoints_are_named(fixture, tmp_path):
    weights, _, _ = fixture
    with pytest.raises(CheckpointError, match="does not exist"):
        load_authors_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_authors_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="lacks"):
        build_from_authors({k: v for k, v in weights.items() if "fusion_project" not in k})
    with pytest.raises(CheckpointError, match="unexpected key"):
        build_from_authors({**weights, "some_other_model.weight": torch.zeros(1)})
