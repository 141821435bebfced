"""Evaluation: sliding-window prediction, one-shot adaptation, the two tasks, and `pdmer eval` end to end."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pdmer.cli import main
from pdmer.data import Curve, load_plain, write_plain
from pdmer.evaluate import ConstantPredictor, personalized, traditional
from pdmer.evaluate.tasks import SUPPORT_FRAMES
from pdmer.model import DSAML, ModelConfig
from pdmer.model.adapt import AdaptConfig, adapt, run
from pdmer.model.inference import SlidingWindows, predict_song, window_rows


def tiny_model(seed: int = 0) -> DSAML:
    torch.manual_seed(seed)
    config = ModelConfig.preset("small", hidden_dim=32, global_dim=8, num_heads=4, ffn_dim=64, lstm_hidden=16,
                                head_hidden=16, num_layers=1)
    return DSAML(config).eval()


def test_window_rows_are_the_newest_fed_steps():
    rows = window_rows(5, 3)
    assert [r.tolist() for r in rows] == [[0], [0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]]
    silent = np.array([False, True, False, False, True, False])
    rows = window_rows(6, 2, silent)  # silent steps are not fed: a window holds the newest fed steps
    assert [r.tolist() for r in rows] == [[0], [0, 2], [2, 3], [3, 5]]


def test_causal_prediction_reads_each_step_as_the_newest_row_of_its_window():
    model = tiny_model()
    mel, global_feat = torch.randn(75, 51, 128), torch.randn(75, 8)
    windows = SlidingWindows(window=20, batch=7)
    va = predict_song(model, mel, global_feat, windows=windows)
    assert va.shape == (75, 2)
    with torch.no_grad():
        for step in (0, 5, 19, 40, 74):
            start = max(0, step - 19)
            newest = model(mel[None, start : step + 1], global_feat[None, start : step + 1]).va[0, -1]
            torch.testing.assert_close(va[step], newest)
    # nothing after a step reaches its value
    changed = mel.clone()
    changed[50:] = torch.randn(25, 51, 128)
    torch.testing.assert_close(predict_song(model, changed, global_feat, windows=windows)[:50], va[:50])
    # with adapted weights, the cached local features come from the adapted adapter
    weights, _ = adapt(model, [(mel[:20], global_feat[:20], torch.rand(20, 2) - 0.5)], AdaptConfig(steps=1, lr=0.5))
    adapted = predict_song(model, mel, global_feat, weights=weights, windows=windows)
    with torch.no_grad():
        model.eval()
        direct = run(model, weights, mel[None, 21:41], global_feat[None, 21:41]).va[0]
    torch.testing.assert_close(adapted[40], direct[-1])
    assert not torch.allclose(adapted, va)
    # silent steps are NaN and not fed
    silent = np.zeros(75, bool)
    silent[[3, 30]] = True
    quiet = predict_song(model, mel, global_feat, windows=windows, silent=silent)
    assert torch.isnan(quiet[[3, 30]]).all() and not torch.isnan(quiet[[0, 4, 31]]).any()
    with torch.no_grad():
        rows = [r for r in range(12, 34) if r != 30][-20:]
        torch.testing.assert_close(quiet[33], model(mel[None, rows], global_feat[None, rows]).va[0, -1])


def test_a_causal_model_sees_the_past_only():
    torch.manual_seed(0)
    config = ModelConfig.preset("small", hidden_dim=32, global_dim=8, num_heads=4, ffn_dim=64, lstm_hidden=16,
                                head_hidden=16, num_layers=1, causal=True)
    model = DSAML(config).eval()
    mel, global_feat = torch.randn(1, 30, 51, 128), torch.randn(1, 30, 8)
    with torch.no_grad():
        whole = model(mel, global_feat).va[0]
        prefix = model(mel[:, :12], global_feat[:, :12]).va[0]
    torch.testing.assert_close(whole[:12], prefix)  # row t of a window is the stream's value at t
    # so prediction reads the song's first window in one pass, and gives each step's newest row all the same
    windows = SlidingWindows(window=20, batch=7)
    va = predict_song(model, mel[0], global_feat[0], windows=windows)
    with torch.no_grad():
        for step in (0, 7, 19, 25, 29):
            start = max(0, step - 19)
            newest = model(mel[:, start : step + 1], global_feat[:, start : step + 1]).va[0, -1]
            torch.testing.assert_close(va[step], newest)
    assert sum(p.numel() for p in model.predictor.parameters()) > 0


def test_adaptation_fits_the_support_and_leaves_the_base_model_alone():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mel, global_feat = torch.randn(30, 51, 128), torch.randn(30, 8)
    target = torch.stack([torch.linspace(-0.5, 0.5, 30), torch.linspace(0.4, -0.2, 30)], dim=1)
    weights, losses = adapt(model, [(mel, global_feat, target)], AdaptConfig(steps=20, lr=0.05, train_mode=False))
    assert losses[-1] < losses[0] - 0.1
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert not torch.equal(weights["predictor.out.weight"], before["predictor.out.weight"])
    assert model.training is False  # the mode is restored
    adapted = predict_song(model, mel, global_feat, weights=weights)
    base = predict_song(model, mel, global_feat)
    assert torch.mean((adapted - target) ** 2) < torch.mean((base - target) ** 2)


def test_output_only_adaptation_changes_the_last_layer_only():
    model = tiny_model()
    mel, global_feat = torch.randn(30, 51, 128), torch.randn(30, 8)
    target = torch.stack([torch.linspace(0.0, 0.6, 30), torch.linspace(0.5, 0.1, 30)], dim=1)
    weights, losses = adapt(model, [(mel, global_feat, target)], AdaptConfig(steps=10, lr=0.1, params="output"))
    changed = {name for name, value in model.state_dict().items() if not torch.equal(weights[name], value)}
    assert changed == {"predictor.out.weight", "predictor.out.bias"}
    assert losses[-1] < losses[0]


def test_bias_only_adaptation_shifts_the_output_by_an_offset():
    model = tiny_model()
    mel, global_feat = torch.randn(30, 51, 128), torch.randn(30, 8)
    base = predict_song(model, mel, global_feat)
    target = base + torch.tensor([0.3, -0.2])  # a listener who hears the same shape, offset
    weights, losses = adapt(model, [(mel, global_feat, target)],
                            AdaptConfig(steps=40, lr=0.01, params="bias", train_mode=False))
    changed = {name for name, value in model.state_dict().items() if not torch.equal(weights[name], value)}
    assert changed == {"predictor.out.bias"} and losses[-1] < losses[0]
    shift = predict_song(model, mel, global_feat, weights=weights) - base
    assert torch.allclose(shift, shift.mean(dim=0), atol=1e-5)  # the same offset at every step: the shape is kept
    assert shift[0, 0] > 0.02 and shift[0, 1] < -0.02  # towards the listener's offset


@pytest.mark.parametrize("params", ["output", "bias"])
def test_last_layer_adaptation_runs_the_rest_once_and_takes_the_same_steps(params):
    # The fast path (everything before the last layer computed once) against the general one, which runs the
    # whole model at every step: in eval mode both must take the same steps.
    model = tiny_model()
    mel, global_feat = torch.randn(30, 51, 128), torch.randn(30, 8)
    target = torch.stack([torch.linspace(0.0, 0.6, 30), torch.linspace(0.5, 0.1, 30)], dim=1)
    config = AdaptConfig(steps=6, lr=0.1, params=params, train_mode=False)
    fast, fast_losses = adapt(model, [(mel, global_feat, target)], config)
    slow, slow_losses = adapt(model, [(mel, global_feat, target)], config, create_graph=True)  # general path
    assert np.allclose(fast_losses, slow_losses, atol=1e-6) and fast_losses[-1] < fast_losses[0]
    for name in ("predictor.out.weight", "predictor.out.bias"):
        assert torch.allclose(fast[name], slow[name].detach(), atol=1e-6), name


def test_adaptation_windows_long_support():
    model = tiny_model()
    mel, global_feat, va = torch.randn(70, 51, 128), torch.randn(70, 8), torch.rand(70, 2) - 0.5
    weights, losses = adapt(model, [(mel, global_feat, va)], AdaptConfig(steps=2, window=30))
    assert len(losses) == 2 and all(np.isfinite(losses))


# --- the tasks, on a small plain dataset (made up here, named so) ---


def synthetic_listener_dataset(root, seconds: float = 40.0):
    """Two listeners who disagree in valence on four songs; 'test' split: songs c, d."""
    rng = np.random.default_rng(3)
    audio, curves = {}, []
    steps = int(seconds * 2)
    for index, song in enumerate("abcd"):
        t = np.arange(int(seconds * 8000)) / 8000
        audio[song] = ((0.2 * np.sin(2 * np.pi * (220 + 50 * index) * t)).astype(np.float32), 8000)
        base = np.tanh(np.cumsum(rng.normal(0, 0.1, (steps, 2)), axis=0))
        curves.append(Curve(song, "ann", 0.0, base))
        curves.append(Curve(song, "bo", 0.0, np.clip(base * [-1, 1] + [0.2, 0], -1, 1)))
    splits = {"train": {"songs": ["a", "b"]}, "test": {"songs": ["c", "d"]}}
    return write_plain(root, curves, audio, name="made-up", splits=splits)


def test_training_mean_baseline_scores_zero_ccc_and_the_hand_computed_rmse(tmp_path):
    data = load_plain(synthetic_listener_dataset(tmp_path / "data"))
    train_values = np.concatenate([c.va for c in data.split("train").mean_curves()])
    constant = train_values.mean(axis=0)
    results = traditional(data.split("test"), ConstantPredictor.training_mean(data.split("train")))
    targets = {c.song: c.va for c in data.split("test").mean_curves()}
    for result in results:
        # a constant has no covariance: CCC 0 up to float error; PCC 0 is the documented value for a constant
        for key in ("valence_ccc", "arousal_ccc", "valence_pcc", "arousal_pcc"):
            assert result.scores[key] == pytest.approx(0, abs=1e-9), key
        by_hand = np.sqrt(np.mean((targets[result.song] - constant) ** 2, axis=0))
        assert result.scores["valence_rmse"] == pytest.approx(by_hand[0], abs=1e-6)
        assert result.scores["arousal_rmse"] == pytest.approx(by_hand[1], abs=1e-6)


def test_personalized_protocols(tmp_path):
    data = load_plain(synthetic_listener_dataset(tmp_path / "data"))
    predictor = ConstantPredictor.training_mean(data, adapt=True)  # adapts to the support's mean
    by_song = personalized(data, predictor, support="song", seed=0)
    assert len(by_song) == 6  # 2 listeners x (4 songs - 1 support)
    assert {r.listener for r in by_song} == {"ann", "bo"}
    by_frames = personalized(data.split("test"), predictor, support="frames")
    assert len(by_frames) == 4 and all(r.steps == 80 - SUPPORT_FRAMES for r in by_frames)


def test_cli_eval_baseline_json_and_markdown(tmp_path):
    root = synthetic_listener_dataset(tmp_path / "data")
    result = CliRunner().invoke(main, ["eval", "--data", str(root), "--baseline", "training-mean", "--train-split",
                                       "train", "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["tasks"]) == {"dmer", "pdmer"}
    assert report["tasks"]["dmer"]["mean"]["valence_ccc"] == pytest.approx(0, abs=1e-9)
    assert len(report["tasks"]["pdmer"]["per_curve"]) == 2  # test split: per listener 1 support song, 1 scored
    assert "| **training mean** | 0.000 | 0.000 |" in result.output
    assert (tmp_path / "r.md").read_text().startswith("# pdmer eval: training mean on made-up")


def test_cli_eval_checkpoint(tmp_path):
    import dataclasses

    from pdmer.model.checkpoint import save_model
    from pdmer.model.encoders import load_global_encoder

    root = synthetic_listener_dataset(tmp_path / "data", seconds=8.0)
    encoder = load_global_encoder("musicnn")
    model = tiny_model()
    model = DSAML(dataclasses.replace(model.config, global_dim=encoder.dim))
    checkpoint = save_model(model, tmp_path / "m.safetensors",
                            metadata={"global_encoder": json.dumps(encoder.spec)})
    args = ["eval", str(checkpoint), "--data", str(root), "--steps", "2", "--cache", str(tmp_path / "cache"),
            "--json", str(tmp_path / "r.json")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["model"] == "m" and report["tasks"]["dmer"]["curves"] == 2
    assert all(np.isfinite(v) for v in report["tasks"]["pdmer"]["mean"].values())


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give CHECKPOINTS or --baseline"),
        (["--baseline", "training-mean"], "pass --train-split"),
        (["--baseline", "training-mean", "--train-split", "train", "--split", "nope"], "has no split 'nope'"),
        (["missing.safetensors"], "does not exist"),
    ],
)
def test_cli_eval_bad_input(tmp_path, args, message):
    root = synthetic_listener_dataset(tmp_path / "data", seconds=4.0)
    result = CliRunner().invoke(main, ["eval", "--data", str(root), *args])
    assert result.exit_code == 2 and message in result.output


@pytest.mark.parametrize("params", ["output", "bias"])
def test_a_last_layer_profile_reuses_the_base_models_pass_exactly(tmp_path, params):
    """A profile adapted on the last layer predicts from the base model's pass (its last layer's inputs): the
    same values as running the adapted model whole."""
    from pdmer.data.features import FeatureCache
    from pdmer.data.plain import write_plain
    from pdmer.evaluate.predictors import ModelPredictor
    from pdmer.model import descriptors
    from pdmer.model.encoders import load_global_encoder

    rate = 16000
    t = np.arange(int(rate * 40)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.1 * np.sin(t))) * (0.6 + 0.4 * np.sin(t))).astype(np.float32)
    va = np.stack([np.sin(np.arange(80) / 9), np.cos(np.arange(80) / 7)], axis=1).astype(np.float32) * 0.5
    curves = [Curve("s1", "A", 0.0, va), Curve("s2", "A", 0.0, va[::-1].copy())]
    data = load_plain(write_plain(tmp_path / "set", curves, {"s1": (wave, rate), "s2": (wave[::-1].copy(), rate)},
                                  name="two"))
    torch.manual_seed(0)
    config = ModelConfig.preset("small", global_dim=descriptors.DIM, causal=True, global_norm=True, global_skip=True)
    model = DSAML(config).eval()
    cache = FeatureCache(load_global_encoder("descriptors"), root=tmp_path / "cache")
    base = ModelPredictor(model, cache, data, adaptation=AdaptConfig(steps=5, lr=0.5, params=params))
    profile = base.personalize([curves[0]])
    assert profile.base is base
    shortcut = profile.predict(curves[1])
    whole = ModelPredictor(model, cache, data, weights=profile.weights).predict(curves[1])
    assert np.abs(shortcut - whole).max() < 1e-4 and np.abs(shortcut - base.predict(curves[1])).max() > 1e-3
