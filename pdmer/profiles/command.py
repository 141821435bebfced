"""``pdmer profile create|list|show|delete|export|import``."""

from __future__ import annotations

import json
import sys

import click

from pdmer.cli_common import SCALES, user_errors
from pdmer.train.config import PARAMS


@click.group("profile")
def profile() -> None:
    """Listener profiles: the model adapted to one listener from one song and their V-A curve for it.

    Stored under $PDMER_HOME/profiles (default: the user data directory). The profile "default" is the base
    model itself. Workflow: pdmer predict SONG --csv mine.csv, edit the curve, pdmer profile create NAME."""


@profile.command("create")
@click.argument("name")
@click.option("--audio", required=True, type=click.Path(dir_okay=False), help="The support song.")
@click.option("--curve", required=True, type=click.Path(dir_okay=False),
              help="CSV time_s,valence,arousal: the listener's curve for the song (any time step).")
@click.option("--base", type=click.Path(dir_okay=False),
              help="The base model checkpoint (.safetensors; default: the embedded default model).")
@click.option("--scale", type=click.Choice(SCALES), default="[-1,1]", show_default=True,
              help="The scale the curve's values are on.")
@click.option("--steps", type=click.IntRange(min=0), help="Adaptation steps (default: as the base was meta-trained).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Adaptation learning rate (default: likewise).")
@click.option("--params", type=click.Choice(PARAMS),
              help="What adapts: all parameters, all but the front end, the last layer, or its bias alone (an offset) "
                   "(default: likewise).")
@click.option("--force", is_flag=True, help="Replace a profile of the same name.")
def create(name, audio, curve, base, scale, steps, lr, params, force) -> None:
    """Make profile NAME from one song (--audio) and the listener's curve for it (--curve)."""
    user_errors(_create)(name, audio, curve, base, scale, steps, lr, params, force)


def _create(name, audio, curve, base, scale, steps, lr, params, force) -> None:
    from pdmer.profiles.profile import create as create_profile
    from pdmer.profiles.store import check_name

    check_name(name, creating=True)  # before any slow work
    if base is None:
        from pdmer.defaults import default_checkpoint

        base = default_checkpoint()
    made = create_profile(name, audio, curve, base=base, steps=steps, lr=lr, params=params, scale=scale, force=force)
    click.echo(f"profile {name!r} created")  # by name: where the store keeps it is no concern of the user
    print_fit(made.info)


def print_fit(info: dict) -> None:
    before, after = info["fit"]["before"], info["fit"]["after"]
    click.echo(f"fit on the support song ({info['support']['steps']} steps), before -> after adaptation:")
    for key in before:
        click.echo(f"  {key:<14} {before[key]:+.3f} -> {after[key]:+.3f}")


@profile.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_command(as_json) -> None:
    """The stored profiles (and "default", the base model)."""
    user_errors(_list)(as_json)


def _list(as_json) -> None:
    from pdmer.profiles.profile import list_profiles

    profiles = list_profiles()
    if as_json:
        click.echo(json.dumps([p.info for p in profiles], indent=1))
        return
    click.echo("default      the base model, unadapted")
    for item in profiles:
        info = item.info
        click.echo(f"{item.name:<12} {info['created']}  song {info['support']['audio']}  "
                   f"base {info['base']['source']} ({info['base']['weights_sha256'][:12]})")


@profile.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print its profile.json (all the metadata) as JSON.")
def show(name, as_json) -> None:
    """A profile's metadata and its fit on the support song before and after adaptation."""
    user_errors(_show)(name, as_json)


def _show(name, as_json) -> None:
    from pdmer.profiles.profile import load

    item = load(name)
    if as_json:
        click.echo(json.dumps(item.info, indent=1))
    elif item.folder is None:
        click.echo("default: the base model itself, unadapted")
    else:
        for label, value in describe(item.info):
            click.echo(f"{label:<11} {value}")
        print_fit(item.info)


ADAPTED = {"all": "every parameter", "head": "all but the front end", "output": "the last layer",
           "bias": "the last layer's bias (an offset)"}


def describe(info: dict) -> list[tuple[str, str]]:
    """``show``'s lines; '?' for what a profile.json lacks, so that a profile from another version still shows."""
    base, adaptation = info.get("base", {}), info.get("adaptation", {})
    support, curve = info.get("support", {}), info.get("curve", {})
    params = adaptation.get("params", "?")
    return [
        ("name", info.get("name", "?")),
        ("created", info.get("created", "?")),
        ("base model", f"{base.get('source', '?')} ({base.get('architecture', '?')} {base.get('preset', '?')}, "
                       f"weights {str(base.get('weights_sha256', '?'))[:12]})"),
        ("song", f"{support.get('audio', '?')} ({support.get('seconds', '?')} s, "
                 f"{support.get('steps', '?')} labelled steps)"),
        ("curve", f"{curve.get('file', '?')} ({curve.get('points', '?')} points, scale {curve.get('scale', '?')})"),
        ("adapted", f"{params}: {ADAPTED[params]}" if params in ADAPTED else params),
        ("steps / lr", f"{adaptation.get('steps', '?')} / {adaptation.get('lr', '?')}"),
        ("weights", str(info.get("weights_sha256", "?"))[:12]),
        ("pdmer", info.get("pdmer_version", "?")),
    ]


@profile.command("delete")
@click.argument("name")
def delete(name) -> None:
    """Delete profile NAME."""
    user_errors(_delete)(name)


def _delete(name) -> None:
    from pdmer.profiles.profile import delete as delete_profile

    delete_profile(name)
    click.echo(f"profile {name!r} deleted")


@profile.command("export")
@click.argument("name")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="A new folder.")
def export(name, output) -> None:
    """Copy profile NAME's files into a folder (to move it to another machine: pdmer profile import FOLDER)."""
    user_errors(_export)(name, output)


def _export(name, output) -> None:
    from pdmer.fileio import check_output
    from pdmer.profiles.profile import export_profile

    check_output(output, "--output", folder=True)
    click.echo(f"exported {name!r} to {export_profile(name, output)}")


@profile.command("import")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--name", help="Store it under this name (default: its own).")
@click.option("--force", is_flag=True, help="Replace a profile of the same name.")
def import_command(folder, name, force) -> None:
    """Store a profile exported with pdmer profile export."""
    user_errors(_import)(folder, name, force)


def _import(folder, name, force) -> None:
    from pdmer.profiles.profile import import_profile

    made = import_profile(folder, name=name, force=force)
    click.echo(f"imported profile {made.name!r}", file=sys.stdout)
