"""``pdmer train``: settings from a TOML config, overridden by flags; progress on stderr; a run folder as output."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pdmer.cli_common import user_errors

# pdmer.train.config's choices, repeated so that `pdmer --help` stays free of imports; tests keep them equal.
FLAG_SETTINGS = {
    "mode": click.Choice(["dmer", "pdmer"]),
    "model": click.Choice(["dsaml", "damff", "crnn"]),
    "preset": str,
    "init": click.Path(dir_okay=False),
    "data": click.Path(file_okay=False),
    "format": click.Choice(["deam", "emomusic", "pmemo", "vgmidi", "4q", "emopia", "plain"]),
    "train_split": str,
    "val_split": str,
    "encoder": click.Choice(["musicnn", "imagebind", "descriptors"]),
    "imagebind": click.Path(dir_okay=False),
    "global_placement": click.Choice(["trailing", "centred"]),
    "cache": click.Path(file_okay=False),
    "seed": int,
    "steps": click.IntRange(min=1),
    "lr": click.FloatRange(min=0, min_open=True),
    "optimizer": click.Choice(["adam", "adamw", "sgd"]),
    "tasks": click.Choice(["listener", "random"]),
    "inner_steps": click.IntRange(min=0),
    "inner_lr": click.FloatRange(min=0, min_open=True),
    "device": click.Choice(["auto", "cpu", "cuda"]),
}
# Switches that turn a default-on setting off: the paper's ablations (Tables 3-4) and second-order MAML.
OFF_SWITCHES = {
    "no_maml": "maml",
    "no_local_attention": "local_attention",
    "no_global_attention": "global_attention",
    "no_attention_loss": "attention_loss",
    "no_adapter": "adapter",
    "second_order": "first_order",
}


def flag_options(command):
    for name, kind in reversed(FLAG_SETTINGS.items()):
        if name == "data":  # several --data: a mix of sources, each of weight 1 (weights: the config's sources)
            command = click.option("--data", "data", type=kind, multiple=True,
                                   help="Overrides data of the config; repeat it for a mix of datasets of equal "
                                        "weight (other weights: sources in the config).")(command)
            continue
        command = click.option(f"--{name.replace('_', '-')}", name, type=kind, default=None,
                               help=f"Overrides {name} of the config.")(command)
    for switch in reversed(OFF_SWITCHES):
        command = click.option(f"--{switch.replace('_', '-')}", switch, is_flag=True, default=None,
                               help=f"Sets {OFF_SWITCHES[switch]} = false.")(command)
    return command


@click.command("train")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML file of settings.")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder for checkpoints and logs (new run).")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue the run in this folder where it stopped.")
@click.option("--print-config", is_flag=True, help="Print the effective config as TOML and exit.")
@flag_options
def train(config_path, out, resume, print_config, **flags) -> None:
    """Train a model: DSAML or a baseline (DAMFF, CRNN), on mean labels (--mode dmer) or meta-trained with
    per-listener MAML tasks (--mode pdmer, the paper's personalized strategy).

    Settings: the defaults are the authors'; a --config TOML file overrides them and flags override the file
    (pdmer train --print-config shows them all). The run folder gets config.toml, model.safetensors (for pdmer eval),
    best.safetensors (best validation score), state.pt (for --resume) and log.jsonl. Several processes:
    torchrun --nproc-per-node N -m pdmer train ... shares each meta-batch's tasks among them."""
    user_errors(_train)(config_path, out, resume, print_config, flags)


def _train(config_path, out, resume, print_config, flags) -> None:
    from pdmer.train.config import TrainConfig

    if resume and (out or config_path):
        raise click.UsageError("--resume takes its settings from the run folder: give no --out or --config")
    if resume:
        config = TrainConfig.from_toml(Path(resume) / "config.toml")
        out = resume
    else:
        config = TrainConfig.from_toml(config_path) if config_path else TrainConfig()
    data = flags.pop("data", ())
    changes = {name: value for name, value in flags.items() if name in FLAG_SETTINGS and value is not None}
    if len(data) == 1:
        changes.update(data=data[0], sources=[])
    elif data:
        changes.update(data="", sources=[{"data": folder} for folder in data])
    changes.update({OFF_SWITCHES[name]: False for name, value in flags.items() if name in OFF_SWITCHES and value})
    config = config.replace(**changes)
    if print_config:
        click.echo(config.to_toml(), nl=False)
        return
    if not out:
        raise click.UsageError("give --out FOLDER for a new run (or --resume FOLDER)")

    from pdmer.fileio import check_output
    from pdmer.train.run import Run

    check_output(out, "--resume" if resume else "--out", folder=True)
    say = lambda text: click.echo(f"\r\033[K{text}", nl=False, err=True) if sys.stderr.isatty() else None  # noqa: E731
    run = Run(config, Path(out), resume=bool(resume), report=say)
    if run.group.main and sys.stderr.isatty():
        click.echo("\r\033[K", nl=False, err=True)
    interval = max(1, config.checkpoint_every)

    def progress(values: dict) -> None:
        if not run.group.main:
            return
        text = f"step {values['step']}/{config.steps}  " + "  ".join(
            f"{k} {v:.4f}" for k, v in values.items() if k not in ("step", "seconds"))
        if sys.stderr.isatty():
            click.echo(f"\r\033[K{text}", nl=False, err=True)
        elif values["step"] % interval == 0 or values["step"] == config.steps or "val_score" in values:
            click.echo(text, err=True)

    last = run.train(progress)
    if run.group.main:
        sys.stderr.isatty() and click.echo("", err=True)
        click.echo(f"trained {config.model} ({config.mode}) for {last.get('step', run.step)} steps: "
                   f"{Path(out) / 'model.safetensors'}")
