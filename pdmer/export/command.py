"""``pdmer export`` (checkpoint -> checked ONNX file) and ``pdmer predict`` (a song's V-A curve on the ONNX runtime)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pdmer.cli import SCALES

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
@click.option("--profile", "profile_names", multiple=True,
              help="A listener profile (pdmer profile list); checked against --model. Repeat it to plot several "
                   "listeners' curves on one --plot.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write time_s,valence,arousal rows here.")
@click.option("--json", "as_json", is_flag=True, help="Print the curve as JSON instead of CSV.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Write a PNG: valence and arousal over time (one line per --profile) over the song's loudness.")
@click.option("--truth", "truth_path", type=click.Path(dir_okay=False),
              help="With --plot: a ground-truth curve CSV (time_s,valence,arousal) to draw dashed beside them.")
@click.option("--truth-scale", type=click.Choice(SCALES), default="[-1,1]", show_default=True,
              help="The scale the --truth curve's values are on.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="onnxruntime's provider (and the global encoder's device).")
@click.option("--imagebind", type=click.Path(dir_okay=False), help="imagebind_huge.pth, for ImageBind-based models.")
def predict(audio, **options) -> None:
    """The V-A curve of a whole song, one row per 0.5 s (time_s is the start of each step), on the ONNX runtime.

    Global vectors use the windows the model was trained with (by default trailing 30 s: causal, as the live stream),
    and 60-step windows slide over the song as in evaluation. Without --csv or --json the CSV goes to stdout; with
    several --profile, only the plot is written."""
    from pdmer.cli import user_errors

    several = len(options["profile_names"]) > 1
    if several and (options["csv_path"] or options["as_json"]):
        raise click.UsageError("--csv and --json write one curve: give one --profile (run predict once per profile), "
                               "or use --plot to see several")
    if several and not options["plot_path"]:
        raise click.UsageError("several --profile are for one plot: add --plot out.png")
    if options["truth_path"] and not options["plot_path"]:
        raise click.UsageError("--truth is drawn on the plot: add --plot out.png")
    user_errors(_predict)(audio, **options)


def _predict(audio, model_path, profile_names, csv_path, as_json, plot_path, truth_path, truth_scale, device,
             imagebind) -> None:
    from pdmer.export.predict import load_deployed, predict_each
    from pdmer.fileio import atomic_path

    truth = None
    if truth_path:  # read first: a bad curve fails before minutes of prediction
        from pdmer.profiles.curve import read_curve

        times, values = read_curve(truth_path, scale=truth_scale)
        truth = (times, values, f"ground truth ({Path(truth_path).name})")
    deployments = [load_deployed(model_path, profile=name, device=device, imagebind=imagebind)
                   for name in profile_names or [None]]
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
            bar = None

    predictions, waveform, rate = predict_each(deployments, audio, progress=progress)
    prediction = predictions[0]
    if csv_path:
        with atomic_path(csv_path) as temporary:
            temporary.write_text(prediction.to_csv())
        click.echo(f"wrote {csv_path}: {len(prediction.times)} steps of 0.5 s", err=True)
    if plot_path:
        from pdmer.plot import plot_curves

        curves = {deployed.profile: p for deployed, p in zip(deployments, predictions)}
        plot_curves(plot_path, curves, waveform, rate, song=prediction.song, model=prediction.model, truth=truth)
        click.echo(f"wrote {plot_path}", err=True)
    if as_json:
        click.echo(prediction.to_json())
    elif not csv_path and len(predictions) == 1:
        click.echo(prediction.to_csv(), nl=False)
