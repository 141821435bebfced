"""``pdmer export`` (checkpoint -> checked ONNX file) and ``pdmer predict`` (a song's V-A curve on the ONNX runtime)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

DEVICES = ("auto", "cpu", "cuda")  # pdmer.export.runtime.DEVICES


@click.command("export")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
def export(checkpoint, output) -> None:
    """Export a model CHECKPOINT (.safetensors) after its global encoder as ONNX: inputs log-mel slices, past local
    features and per-step global vectors; output V-A per step; dynamic batch and time. The file is checked
    (onnx.checker, and onnxruntime against torch within 1e-4) before it is written, atomically."""
    from pdmer.cli import user_errors

    user_errors(_export)(checkpoint, output)


def _export(checkpoint, output) -> None:
    from pdmer.export.graph import export_onnx
    from pdmer.model.checkpoint import deployment_metadata, load_model

    path = export_onnx(load_model(checkpoint), output, context=deployment_metadata(checkpoint))
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB), checked against torch")


@click.command("predict")
@click.argument("audio", type=click.Path(dir_okay=False))
@click.option("--model", "model_path", type=click.Path(dir_okay=False),
              help="A .onnx export (pdmer export) or a .safetensors checkpoint (exported in memory); default: the "
                   "embedded default model.")
@click.option("--profile", "profile_name", help="A listener profile (pdmer profile list); checked against --model.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write time_s,valence,arousal rows here.")
@click.option("--json", "as_json", is_flag=True, help="Print the curve as JSON instead of CSV.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a PNG of the curve over loudness.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="onnxruntime's provider (and the global encoder's device).")
@click.option("--imagebind", type=click.Path(dir_okay=False), help="imagebind_huge.pth, for ImageBind-based models.")
def predict(audio, model_path, profile_name, csv_path, as_json, plot_path, device, imagebind) -> None:
    """The V-A curve of a whole song, one row per 0.5 s (time_s is the start of each step), on the ONNX runtime.

    Global vectors use the windows the model was trained with (by default trailing 30 s: causal, as the live stream),
    and 60-step windows slide over the song as in evaluation. Without --csv or --json the CSV goes to stdout."""
    from pdmer.cli import user_errors

    user_errors(_predict)(audio, model_path, profile_name, csv_path, as_json, plot_path, device, imagebind)


def _predict(audio, model_path, profile_name, csv_path, as_json, plot_path, device, imagebind) -> None:
    from pdmer.export.predict import load_deployed, predict_file
    from pdmer.fileio import atomic_path

    deployed = load_deployed(model_path, profile=profile_name, device=device, imagebind=imagebind)
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if total < 8 or not sys.stderr.isatty():  # short songs need no bar; logs get none
            return
        if bar is None:
            bar = click.progressbar(length=total, label=f"{Path(audio).name}: global features", file=sys.stderr)
        bar.update(1)
        if done == total:
            bar.render_finish()

    prediction, waveform, rate = predict_file(deployed, audio, progress=progress)
    if csv_path:
        with atomic_path(csv_path) as temporary:
            temporary.write_text(prediction.to_csv())
        click.echo(f"wrote {csv_path}: {len(prediction.times)} steps of 0.5 s", err=True)
    if plot_path:
        from pdmer.plot import plot_prediction

        plot_prediction(plot_path, prediction, waveform, rate,
                        title=f"{prediction.song}: valence and arousal as profile {deployed.profile!r} hears it "
                              f"({deployed.name})")
        click.echo(f"wrote {plot_path}", err=True)
    if as_json:
        click.echo(prediction.to_json())
    elif not csv_path:
        click.echo(prediction.to_csv(), nl=False)
