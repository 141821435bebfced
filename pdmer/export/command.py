"""``pdmer export`` (checkpoint -> checked ONNX file) and ``pdmer predict`` (a song's V-A curve on the ONNX runtime)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pdmer.cli_common import SCALES, user_errors

DEVICES = ("auto", "cpu", "cuda")  # pdmer.export.runtime.DEVICES


@click.command("export")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
def export(checkpoint, output) -> None:
    """Export a model CHECKPOINT (.safetensors) after its global encoder as ONNX: inputs log-mel slices, past local
    features and per-step global vectors; output V-A per step; dynamic batch and time. The file is checked
    (onnx.checker, and onnxruntime against torch within 1e-4) before it is written, atomically."""
    user_errors(_export)(checkpoint, output)


def _export(checkpoint, output) -> None:
    from pdmer.export.graph import export_onnx
    from pdmer.fileio import check_output
    from pdmer.model.checkpoint import deployment_metadata, load_model

    check_output(output, "--output")  # before the export and its checks, not after
    path = export_onnx(load_model(checkpoint), output, context=deployment_metadata(checkpoint))
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB), checked against torch")


@click.command("predict")
@click.argument("audio", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--model", "model_path", type=click.Path(dir_okay=False),
              help="A .onnx export (pdmer export) or a .safetensors checkpoint (exported in memory); default: the "
                   "embedded default model.")
@click.option("--profile", "profile_names", multiple=True,
              help="A listener profile (pdmer profile list); checked against --model. Repeat it to plot several "
                   "listeners' curves on one --plot.")
@click.option("--out-dir", type=click.Path(file_okay=False),
              help="Write one DIR/<song>.csv per AUDIO file (.json with --json); needed for several files.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write time_s,valence,arousal rows here.")
@click.option("--json", "as_json", is_flag=True, help="Print the curve as JSON instead of CSV (with --out-dir: write "
              ".json files).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Write a PNG: valence and arousal over time (one line per --profile) over the song's loudness.")
@click.option("--truth", "truth_path", type=click.Path(dir_okay=False),
              help="With --plot: a ground-truth curve CSV (time_s,valence,arousal) to draw dashed beside them.")
@click.option("--truth-scale", type=click.Choice(SCALES), default="[-1,1]", show_default=True,
              help="The scale the --truth curve's values are on.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="onnxruntime's provider (and the global encoder's device).")
@click.option("--imagebind", type=click.Path(dir_okay=False), help="imagebind_huge.pth, for ImageBind-based models.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPU threads for one song. One is the least CPU per song (threads wait on each other on short "
                   "steps); more finish one long song sooner.")
def predict(audio, **options) -> None:
    """The V-A curve of a whole song, one row per 0.5 s (time_s is the start of each step), on the ONNX runtime.

    The values are what `pdmer-stream --source FILE --fast` sends for the same file, step for step (within 1e-3):
    the slices start at the first sound, each step's value is the model's newest row over the 30 s up to it (nothing
    after a step changes it), global vectors come from the windows the model was trained with, and silent slices
    are left out (their rows read nan). Without --csv, --json or --out-dir the CSV goes to
    stdout; with several --profile, only the plot is written. Several AUDIO files run in one process (the model
    loads once) into --out-dir: a file that fails is reported by name, the others still get their curves, and the
    exit code is 2 if any failed."""
    several = len(options["profile_names"]) > 1
    if several and (options["csv_path"] or options["as_json"] or options["out_dir"]):
        raise click.UsageError("--csv, --json and --out-dir write one curve per song: give one --profile (run "
                               "predict once per profile), or use --plot to see several")
    if several and not options["plot_path"]:
        raise click.UsageError("several --profile are for one plot: add --plot out.png")
    if options["truth_path"] and not options["plot_path"]:
        raise click.UsageError("--truth is drawn on the plot: add --plot out.png")
    if len(audio) > 1 and not options["out_dir"]:
        raise click.UsageError(f"{len(audio)} audio files: add --out-dir DIR for their curves (one file per song)")
    if options["out_dir"] and (options["csv_path"] or options["plot_path"]):
        raise click.UsageError("--out-dir writes each song's curve itself: leave out --csv and --plot")
    if options["out_dir"]:
        user_errors(_predict_many)(audio, **options)
    else:
        user_errors(_predict)(audio[0], **options)


def load_deployments(model_path, profile_names, device, imagebind, threads):
    from pdmer.export.predict import load_deployed, use_threads

    use_threads(threads)
    return [load_deployed(model_path, profile=name, device=device, imagebind=imagebind, threads=threads,
                          encoder_threads=threads) for name in profile_names or [None]]


def song_progress(audio):
    """A progress bar for one song's global features, on a terminal and for songs long enough to need one."""
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if total < 8 or not sys.stderr.isatty():  # short songs need no bar; logs get none
            return
        if bar is None:
            bar = click.progressbar(length=total, label=f"{Path(audio).name}: global features", file=sys.stderr)
        bar.update(done - bar.pos)
        if done == total:
            bar.render_finish()
            bar = None

    return progress


def _predict(audio, model_path, profile_names, out_dir, csv_path, as_json, plot_path, truth_path, truth_scale,
             device, imagebind, threads) -> None:
    from pdmer.fileio import check_output

    check_output(csv_path, "--csv")  # before minutes of prediction, not after
    check_output(plot_path, "--plot")
    from pdmer.export.predict import predict_each

    truth = None
    if truth_path:  # read first: a bad curve fails before minutes of prediction
        from pdmer.profiles.curve import read_curve

        times, values = read_curve(truth_path, scale=truth_scale)
        truth = (times, values, f"ground truth ({Path(truth_path).name})")
    deployments = load_deployments(model_path, profile_names, device, imagebind, threads)
    predictions, waveform, rate = predict_each(deployments, audio, progress=song_progress(audio))
    prediction = predictions[0]
    if csv_path:
        from pdmer.data.plain import write_curve_csv

        write_curve_csv(csv_path, prediction.times, prediction.va)
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


def _predict_many(audio, model_path, profile_names, out_dir, csv_path, as_json, plot_path, truth_path,
                  truth_scale, device, imagebind, threads) -> None:
    """Each file's curve into ``out_dir``; a file that fails is named and skipped, and the others go on."""
    from pdmer.data.plain import write_curve_csv
    from pdmer.errors import InputError, PdmerError
    from pdmer.fileio import atomic_path, check_output

    suffix = ".json" if as_json else ".csv"
    out_dir = check_output(out_dir, "--out-dir", folder=True)
    from pdmer.export.predict import predict_each

    targets, writers = {}, {}  # song -> its output; output -> the song that writes it
    for path in audio:  # two songs that would write one file: refused before any work
        target = out_dir / (Path(path).stem + suffix)
        if target in writers:
            raise InputError(f"{writers[target]} and {path} would both write {target}: rename one, or predict them "
                             "into different --out-dir folders")
        targets[path], writers[target] = target, path
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create the output folder {out_dir}: {error.strerror}") from None
    deployed = load_deployments(model_path, profile_names, device, imagebind, threads)
    failed = []
    bar = click.progressbar(audio, label="pdmer predict", file=sys.stderr, item_show_func=lambda p: p and Path(p).name,
                            show_pos=True) if sys.stderr.isatty() and len(audio) > 1 else None
    for path in bar or audio:
        try:
            prediction = predict_each(deployed, path)[0][0]
        except PdmerError as error:
            failed.append(path)
            named = str(error) if str(path) in str(error) else f"{path}: {error}"
            click.echo(f"{chr(10) if bar else ''}pdmer: error: {named}", err=True)
            continue
        if as_json:
            with atomic_path(targets[path]) as temporary:
                temporary.write_text(prediction.to_json() + "\n")
        else:
            write_curve_csv(targets[path], prediction.times, prediction.va)
        if bar is None:
            click.echo(f"wrote {targets[path]}: {len(prediction.times)} steps of 0.5 s", err=True)
    if bar is not None:
        bar.render_finish()
    done = len(audio) - len(failed)
    click.echo(f"pdmer predict: {done} of {len(audio)} files -> {out_dir}"
               + (f"; failed: {', '.join(map(str, failed))}" if failed else ""), err=True)
    if failed:
        sys.exit(2)
