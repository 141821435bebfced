"""DSAML's structure: shapes, band masks, the shared encoder, the diagonal loss, presets, bad input."""

import dataclasses

import pytest
import torch

from pdmer.errors import InputError
from pdmer.model import DSAML, ModelConfig
from pdmer.model.dsaml import parameter_report
from pdmer.model.loss import diagonal_attention_loss, dsaml_loss
from pdmer.model.transformer import band_mask

TINY = dict(global_dim=24, hidden_dim=32, num_heads=4, ffn_dim=64, num_layers=2, lstm_hidden=8, head_hidden=8)


def tiny_model(**overrides) -> DSAML:
    torch.manual_seed(0)
    return DSAML(ModelConfig.preset("paper", **{**TINY, **overrides})).eval()


def inputs(batch=2, steps=40, global_dim=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, steps, 51, 128, generator=g), torch.randn(batch, global_dim, generator=g)


def test_output_shapes():
    mel, global_feat = inputs()
    with torch.no_grad():
        out = tiny_model()(mel, global_feat)
    assert out.va.shape == (2, 40, 2)
    assert out.attn_local.shape == out.attn_global.shape == (2, 40, 40)
    assert torch.allclose(out.attn_local.sum(-1), torch.ones(2, 40))


@pytest.mark.parametrize("steps", [1, 7, 60, 90])
def test_attention_is_exactly_zero_outside_each_band(steps):
    model = tiny_model()
    mel, global_feat = inputs(steps=steps)
    with torch.no_grad():
        out = model(mel, global_feat, return_layer_maps=True)
    for maps, band in ((out.layer_maps_local, 5), (out.layer_maps_global, 30)):
        outside = ~band_mask(steps, band)
        for layer_map in maps:  # (B, H, T, T)
            if outside.any():
                assert layer_map[..., outside].abs().max().item() == 0.0
            assert (layer_map[..., ~outside] > 0).all()  # softmax never zeroes an allowed position


def test_band_mask_matches_eq1():
    mask = band_mask(9, 2)
    for i in range(9):
        for j in range(9):
            assert mask[i, j].item() == (abs(i - j) <= 2)


def test_local_and_global_passes_share_one_encoder():
    model = tiny_model()
    encoders = [name for name, module in model.named_modules() if type(module).__name__ == "SharedEncoder"]
    assert encoders == ["encoder"]
    # With T <= n_l + 1 both bands let everything through, so shared parameters must give identical maps.
    mel, global_feat = inputs(steps=6)
    with torch.no_grad():
        out = model(mel, global_feat)
    assert torch.equal(out.attn_local, out.attn_global)
    # And a change to the one encoder moves both passes.
    mel, global_feat = inputs(steps=40)
    with torch.no_grad():
        before = model(mel, global_feat)
        model.encoder.layers[-1].attention.query.weight.mul_(3.0)
        after = model(mel, global_feat)
    assert not torch.allclose(before.attn_local, after.attn_local)
    assert not torch.allclose(before.attn_global, after.attn_global)


def eq3_by_hand(local, global_, alpha, beta):
    n = len(local)
    return sum((local[i][i] - alpha) ** 2 + (global_[i][i] - beta) ** 2 for i in range(n)) / n


@pytest.mark.parametrize(
    "local, global_",
    [
        (torch.eye(4), torch.full((4, 4), 0.25)),
        (torch.full((3, 3), 1 / 3), torch.eye(3)),
        (torch.tensor([[0.6, 0.4, 0.0], [0.2, 0.5, 0.3], [0.0, 0.1, 0.9]]), torch.eye(3) * 0.05 + 0.95 / 3),
    ],
)
def test_diagonal_loss_is_eq3_on_hand_made_maps(local, global_):
    loss = diagonal_attention_loss(local[None], global_[None], 0.5, 0.05)
    assert loss.item() == pytest.approx(eq3_by_hand(local.tolist(), global_.tolist(), 0.5, 0.05), abs=1e-7)


def test_identity_maps_give_known_loss():
    loss = diagonal_attention_loss(torch.eye(4)[None], torch.eye(4)[None], 0.5, 0.05)
    assert loss.item() == pytest.approx(0.25 + 0.95**2)


def test_diagonal_loss_reductions_differ_only_across_the_batch():
    maps = torch.softmax(torch.randn(3, 5, 5, generator=torch.Generator().manual_seed(1)), -1)
    per_sequence = diagonal_attention_loss(maps, maps, 0.9, 0.1, reduction="per_sequence")
    by_hand = sum(eq3_by_hand(m.tolist(), m.tolist(), 0.9, 0.1) for m in maps) / 3
    assert per_sequence.item() == pytest.approx(by_hand, abs=1e-6)
    batch_map = diagonal_attention_loss(maps, maps, 0.9, 0.1, reduction="batch_map")
    assert batch_map.item() == pytest.approx(eq3_by_hand(maps.mean(0).tolist(), maps.mean(0).tolist(), 0.9, 0.1), abs=1e-6)


def test_loss_backpropagates_into_every_trainable_part():
    model = tiny_model().train()
    mel, global_feat = inputs(steps=12)
    out = model(mel, global_feat)
    loss = dsaml_loss(out, torch.rand(2, 12, 2) * 2 - 1, model.config)
    loss.total.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_paper_preset_has_the_authors_parameter_count():
    with torch.device("meta"):
        report = parameter_report(DSAML(ModelConfig.preset("paper")))
    assert report["total"] == pytest.approx(29.7e6, rel=0.03)
    assert report["total"] == sum(v for k, v in report.items() if k != "total")


def test_presets_differ_where_documented():
    paper, authors, small = (ModelConfig.preset(n) for n in ("paper", "authors", "small"))
    assert (paper.attn_loss_local_target, paper.attn_loss_global_target) == (0.5, 0.05)
    assert (authors.attn_loss_local_target, authors.attn_loss_global_target) == (0.9, 0.1)
    assert (paper.num_layers, paper.local_band, paper.global_band, paper.hidden_dim) == (3, 5, 30, 1024)
    assert small.hidden_dim == 256
    assert ModelConfig.from_dict(small.to_dict()) == small


@pytest.mark.parametrize(
    "ablation", [dict(use_local_attention=False), dict(use_global_attention=False), dict(fusion_linear=False)]
)
def test_ablations_run(ablation):
    mel, global_feat = inputs(steps=10)
    with torch.no_grad():
        out = tiny_model(**ablation)(mel, global_feat)
    assert out.va.shape == (2, 10, 2)
    assert (out.attn_local is None) == (ablation.get("use_local_attention") is False)


def test_per_step_global_feature_is_accepted():
    mel, global_feat = inputs(steps=10)
    with torch.no_grad():
        broadcast = tiny_model()(mel, global_feat).va
        per_step = tiny_model()(mel, global_feat[:, None].expand(-1, 10, -1)).va
    assert torch.allclose(broadcast, per_step)


@pytest.mark.parametrize(
    "mel_shape, global_shape, message",
    [
        ((2, 10, 50, 128), (2, 24), "mel must be"),
        ((2, 10, 51), (2, 24), "mel must be"),
        ((2, 0, 51, 128), (2, 24), "mel must be"),
        ((2, 10, 51, 128), (2, 23), "global_feat must be"),
        ((2, 10, 51, 128), (3, 24), "global_feat must be"),
        ((2, 10, 51, 128), (2, 9, 24), "9 steps"),
    ],
)
def test_wrong_shapes_are_named(mel_shape, global_shape, message):
    with pytest.raises(InputError, match=message):
        tiny_model()(torch.zeros(mel_shape), torch.zeros(global_shape))


def test_bad_config_values_are_named():
    with pytest.raises(InputError, match="multiple of num_heads"):
        ModelConfig(hidden_dim=30, num_heads=4)
    with pytest.raises(InputError, match="unknown preset"):
        ModelConfig.preset("huge")
    with pytest.raises(InputError, match="unknown model config keys"):
        ModelConfig.from_dict({**ModelConfig().to_dict(), "colour": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().hidden_dim = 3


def test_slice_statistics_hear_loudness_and_onsets():
    """On real log-mels (LogMelSlicer): noise 12 dB louder reads a higher level; clicks every 50 ms read a higher
    onset strength and swing than a steady tone; the adapter appends them (``slice_stats``)."""
    from pdmer.model.adapter import slice_statistics
    from pdmer.model.preprocess import LogMelSlicer

    rate = 44100
    t = torch.arange(rate // 2) / rate
    tone = 0.1 * torch.sin(2 * torch.pi * 440 * t)
    noise = 0.01 * torch.randn(t.numel(), generator=torch.Generator().manual_seed(0))
    clicks = torch.zeros_like(t)
    clicks[:: rate // 20] = 1.0
    clicks = torch.nn.functional.conv1d(clicks[None, None], torch.hann_window(64)[None, None], padding=32)[0, 0, : t.numel()]
    slicer = LogMelSlicer()
    slices = torch.cat([slicer(x[None], rate)[:1] for x in (noise, 4 * noise, tone, clicks)])
    quiet, loud, steady, busy = slice_statistics(slices)
    assert loud[0] - quiet[0] == pytest.approx(2 * torch.log(torch.tensor(4.0)).item() / 3.4, abs=0.05)  # x16 power
    assert busy[1] > steady[1] + 1.0 and busy[2] > steady[2] + 1.0
    plain, with_stats = tiny_model(), tiny_model(slice_stats=True)
    assert with_stats.adapter.out_dim == plain.adapter.out_dim + 3
    assert torch.equal(with_stats.local_features(slices[None])[0, :, -3:], slice_statistics(slices))
    mel, global_feat = inputs(steps=7)
    assert with_stats(mel, global_feat).va.shape == (2, 7, 2)
    with pytest.raises(InputError, match="slice_stats needs slices of at least 8 mel frames"):
        tiny_model(slice_stats=True, mel_frames=5)


def test_input_dropout_acts_in_training_only():
    model = tiny_model(input_dropout=0.5)
    mel, global_feat = inputs(steps=5)
    with torch.no_grad():
        plain = model(mel, global_feat).va
        assert torch.equal(model(mel, global_feat).va, plain)  # eval: the same numbers every call
        model.train()
        assert not torch.allclose(model(mel, global_feat).va, plain)
    with pytest.raises(InputError, match="input_dropout=1.0 must be in"):
        tiny_model(input_dropout=1.0)


def test_the_trailing_path_adds_a_linear_map_of_the_recent_statistics():
    """``trailing_stats = n``: each step's mean of the slice statistics over itself and the n - 1 steps before it
    (fewer at the start), through a 3 x 2 linear map, added to the output; it needs slice_stats."""
    from pdmer.model.dsaml import trailing_mean

    x = torch.randn(2, 9, 3, generator=torch.Generator().manual_seed(1))
    naive = torch.stack([x[:, max(t - 3, 0) : t + 1].mean(dim=1) for t in range(9)], dim=1)
    assert torch.allclose(trailing_mean(x, 4), naive, atol=1e-6)
    assert torch.allclose(trailing_mean(x[:, :2], 4), naive[:, :2], atol=1e-6)  # shorter than the window
    model = tiny_model(slice_stats=True, trailing_stats=4)
    mel, global_feat = inputs(steps=9)
    local = model.local_features(mel)
    with torch.no_grad():
        with_path = model(None, global_feat, local=local).va
        expected = model.trail(trailing_mean(local[..., -3:], 4))
        model.trail.weight.zero_()
        model.trail.bias.zero_()
        without = model(None, global_feat, local=local).va
    assert torch.allclose(with_path - without, expected, atol=1e-5) and expected.abs().min() > 0
    with pytest.raises(InputError, match="trailing_stats=4 must be >= 0, and > 0 only with slice_stats"):
        tiny_model(trailing_stats=4)
