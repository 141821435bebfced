"""The ``pdmer`` command. Starts fast: torch is imported inside the commands that need it, never at the top."""

from __future__ import annotations

import json
import sys
import warnings

import click

from pdmer import __version__
from pdmer.cli_common import SCALES, user_errors

# Listed here, not imported, to keep torch out of `pdmer --help`; tests check they match the real lists.
PRESET_NAMES = ("paper", "small", "authors")  # pdmer.model.config.PRESETS
ENCODER_NAMES = ("musicnn", "imagebind", "descriptors")  # pdmer.model.encoders.ENCODER_NAMES
MUSICNN_FEATURES = ("penultimate", "mean_pool", "max_pool", "taggram")  # pdmer.model.encoders.FEATURE_DIMS
ADAPT_PARAMS = ("all", "head", "output", "bias")  # pdmer.model.adapt.PARAMS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pdmer")
def main() -> None:
    """Track the emotion of music (valence, arousal at 2 Hz) as one listener hears it.

    The main program is pdmer-stream: it streams the values live over OSC, from an input device or a file (see
    pdmer-stream --help). These commands predict whole songs, make listener profiles, train and evaluate."""
    warnings.showwarning = show_warning


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings meant for users (pdmer's DataWarning) as one plain line; others as Python prints them."""
    if category.__name__ == "DataWarning":
        click.echo(f"pdmer: warning: {message}", err=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@main.command("model-info")
@click.option("--preset", type=click.Choice(PRESET_NAMES), default="paper", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@user_errors
def model_info(preset: str, as_json: bool) -> None:
    """Trainable parameter counts of the DSAML model, per part and in total (global encoder excluded)."""
    import torch

    from pdmer.model import DSAML, ModelConfig
    from pdmer.model.dsaml import parameter_report

    config = ModelConfig.preset(preset)
    with torch.device("meta"):  # counts need shapes only: no memory, no init time
        report = parameter_report(DSAML(config))
    if as_json:
        click.echo(json.dumps({"preset": preset, "trainable_parameters": report, "config": config.to_dict()}, indent=2))
        return
    click.echo(f"DSAML preset {preset!r} (D {config.hidden_dim}, global {config.global_dim}-d)")
    for part, count in report.items():
        click.echo(f"  {part:<10} {count:>12,}")


@main.command()
@click.option("--audio", type=click.Path(dir_okay=False), help="Audio file (wav/flac/ogg/mp3); default: a generated clip.")
@click.option("--imagebind", type=click.Path(dir_okay=False), help="Path to imagebind_huge.pth for the global feature.")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="A pdmer model checkpoint (.safetensors).")
@click.option("--authors-checkpoint", type=click.Path(dir_okay=False), help="epoch_N.pt from the authors' code.")
@click.option("--seconds", type=click.FloatRange(min=0.5), default=20.0, show_default=True, help="Length to analyse.")
@user_errors
def demo(
    audio: str | None, imagebind: str | None, checkpoint: str | None, authors_checkpoint: str | None, seconds: float
) -> None:
    """Run DSAML on a clip and print (valence, arousal) for every 0.5 s."""
    if checkpoint and authors_checkpoint:
        raise click.UsageError("give --checkpoint or --authors-checkpoint, not both")
    from pdmer.demo import SAMPLE_RATE, generated_clip, run_demo

    if audio:
        from pdmer.audio import load_audio

        waveform, sample_rate = load_audio(audio)
        waveform = waveform[: int(seconds * sample_rate)]
    else:
        waveform, sample_rate = generated_clip(seconds), SAMPLE_RATE
    result = run_demo(
        waveform,
        sample_rate,
        imagebind_checkpoint=imagebind,
        checkpoint=checkpoint,
        authors_checkpoint=authors_checkpoint,
    )
    click.echo(f"# {result.source}")
    click.echo("time_s\tvalence\tarousal")
    for time, (valence, arousal) in zip(result.times, result.va):
        click.echo(f"{time:.1f}\t{valence:+.4f}\t{arousal:+.4f}")


@main.command()
@click.argument("audio", type=click.Path(dir_okay=False))
@click.option("--encoder", type=click.Choice(ENCODER_NAMES), default="musicnn", show_default=True)
@click.option("--imagebind", type=click.Path(dir_okay=False), help="Path to imagebind_huge.pth (for --encoder imagebind).")
@click.option("--window", nargs=2, type=float, metavar="START END", help="Seconds of the file to embed (default: all).")
@click.option("--features", type=click.Choice(MUSICNN_FEATURES), default="penultimate", show_default=True,
              help="musicnn output averaged over the window.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write the vector as .npy instead of printing JSON.")
@user_errors
def embed(audio, encoder, imagebind, window, features, output) -> None:
    """Global feature vector of an audio file (or a window of it), as DSAML's global input."""
    from pdmer.audio import load_audio
    from pdmer.fileio import check_output

    check_output(output, "--output")
    from pdmer.model.encoders import load_global_encoder

    waveform, sample_rate = load_audio(audio)
    options = {"features": features} if encoder == "musicnn" else {}
    model = load_global_encoder(encoder, imagebind_checkpoint=imagebind, **options)
    vector = model.embed(waveform, sample_rate, window=tuple(window) if window else None)
    if output:
        import numpy as np

        from pdmer.fileio import atomic_path

        with atomic_path(output) as temporary, open(temporary, "wb") as file:
            np.save(file, vector.numpy())
        click.echo(f"wrote {output}: {model.name} {vector.numel()}-d")
        return
    click.echo(json.dumps({"encoder": model.name, "dim": vector.numel(), "vector": [round(v, 6) for v in vector.tolist()]}))


@main.command("convert-musicnn")
@click.option("--wheel", required=True, type=click.Path(dir_okay=False),
              help="musicnn-0.1.0-py3-none-any.whl (pip download --no-deps musicnn==0.1.0).")
@click.option("--output", type=click.Path(dir_okay=False), help="Default: the package's own pdmer/assets file.")
@user_errors
def convert_musicnn(wheel: str, output: str | None) -> None:
    """Convert MSD_musicnn's TF checkpoint inside the musicnn wheel to safetensors (no TensorFlow needed), and write
    its ONNX graph beside it (the global encoder's CPU runtime)."""
    from pdmer.convert.musicnn import convert_wheel, write_onnx
    from pdmer.fileio import check_output
    from pdmer.model.musicnn import WEIGHTS

    check_output(output, "--output")
    weights = convert_wheel(wheel, output or WEIGHTS)
    click.echo(f"wrote {weights}")
    click.echo(f"wrote {write_onnx(weights, weights.with_suffix('.onnx'))}")


DATASET_FORMATS = ("deam", "emomusic", "pmemo", "vgmidi", "4q", "emopia", "plain")  # pdmer.data.load.FORMATS


REAL_TASKS = ("curves", "levels", "listeners")  # pdmer.evaluate.real.EVALUATIONS


@main.command("eval")
@click.argument("checkpoints", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--data", required=True, multiple=True, type=click.Path(file_okay=False),
              help="Dataset folder (DEAM, PMEmo, VGMIDI, 4Q, EMOPIA or plain); repeat it for --task real.")
@click.option("--format", "data_format", type=click.Choice(DATASET_FORMATS), help="Dataset layout (default: detected).")
@click.option("--split", default="test", show_default=True, help="Split to evaluate on ('all': the whole dataset).")
@click.option("--task", type=click.Choice(["dmer", "pdmer", "both", "real", *REAL_TASKS]), default="both",
              show_default=True, help="dmer/pdmer/both: the paper's Tables 1-2. real: curves, levels and listeners "
              "(or one of them) on every --data, with the training mean beside each model.")
@click.option("--support", type=click.Choice(["song", "frames"]), default="song", show_default=True,
              help="Personalized task: adapt on one song per listener, or on the first 60 labels of each curve.")
@click.option("--baseline", type=click.Choice(["training-mean", "support-mean"]),
              help="Score a trivial predictor instead of a checkpoint.")
@click.option("--train-split", help="Split the baseline's mean comes from (e.g. train).")
@click.option("--raters", is_flag=True, help="DEAM: load the per-rater curves too (needed for the personalized task).")
@click.option("--audio-dir", type=click.Path(file_okay=False), help="DEAM: folder of <song_id>.mp3 files.")
@click.option("--only-with-audio", is_flag=True, help="Evaluate only the songs whose audio is at hand.")
@click.option("--songs", help="Evaluate only these songs of the split (comma-separated ids; with several --data, "
              "in the datasets that hold them).")
@click.option("--scale", type=click.Choice(SCALES), help="Plain format: the annotations' scale (default: dataset.json).")
@click.option("--steps", type=click.IntRange(min=0),
              help="Adaptation steps (default: as the checkpoint was meta-trained, else 16).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              help="Adaptation learning rate (default: as the checkpoint was meta-trained, else 5e-3).")
@click.option("--params", "adapt_params", type=click.Choice(ADAPT_PARAMS),
              help="Parameters adaptation changes (default: as the checkpoint was meta-trained, else all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Chooses each listener's support song.")
@click.option("--imagebind", type=click.Path(dir_okay=False), help="imagebind_huge.pth, for ImageBind-based checkpoints.")
@click.option("--soundfont", type=click.Path(dir_okay=False), help="MIDI datasets: the .sf2 to render with.")
@click.option("--peer", "peers", multiple=True, type=click.Path(dir_okay=False),
              help="--task real: a peer's level results (benchmarks/peer_vibenet.py --json) to show beside ours.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), help="Feature cache folder (default: user cache).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the full report (every curve) as JSON.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), help="Write the tables as Markdown.")
@user_errors
def evaluate(checkpoints, data, data_format, split, task, support, baseline, train_split, raters, audio_dir,
             only_with_audio, songs, scale, steps, lr, adapt_params, seed, imagebind, soundfont, peers, cache_dir,
             json_path, markdown_path) -> None:
    """Score model CHECKPOINTS (DSAML, DAMFF, CRNN; or a --baseline) on a dataset split.

    --task dmer/pdmer/both: traditional and personalized DMER, the mean CCC, PCC and RMSE per dimension as Markdown
    tables laid out like the DSAML paper's Tables 1-2, a row per model (with the paper's numbers beside ours on
    DEAM and PMEmo). --task real: on every --data, the evaluations its labels allow: curves (per song against its
    mean curve), levels (song means against quadrants: AUCs and quadrant accuracy) and listeners (CCC on a
    listener's other song before and after a one-song profile, with a bootstrap interval); without CHECKPOINTS,
    the embedded default model. --json writes every song's scores."""
    from pdmer.data.load import load_dataset
    from pdmer.fileio import atomic_path, check_output

    check_output(json_path, "--json")  # before the evaluation, not after
    check_output(markdown_path, "--markdown")
    song_list = [s.strip() for s in songs.split(",") if s.strip()] if songs else None
    progress = (lambda text: click.echo(f"\r\033[K{text}", nl=False, err=True)) if sys.stderr.isatty() else None
    if task in ("real", *REAL_TASKS):
        if checkpoints and baseline:
            raise click.UsageError("give CHECKPOINTS or --baseline, not both (the training mean is always beside them)")
        from pdmer.evaluate.real import run_report

        report, table = run_report(
            [load_dataset(folder, data_format, raters=raters, audio_dir=audio_dir, scale=scale) for folder in data],
            checkpoints, baseline=baseline, evaluations=REAL_TASKS if task == "real" else (task,), split=split,
            train_split=train_split or "train", songs=song_list, only_with_audio=only_with_audio, seed=seed,
            steps=steps, lr=lr, params=adapt_params, imagebind=imagebind, soundfont=soundfont, cache_dir=cache_dir,
            peers=peers, progress=progress)
        full = report
    else:
        if bool(checkpoints) == bool(baseline):
            raise click.UsageError("give CHECKPOINTS or --baseline, not both and not neither")
        if len(data) != 1:
            raise click.UsageError(f"--task {task} evaluates one --data at a time (several: --task real)")
        from pdmer.evaluate.report import markdown
        from pdmer.evaluate.run import baseline_predictor, evaluate as run_evaluation, model_predictor

        dataset = load_dataset(data[0], data_format, raters=raters, audio_dir=audio_dir, scale=scale)
        if baseline:
            predictors = [baseline_predictor(baseline, dataset, train_split)]
        else:  # every checkpoint is checked before the first is scored
            predictors = [model_predictor(path, dataset, cache_dir=cache_dir, imagebind=imagebind, steps=steps, lr=lr,
                                          params=adapt_params)
                          for path in checkpoints]
        reports = [run_evaluation(dataset, predictor=predictor, split=split, support=support, seed=seed,
                                  tasks=("dmer", "pdmer") if task == "both" else (task,),
                                  only_with_audio=only_with_audio, needs_audio=not baseline, progress=progress,
                                  songs=song_list)
                   for predictor in predictors]
        progress and click.echo("\r\033[K", nl=False, err=True)
        table = markdown(reports)
        full = reports[0] if len(reports) == 1 else reports
    for path, text in ((json_path, json.dumps(full, indent=1)), (markdown_path, table)):
        if path:
            with atomic_path(path) as temporary:
                temporary.write_text(text + "\n")
    click.echo(table)


@main.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same benchmark (audio and curves).")
@click.option("--n-train-songs", type=click.IntRange(min=0), default=40, show_default=True)
@click.option("--n-val-songs", type=click.IntRange(min=0), default=16, show_default=True)
@click.option("--n-test-songs", type=click.IntRange(min=0), default=16, show_default=True)
@click.option("--n-train-listeners", type=click.IntRange(min=0), default=16, show_default=True)
@click.option("--n-val-listeners", type=click.IntRange(min=0), default=4, show_default=True)
@click.option("--n-test-listeners", type=click.IntRange(min=0), default=6, show_default=True)
@click.option("--songs-per-train-listener", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--song-seconds", type=click.FloatRange(min=1), default=45.0, show_default=True)
@click.option("--bias-sd", type=click.FloatRange(0, 1), default=0.12, show_default=True,
              help="Spread of listeners' offsets (a variant: only the default is calibrated to DEAM).")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@user_errors
def synth(out, seed, force, **sizes) -> None:
    """Write the synthetic per-listener benchmark to OUT (pdmer's plain dataset format).

    Procedural music whose sections change tempo, loudness, register, brightness, mode, dissonance and key, and
    simulated listeners who each hear it their own way (gain, bias, lag, which cues drive their arousal, valence
    polarity, noise). Splits: train; val and test hold out unseen listeners on unseen songs. The rules are in
    pdmer/data/synth/; OUT/dataset.json records the seed, every listener's mapping and the baseline scores."""
    from pdmer.data.synth import make_benchmark
    from pdmer.fileio import check_output

    check_output(out, "OUT", folder=True)
    root = make_benchmark(out, seed, overwrite=force, **sizes)
    info = json.loads((root / "dataset.json").read_text())["synth"]
    click.echo(f"wrote {root}: {len(info['songs'])} songs, {len(info['listeners'])} listeners, seed {seed}")
    click.echo("mean CCC on the listeners' curves (valence, arousal):")
    for name, scores in info["baselines_ccc"].items():
        click.echo(f"  {name:<18} {scores['valence']:.3f}  {scores['arousal']:.3f}")


@main.command("data")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--format", "data_format", type=click.Choice(DATASET_FORMATS), help="Dataset layout (default: detected).")
@click.option("--raters", is_flag=True, help="DEAM: load the per-rater curves too.")
@click.option("--audio-dir", type=click.Path(file_okay=False), help="DEAM: folder of <song_id>.mp3 files.")
@click.option("--scale", type=click.Choice(SCALES), help="Plain format: the annotations' scale (default: dataset.json).")
@click.option("--features", is_flag=True,
              help="Also compute every song's features into the cache (MIDI is rendered first).")
@click.option("--encoder", type=click.Choice(("musicnn", "descriptors")), default="musicnn", show_default=True,
              help="With --features: the global encoder whose vectors are cached.")
@click.option("--split", help="With --features: only the songs of this split (e.g. val).")
@click.option("--soundfont", type=click.Path(dir_okay=False), help="MIDI datasets: the .sf2 to render with "
              "(default: $PDMER_SOUNDFONT, else Debian's FluidR3_GM).")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), help="Feature cache folder (default: user cache).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@user_errors
def data_command(folder, data_format, raters, audio_dir, scale, features, encoder, split, soundfont, cache_dir,
                 as_json) -> None:
    """Check a dataset and summarise it: songs, audio at hand, listeners, durations, labels, splits, problems.

    Layouts: DEAM, PMEmo, VGMIDI, 4Q, EMOPIA and pdmer's plain format (detected)."""
    from pdmer.data.load import load_dataset
    from pdmer.data.summary import summarise

    dataset = load_dataset(folder, data_format, raters=raters, audio_dir=audio_dir, scale=scale)
    summary = summarise(dataset)
    if features:
        from pdmer.data.features import FeatureCache
        from pdmer.data.render import MidiRenderer, with_rendered_audio
        from pdmer.model.encoders import load_global_encoder

        if split:
            dataset = dataset.split(split)
        if summary["songs_as_midi"]:
            dataset = with_rendered_audio(dataset, MidiRenderer(soundfont=soundfont, root=cache_dir))
        dataset.require_audio()
        cache = FeatureCache(load_global_encoder(encoder), root=cache_dir)
        with click.progressbar(list(dataset.songs.values()), label="features", file=sys.stderr) as songs:
            for song in songs:
                cache.song(song.audio)
        summary["features_computed"] = cache.computed
        summary["cache"] = str(cache.root)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    problems = summary.pop("problems")
    for key, value in summary.items():
        click.echo(f"{key:<24} {value}")
    click.echo(f"{'problems':<24} {len(problems) or 'none'}")
    for problem in problems:
        click.echo(f"  - {problem}")


def _register_commands() -> None:
    from pdmer.export.command import export, predict
    from pdmer.profiles.command import profile
    from pdmer.train.command import train

    for command in (train, export, predict, profile):
        main.add_command(command)


_register_commands()
