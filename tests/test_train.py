"""Training: config files, task construction, MAML gradients, resume, NaN handling, torchrun, and the CLI."""

import json
import math
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pdmer.cli import main
from pdmer.data import Curve, DataWarning, write_plain
from pdmer.errors import InputError
from pdmer.model.checkpoint import load_model, read_metadata
from pdmer.train import command as train_command
from pdmer.train import config as train_config
from pdmer.train.config import TrainConfig
from pdmer.train.run import MODEL, STATE, Run, TrainingError

pytestmark = pytest.mark.filterwarnings("ignore:.*are skipped:pdmer.data.curves.DataWarning")

RATE = 16000
SECONDS = 8.0


def tone(seed: int) -> np.ndarray:
    """A few seconds of notes whose loudness and pitch change: something for the listeners to react to."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * SECONDS)) / RATE
    pitch = 220 * 2 ** (rng.integers(0, 12, size=8)[(t // 1).astype(int)] / 12)
    loudness = 0.1 + 0.4 * (0.5 + 0.5 * np.sin(2 * np.pi * t / rng.uniform(3, 6)))
    return (loudness * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


def listener_curve(song: int, listener: str, bias: float, polarity: float) -> Curve:
    steps = int(SECONDS / 0.5)
    time = np.arange(steps) * 0.5
    base = np.stack([np.sin(time / 2 + song), np.cos(time / 3 + song)], axis=1) * 0.5
    va = np.clip(polarity * base + bias, -1, 1).astype(np.float32)
    return Curve(f"s{song}", listener, 0.0, va, None, source=f"{listener}/s{song}")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """8 songs; train: songs 1-6 labelled by listeners A, B, C (and 2 songs by D, too few for a task); val:
    songs 7-8 by E and F."""
    root = tmp_path_factory.mktemp("train-data") / "set"
    people = {"A": (0.2, 1.0), "B": (-0.3, 1.0), "C": (0.0, -1.0), "D": (0.1, 1.0), "E": (0.3, -1.0), "F": (-0.2, 1.0)}
    curves = []
    for song in range(1, 7):
        curves += [listener_curve(song, who, *people[who]) for who in "ABC"]
    curves += [listener_curve(song, "D", *people["D"]) for song in (1, 2)]
    curves += [listener_curve(song, who, *people[who]) for song in (7, 8) for who in "EF"]
    audio = {f"s{song}": (tone(song), RATE) for song in range(1, 9)}
    splits = {"train": {"songs": [f"s{i}" for i in range(1, 7)]}, "val": {"songs": ["s7", "s8"]}}
    return write_plain(root, curves, audio, name="tiny", splits=splits)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("train-cache")


def small_config(dataset, cache, **changes) -> TrainConfig:
    values = dict(data=str(dataset), cache=str(cache), val_split="", steps=4, window=12, tasks_per_step=2, support=1,
                  query=2, inner_steps=2, inner_lr=0.01, lr=1e-3, checkpoint_every=2, validate_every=0, device="cpu")
    values.update(changes)
    return TrainConfig(**values)


def weights_of(path) -> dict:
    return load_model(path).state_dict()


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# -- config -----------------------------------------------------------------------------------------------------
def test_config_round_trips_through_toml(tmp_path):
    config = TrainConfig(mode="dmer", model="crnn", lr=3e-4, steps=7, data="x y", first_order=False)
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml())
    assert TrainConfig.from_toml(path) == config
    assert TrainConfig().fingerprint() == TrainConfig(steps=5, validate_every=3).fingerprint()
    assert TrainConfig().fingerprint() != TrainConfig(lr=1e-3).fingerprint()


@pytest.mark.parametrize("text, message", [
    ("[meta]\ninner_stepz = 3\n", "unknown keys ['inner_stepz'] in [meta]"),
    ("[optimizer]\nlr = 1.0\n", "unknown section [optimizer]"),
    ("[optim]\nlr = 'fast'\n", "lr must be a float"),
    ("[run]\nmode = 'fast'\n", "mode = 'fast' is not one of dmer, pdmer"),
    ("[run]\nmodel = 'crnn'\n[ablation]\nadapter = false\n", "apply to dsaml only"),
    ("[run]\nmodel = 'crnn'\ndropout = 0.3\n", "and dropout apply to dsaml only"),
    ("[run]\ndropout = 1.0\n", "dropout must be < 1 and input_dropout in .0, 1., got 1.0 and 0.0"),
    ("[optim]\nema = 1.0\n", r"ema is a decay per step in .0, 1. .0 = off, e.g. 0.999., got 1.0"),
    ("[optim]\nweight_decay = -0.1\n", "grad_clip and weight_decay must be >= 0"),
    ("[run\n", "not valid TOML"),
])
def test_bad_config_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TrainConfig.from_toml(path)


def test_committed_recipes_are_valid_configs():
    from pathlib import Path

    recipes = sorted((Path(__file__).parents[1] / "recipes").glob("**/*.toml"))
    assert len(recipes) >= 4
    for path in recipes:
        TrainConfig.from_toml(path)  # raises on an unknown key or a bad value


def test_cli_choices_match_the_config():
    flags = train_command.FLAG_SETTINGS
    assert tuple(flags["mode"].choices) == train_config.MODES
    assert tuple(flags["model"].choices) == train_config.MODELS
    assert tuple(flags["tasks"].choices) == train_config.TASK_KINDS
    assert tuple(flags["optimizer"].choices) == train_config.OPTIMIZERS
    assert tuple(flags["device"].choices) == train_config.DEVICES
    from pdmer.data.features import PLACEMENTS

    assert tuple(flags["global_placement"].choices) == train_config.PLACEMENTS == PLACEMENTS
    from pdmer.model.encoders import ENCODER_NAMES

    assert tuple(flags["encoder"].choices) == ENCODER_NAMES
    assert set(train_command.OFF_SWITCHES.values()) <= set(TrainConfig.__dataclass_fields__)
    from pdmer.model.registry import ARCHITECTURES

    assert train_config.MODELS == ARCHITECTURES


def test_print_config_applies_file_then_flags(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[optim]\nlr = 0.001\n[meta]\nquery = 4\n")
    result = CliRunner().invoke(main, ["train", "--config", str(path), "--query-not-a-flag"])
    assert result.exit_code == 2
    result = CliRunner().invoke(main, ["train", "--config", str(path), "--lr", "0.01", "--no-maml", "--print-config"])
    assert result.exit_code == 0, result.output
    printed = tmp_path / "printed.toml"
    printed.write_text(result.output)
    config = TrainConfig.from_toml(printed)
    assert (config.lr, config.query, config.maml) == (0.01, 4, False)


# -- tasks ------------------------------------------------------------------------------------------------------
def test_listener_tasks_hold_one_listener_and_skip_those_with_too_few_songs(dataset, cache):
    with pytest.warns(DataWarning, match="1 listener.*fewer than support \\+ query = 3 songs are skipped: D"):
        run = Run(small_config(dataset, cache), dataset.parent / "unused-run", resume=False, report=lambda _: None)
    sampler = run.sources[0].sampler
    assert set(sampler.groups) == {"A", "B", "C"}
    from pdmer.train.data import step_rng

    tasks = sampler.sample(step_rng(0, 1), 5)
    for task in tasks:
        assert len(task.support) == 1 and task.query[2].shape == (2, 12, 2)
        assert all(e.listener == task.listener for e in task.support)
    again = sampler.sample(step_rng(0, 1), 5)
    assert [t.listener for t in tasks] == [t.listener for t in again]  # same (seed, step), same draw
    for a, b in zip(tasks, again):
        assert torch.equal(a.query[2], b.query[2])


def test_random_tasks_use_the_mean_curves(dataset, cache):
    run = Run(small_config(dataset, cache, tasks="random"), dataset.parent / "unused-run", resume=False,
              report=lambda _: None)
    assert list(run.sources[0].sampler.groups) == ["mean"] and len(run.sources[0].sampler.groups["mean"]) == 6


# -- MAML -------------------------------------------------------------------------------------------------------
def test_meta_gradient_leaves_the_model_alone_and_second_order_differs(dataset, cache):
    from pdmer.model.adapt import AdaptConfig
    from pdmer.train.data import step_rng
    from pdmer.train.steps import task_gradient

    run = Run(small_config(dataset, cache), dataset.parent / "unused-run", resume=False, report=lambda _: None)
    model = run.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    task = run.sources[0].sampler.sample(step_rng(0, 1), 1)[0]
    adaptation = AdaptConfig(steps=3, lr=0.05, window=12)
    torch.manual_seed(1)
    first, stats = task_gradient(model, task, adaptation, first_order=True, device=torch.device("cpu"))
    for name, value in model.named_parameters():
        assert torch.equal(value, before[name]), name  # parameters untouched; only BN statistics follow queries
    torch.manual_seed(1)
    second, _ = task_gradient(model, task, adaptation, first_order=False, device=torch.device("cpu"))
    torch.manual_seed(1)
    plain, _ = task_gradient(model, task, None, first_order=True, device=torch.device("cpu"))
    assert all(torch.isfinite(g).all() for g in first + second)
    differs = lambda a, b: max(float((x - y).abs().max()) for x, y in zip(a, b))  # noqa: E731
    assert differs(first, second) > 1e-6 and differs(first, plain) > 1e-6
    assert stats.inner_last < stats.inner_first  # the inner loop lowers the support loss


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (runs on the lent GPU machine)")
def test_meta_gradient_on_cuda_matches_cpu():
    """First-order MAML through cuDNN, and second-order without it, give the CPU's gradients."""
    from pdmer.model.adapt import AdaptConfig
    from pdmer.model.registry import build_model
    from pdmer.train.data import Example, Task
    from pdmer.train.steps import task_gradient

    torch.manual_seed(0)
    model = build_model("dsaml", "small", global_dim=200, dropout=0.0)
    make = lambda *shape: torch.randn(*shape)  # noqa: E731
    support = Example("s", "L", make(12, 51, 128), make(12, 200), torch.rand(12, 2) - 0.5)
    task = Task("L", [support], (make(2, 12, 51, 128), make(2, 12, 200), torch.rand(2, 12, 2) - 0.5))
    adaptation = AdaptConfig(steps=2, lr=0.05, window=12)
    for first_order in (True, False):
        on_cpu, _ = task_gradient(model, task, adaptation, first_order=first_order, device=torch.device("cpu"))
        model.cuda()
        on_gpu, _ = task_gradient(model, task, adaptation, first_order=first_order, device=torch.device("cuda"))
        model.cpu()
        for a, b in zip(on_cpu, on_gpu):
            torch.testing.assert_close(a, b.cpu(), atol=2e-3, rtol=2e-2)


# -- runs, resume, failures -------------------------------------------------------------------------------------
@pytest.mark.parametrize("optim", [{}, {"optimizer": "adamw", "weight_decay": 0.1, "ema": 0.5}])
def test_interrupted_run_resumes_exactly(dataset, cache, tmp_path, monkeypatch, optim):
    def small_config(dataset, cache, **changes):  # the settings under test, in every run below
        return globals()["small_config"](dataset, cache, **{**optim, **changes})

    straight = Run(small_config(dataset, cache), tmp_path / "straight", resume=False, report=lambda _: None)
    straight.train()
    assert [json.loads(line)["step"] for line in (tmp_path / "straight/log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]

    interrupted = Run(small_config(dataset, cache), tmp_path / "interrupted", resume=False, report=lambda _: None)
    real_step = Run.one_step

    def stop_at_4(self, step):
        if step == 4:
            raise KeyboardInterrupt
        return real_step(self, step)

    monkeypatch.setattr(Run, "one_step", stop_at_4)
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()  # steps 1-3 ran; the last checkpoint is step 2
    monkeypatch.setattr(Run, "one_step", real_step)
    assert read_metadata(tmp_path / "interrupted" / MODEL)["step"] == "2"
    with pytest.raises(InputError, match="already holds a run"):
        Run(small_config(dataset, cache), tmp_path / "interrupted", resume=False, report=lambda _: None)
    with pytest.raises(InputError, match="only steps, validate_every"):
        Run(small_config(dataset, cache, lr=0.5), tmp_path / "interrupted", resume=True, report=lambda _: None)
    resumed = Run(small_config(dataset, cache), tmp_path / "interrupted", resume=True, report=lambda _: None)
    assert resumed.step == 2
    resumed.train()
    assert_same_weights(weights_of(tmp_path / "straight" / MODEL), weights_of(tmp_path / "interrupted" / MODEL))
    logged = [json.loads(line)["step"] for line in (tmp_path / "interrupted/log.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4]


def test_ema_saves_and_validates_the_moving_average_of_the_weights(dataset, cache, tmp_path):
    """ema = 0.5 over one step: the saved weights are halfway between the initial ones and the plain run's step 1;
    validation scores those averaged weights, and training goes on from its own."""
    plain = Run(small_config(dataset, cache, mode="dmer", steps=1), tmp_path / "plain", resume=False,
                report=lambda _: None)
    initial = {name: p.detach().clone() for name, p in plain.model.named_parameters()}
    plain.train()
    stepped = weights_of(tmp_path / "plain" / MODEL)
    averaged = Run(small_config(dataset, cache, mode="dmer", steps=1, ema=0.5, val_split="val"),
                   tmp_path / "ema", resume=False, report=lambda _: None)
    scored = []
    real_validate = Run.validate_source
    averaged.validate_source = lambda source: scored.append(
        {name: w.clone() for name, w in averaged.model.state_dict().items()}) or real_validate(averaged, source)
    averaged.train()
    saved = weights_of(tmp_path / "ema" / MODEL)
    for name, start in initial.items():
        torch.testing.assert_close(saved[name], (start + stepped[name]) / 2)
        torch.testing.assert_close(scored[0][name], saved[name])
        torch.testing.assert_close(dict(averaged.model.named_parameters())[name].detach(), stepped[name])
    assert any(not torch.equal(initial[name], stepped[name]) for name in initial)


def test_nan_loss_stops_with_the_last_good_checkpoint_kept(dataset, cache, tmp_path):
    run = Run(small_config(dataset, cache), tmp_path / "nan", resume=False, report=lambda _: None)
    real_loss = run.model.loss

    def loss_that_fails_at_step_3(output, target):
        parts = real_loss(output, target)
        if run.step == 2:  # computing step 3
            parts.total = parts.total * math.nan
        return parts

    run.model.loss = loss_that_fails_at_step_3
    with pytest.raises(TrainingError, match=r"NaN/inf at step 3; the last good checkpoint is .*model.safetensors "
                                            r"\(step 2\)\. Lower the learning rate"):
        run.train()
    saved = weights_of(tmp_path / "nan" / MODEL)
    assert all(torch.isfinite(v.float()).all() for v in saved.values())
    assert torch.load(tmp_path / "nan" / STATE, weights_only=True)["step"] == 2


def test_init_starts_from_a_checkpoint_of_the_same_model_only(dataset, cache, tmp_path):
    first = Run(small_config(dataset, cache, mode="dmer", steps=2), tmp_path / "dmer", resume=False,
                report=lambda _: None)
    first.train()
    start = weights_of(tmp_path / "dmer" / MODEL)
    second = Run(small_config(dataset, cache, seed=5, init=str(tmp_path / "dmer" / MODEL)), tmp_path / "maml",
                 resume=False, report=lambda _: None)
    assert_same_weights({k: v.detach() for k, v in second.model.state_dict().items()}, start)
    with pytest.raises(InputError, match="another config than this run's dsaml.*same model settings"):
        Run(small_config(dataset, cache, init=str(tmp_path / "dmer" / MODEL), adapter=False), tmp_path / "x",
            resume=False, report=lambda _: None)
    with pytest.raises(InputError, match="another config"):
        Run(small_config(dataset, cache, init=str(tmp_path / "dmer" / MODEL), model="crnn"), tmp_path / "y",
            resume=False, report=lambda _: None)


@pytest.mark.parametrize("mode", ["dmer", "pdmer"])
def test_a_causal_model_with_a_frozen_front_end_keeps_the_adapter_of_init(dataset, cache, tmp_path, mode):
    """front_end = "frozen": the adapter of init (a non-causal checkpoint without the slice statistics: its front end
    alone carries over) never changes, and the rest trains on its outputs, computed once per song."""
    first = Run(small_config(dataset, cache, mode="dmer", steps=2), tmp_path / "base", resume=False,
                report=lambda _: None)
    first.train()
    start = weights_of(tmp_path / "base" / MODEL)
    said = []
    run = Run(small_config(dataset, cache, mode=mode, steps=3, init=str(tmp_path / "base" / MODEL), causal=True,
                           front_end="frozen", inner_params="output", slice_stats=True, trailing_stats=4,
                           dropout=0.3, input_dropout=0.2), tmp_path / "frozen", resume=False, report=said.append)
    assert any("start fresh" in line for line in said)
    assert all(e.mel.ndim == 2 for e in run.sources[0].pool)  # [T, L]: the front end's outputs
    run.train()
    after = weights_of(tmp_path / "frozen" / MODEL)
    config = load_model(tmp_path / "frozen" / MODEL).config
    assert config.causal and config.trailing_stats == 4 and (config.dropout, config.input_dropout) == (0.3, 0.2)
    for name, value in after.items():
        if name.startswith("adapter."):
            assert torch.equal(value, start[name]), name  # weights and batch-norm statistics
    assert not torch.equal(after["fusion.local_proj.weight"], start["fusion.local_proj.weight"])
    with pytest.raises(InputError, match="inner_params"):
        small_config(dataset, cache, init="x", front_end="frozen")  # pdmer mode adapting "all" needs the slices


def test_resume_of_a_folder_without_a_run_is_an_error(tmp_path):
    result = CliRunner().invoke(main, ["train", "--resume", str(tmp_path)])
    assert result.exit_code == 2 and "config file" in result.output


# -- end to end -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model, mode", [("dsaml", "pdmer"), ("damff", "dmer"), ("crnn", "pdmer")])
def test_train_then_eval_from_the_command_line(dataset, cache, tmp_path, model, mode):
    out = tmp_path / f"{model}-{mode}"
    args = ["train", "--data", str(dataset), "--cache", str(cache), "--out", str(out), "--model", model,
            "--mode", mode, "--steps", "2", "--val-split", "val", "--inner-steps", "1", "--device", "cpu"]
    placement = "centred" if mode == "dmer" else "trailing"  # offline global windows are a training setting
    args += ["--global-placement", placement]
    path = tmp_path / "c.toml"
    path.write_text("[data]\nwindow = 12\n[meta]\ntasks_per_step = 2\nquery = 2\n[optim]\nbatch_size = 4\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        result = CliRunner().invoke(main, [*args, "--config", str(path)])
    assert result.exit_code == 0, result.output
    metadata = read_metadata(out / MODEL)
    assert metadata["architecture"] == model and json.loads(metadata["adaptation"])["steps"] == 1
    assert json.loads(metadata["global_windows"])["placement"] == placement  # what predict and eval will use
    assert (out / "best.safetensors").is_file()
    assert "val_score" in (out / "log.jsonl").read_text().splitlines()[-1]
    result = CliRunner().invoke(main, ["eval", str(out / MODEL), "--data", str(dataset), "--split", "val",
                                       "--cache", str(cache), "--task", "pdmer"])
    assert result.exit_code == 0, result.output
    assert f"**{out.name}/model**" in result.output


@pytest.mark.slow
def test_two_gloo_processes_match_one(dataset, cache, tmp_path):
    """One SGD step of lr 1 moves each weight by exactly minus its meta-gradient: compare those across runs."""
    args = ["train", "--data", str(dataset), "--cache", str(cache), "--steps", "1", "--optimizer", "sgd", "--lr",
            "1.0", "--device", "cpu"]
    path = tmp_path / "c.toml"
    path.write_text("[data]\nwindow = 12\n[meta]\ntasks_per_step = 4\nquery = 2\ninner_steps = 2\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = tmp_path / "one"
    subprocess.run([sys.executable, "-m", "pdmer", *args, "--config", str(path), "--out", str(single)], check=True,
                   env=env, capture_output=True)
    double = tmp_path / "two"
    for attempt in range(2):
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                               "--standalone", "-m", "pdmer", *args, "--config", str(path), "--out", str(double)],
                              env=env, capture_output=True, text=True)
        # Once in CI (a loaded 2-core machine) a process aborted in torch's gloo teardown after the run had finished
        # and saved ("terminate called without an active exception"); that, and only that, is tried a second time.
        if not (done.returncode and "terminate called without an active exception" in done.stderr
                and "step 1/1" in done.stderr and attempt == 0):
            break
        shutil.rmtree(double)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = weights_of(single / MODEL), weights_of(double / MODEL)
    from pdmer.model.registry import build_model

    torch.manual_seed(0)  # the run's seed: its initial weights
    initial = build_model("dsaml", "small", global_dim=200).state_dict()
    moved = max(float((one[name] - initial[name]).abs().max()) for name in one if "running" not in name)
    assert moved > 1e-3  # the step did something to compare
    for name, value in one.items():
        if value.is_floating_point() and "running" not in name:  # BN statistics: averaged over processes
            assert torch.allclose(value, two[name], atol=1e-5, rtol=0), name
