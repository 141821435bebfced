"""The DAMFF and CRNN baselines: DSAML's interface (shapes, local features, functional_call), losses, configs."""

import pytest
import torch
from torch.func import functional_call

from pdmer.errors import InputError
from pdmer.metrics import ccc, rmse
from pdmer.model.crnn import CRNN, CRNNConfig
from pdmer.model.damff import DAMFF, DAMFFConfig
from pdmer.model.dsaml import DSAMLOutput

# Small widths keep the whole file fast on 2 CPU cores; the architecture is the default one.
TINY = {
    DAMFF: (DAMFFConfig, {"channels1": 4, "channels2": 4, "channels3": 8, "feature_dim": 16, "lstm_hidden": 8}),
    CRNN: (CRNNConfig, {"conv_channels": 4, "freq_pool": 16, "rnn_hidden": 8}),
}
MODELS = [DAMFF, CRNN]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from a thread pool, and lose a lot when another process holds a core."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_model(kind, **overrides):
    config_cls, sizes = TINY[kind]
    torch.manual_seed(0)
    return kind(config_cls.preset("small", **{**sizes, **overrides})).eval()


def inputs(batch=2, steps=7, global_dim=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, steps, 51, 128, generator=g), torch.randn(batch, global_dim, generator=g)


@pytest.mark.parametrize("kind", MODELS)
def test_output_shapes(kind):
    model = tiny_model(kind)
    mel, global_feat = inputs()
    with torch.no_grad():
        out = model(mel, global_feat)
        per_step_global = model(mel, global_feat[:, None].expand(2, 7, 200))
    assert isinstance(out, DSAMLOutput)
    assert out.va.shape == (2, 7, 2)
    assert out.attn_local is None and out.attn_global is None
    assert torch.equal(out.va, per_step_global.va)  # the global feature is ignored
    assert model.local_features(mel).shape == (2, 7, model.adapter.out_dim)


@pytest.mark.parametrize("kind", MODELS)
def test_local_features_use_exactly_the_front_end_parameters(kind):
    """``FRONT_END`` names the submodules local_features runs (head-only adaptation keeps them fixed)."""
    model = tiny_model(kind)
    mel, _ = inputs(steps=2)
    with torch.no_grad():
        before = model.local_features(mel)
        for name, p in model.named_parameters():
            if name.split(".")[0] not in model.FRONT_END:
                p.add_(1.0)
        assert torch.equal(model.local_features(mel), before)
        for name, p in model.named_parameters():
            if name.split(".")[0] in model.FRONT_END:
                p.add_(0.1)
        assert not torch.allclose(model.local_features(mel), before)


@pytest.mark.parametrize("kind", MODELS)
def test_precomputed_local_features_give_the_same_output(kind):
    model = tiny_model(kind)
    mel, global_feat = inputs()
    with torch.no_grad():
        direct = model(mel, global_feat).va
        via_local = model(None, global_feat, local=model.local_features(mel)).va
    torch.testing.assert_close(via_local, direct)


@pytest.mark.parametrize("kind", MODELS)
def test_each_slice_feature_depends_on_that_slice_only(kind):
    model = tiny_model(kind)
    mel, _ = inputs()
    changed = mel.clone()
    changed[:, 3] = torch.randn(2, 51, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before, after = model.local_features(mel), model.local_features(changed)
    moved = (before - after).abs().amax(dim=(0, 2))  # per step
    assert moved[3] > 1e-4
    assert torch.equal(moved[torch.arange(7) != 3], torch.zeros(6))


@pytest.mark.parametrize("kind", MODELS)
def test_loss_is_differentiable_and_training_lowers_it(kind):
    model = tiny_model(kind).train()
    mel, global_feat = inputs(batch=2, steps=6)
    t = torch.linspace(0, 1, 6)
    target = torch.stack([torch.stack([0.3 * t, 0.6 - 0.4 * t], -1), torch.stack([0.5 - 0.2 * t, 0.2 + 0.5 * t], -1)])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        parts = model.loss(model(mel, global_feat), target)
        assert parts.total.ndim == 0 and torch.isfinite(parts.total)
        assert parts.attention.item() == 0.0 and 0 < len(parts.scores) == 6
        optimizer.zero_grad()
        parts.total.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        optimizer.step()
        losses.append(parts.total.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("kind", MODELS)
def test_functional_call_with_copied_weights_matches_the_module(kind):
    model = tiny_model(kind)
    mel, global_feat = inputs()
    weights = {name: p.detach().clone().requires_grad_(True) for name, p in model.named_parameters()}
    weights.update({name: b.detach().clone() for name, b in model.named_buffers()})
    assert any("running_mean" in name for name in weights)
    with torch.no_grad():
        expected = model(mel, global_feat).va
    out = functional_call(model, weights, (mel, global_feat), {}, strict=True)
    torch.testing.assert_close(out.va, expected)
    trainable = [name for name, p in model.named_parameters()]
    grads = torch.autograd.grad(out.va.square().sum(), [weights[name] for name in trainable])
    assert all(torch.isfinite(g).all() for g in grads)


def test_damff_loss_is_one_minus_arousal_ccc_plus_valence_rmse():
    model = tiny_model(DAMFF)
    g = torch.Generator().manual_seed(3)
    pred = torch.rand(3, 5, 2, generator=g)
    target = torch.rand(3, 5, 2, generator=g)
    parts = model.loss(DSAMLOutput(va=pred, attn_local=None, attn_global=None), target)
    by_hand = (1 - ccc(pred[..., 1], target[..., 1]).mean()) + rmse(pred[..., 0], target[..., 0]).mean()
    torch.testing.assert_close(parts.total, by_hand)
    agreement = [v if not k.endswith("rmse") else 1 - v for k, v in parts.scores.items()]
    torch.testing.assert_close(parts.score, torch.stack(agreement).mean())


def test_crnn_loss_is_the_summed_mse_of_both_dimensions():
    model = tiny_model(CRNN)
    g = torch.Generator().manual_seed(4)
    pred, target = torch.rand(3, 5, 2, generator=g), torch.rand(3, 5, 2, generator=g)
    parts = model.loss(DSAMLOutput(va=pred, attn_local=None, attn_global=None), target)
    squared = (pred - target) ** 2
    torch.testing.assert_close(parts.total, squared[..., 0].mean() + squared[..., 1].mean())


@pytest.mark.parametrize("config_cls", [DAMFFConfig, CRNNConfig])
def test_config_round_trip_presets_and_unknown_keys(config_cls):
    for name in ("paper", "small"):
        cfg = config_cls.preset(name, dropout=0.1)
        assert cfg.name == name and cfg.dropout == 0.1
        assert config_cls.from_dict(cfg.to_dict()) == cfg
    assert config_cls.preset("paper").global_dim == 1024 and config_cls.preset("small").global_dim == 200
    with pytest.raises(InputError, match="bogus"):
        config_cls.from_dict({**config_cls().to_dict(), "bogus": 1})
    with pytest.raises(InputError, match="paper.*small|small.*paper"):
        config_cls.preset("huge")


@pytest.mark.parametrize("kind", MODELS)
def test_bad_inputs_name_the_expected_shape(kind):
    model = tiny_model(kind)
    mel, global_feat = inputs()
    with pytest.raises(InputError, match=r"51, 128"):
        model(mel[:, :, :50], global_feat)
    with pytest.raises(InputError, match=r"51, 128"):
        model(mel[0], global_feat)
    with pytest.raises(InputError, match=r"51, 128"):
        model.local_features(mel[..., :64])
    with pytest.raises(InputError, match="batch=2"):
        model(mel, global_feat[:1])
    with pytest.raises(InputError, match="local must be"):
        model(None, global_feat, local=torch.zeros(2, 7, model.adapter.out_dim + 1))
    with pytest.raises(InputError, match=r"\[songs, steps, 2\]|same non-empty shape"):
        model.loss(model(mel, global_feat), torch.zeros(2, 7))


def test_parameter_counts_stay_modest():
    for cfg in (DAMFFConfig.preset("paper"), DAMFFConfig.preset("small")):
        assert sum(p.numel() for p in DAMFF(cfg).parameters()) < 1_000_000
    for cfg in (CRNNConfig.preset("paper"), CRNNConfig.preset("small")):
        assert sum(p.numel() for p in CRNN(cfg).parameters()) < 1_000_000
