"""The three evaluations that matter on real data (DESIGN.md §11), each for any predictor:

- **curves**: does it move with the music? CCC / PCC / RMSE per song against the song's mean curve (VGMIDI pieces
  against their listeners' mean, DEAM clips against DEAM's average), averaged over songs;
- **levels**: does a calm sad song come out calm and sad? The song-mean prediction against song-level quadrants
  (4Q, EMOPIA): AUC of mean arousal for +A vs -A, of mean valence for +V vs -V, and the quadrant accuracy of the
  signs of the two means;
- **listeners**: does a profile from one song help that person on another? For every listener with two songs in the
  split: CCC on song B before and after adapting on song A (``predictor.personalize``: the routine and settings
  ``pdmer profile create`` uses), the mean gain per dimension and its 95 % bootstrap interval over listeners.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pdmer.data.curves import QUADRANT_SIGNS, CurveSet, quadrant_of, warn
from pdmer.errors import InputError
from pdmer.evaluate.predictors import Predictor
from pdmer.evaluate.report import number
from pdmer.evaluate.tasks import mean_scores, score_curve, traditional
from pdmer.metrics import auc, bootstrap_interval

EVALUATIONS = ("curves", "levels", "listeners")
Progress = Callable[[str], None]


def curves(part: CurveSet, predictor: Predictor, *, progress: Progress | None = None) -> dict:
    results = traditional(part, predictor, progress=progress)
    return {"songs": len(results), "mean": mean_scores(results),
            "per_song": [{"song": r.song, "steps": r.steps, **r.scores} for r in results]}


def levels(part: CurveSet, predictor: Predictor, *, progress: Progress | None = None) -> dict:
    """Song means against quadrants; a song whose audio cannot be read is skipped with a warning naming it."""
    rows, skipped = [], []
    for done, (song, quadrant) in enumerate(sorted(part.quadrants.items()), start=1):
        try:
            va = predictor.predict_song(song)
        except InputError as error:
            warn(f"levels: skipping {song}: {error}")
            skipped.append(song)
            continue
        valence, arousal = (float(v) for v in np.nanmean(va, axis=0))
        spread = np.nanstd(va, axis=0) if len(va) > 1 else np.zeros(2)  # within the song: does the curve move?
        rows.append({"song": song, "quadrant": quadrant, "valence": valence, "arousal": arousal,
                     "predicted_quadrant": quadrant_of(valence, arousal),
                     "valence_std": float(spread[0]), "arousal_std": float(spread[1])})
        progress and progress(f"levels {done}/{len(part.quadrants)}")
    if not rows:
        raise InputError(f"{part.name}: no song with a quadrant could be scored")
    return {"songs": len(rows), "skipped": skipped, **level_scores(rows), "per_song": rows}


def level_scores(rows: list[dict]) -> dict[str, float]:
    """AUCs of the song means for the signs of their quadrants, and quadrant accuracy."""
    signs = np.array([QUADRANT_SIGNS[r["quadrant"]] for r in rows])
    scores = {}
    for column, dim in enumerate(("valence", "arousal")):
        positive = signs[:, column] > 0
        values = np.array([r[dim] for r in rows])
        scores[f"{dim}_auc"] = auc(values, positive) if 0 < positive.sum() < len(rows) else float("nan")
    scores["quadrant_accuracy"] = float(np.mean([r["quadrant"] == r["predicted_quadrant"] for r in rows]))
    for dim in ("valence", "arousal"):  # the least a song's curve moves (a constant predictor: 0)
        scores[f"{dim}_min_std"] = float(min(r.get(f"{dim}_std", 0.0) for r in rows))
    return scores


def listeners(part: CurveSet, predictor: Predictor, *, seed: int = 0, progress: Progress | None = None) -> dict:
    """Base vs one-song-profile CCC on each listener's other song. ``seed`` picks which song is the support."""
    tasks = part.by_listener(min_songs=2)
    if not tasks:
        raise InputError(f"{part.name}: no listener has two songs in it")
    rng = np.random.default_rng(seed)
    rows = []
    for done, (listener, songs) in enumerate(tasks.items(), start=1):
        support_index = int(rng.integers(len(songs)))
        support = songs[support_index]
        query = [c for i, c in enumerate(songs) if i != support_index][0]  # the tool gave each listener two songs
        before = score_curve(predictor.predict(query), query).scores
        after = score_curve(predictor.personalize([support]).predict(query), query).scores
        rows.append({"listener": listener, "support": support.song, "query": query.song,
                     **{f"{dim}_ccc_before": before[f"{dim}_ccc"] for dim in ("valence", "arousal")},
                     **{f"{dim}_ccc_after": after[f"{dim}_ccc"] for dim in ("valence", "arousal")}})
        progress and progress(f"listeners {done}/{len(tasks)}")
    return {"listeners": len(rows), "seed": seed, **gain_summary(rows), "per_listener": rows}


def gain_summary(rows: list[dict]) -> dict:
    out = {}
    for dim in ("valence", "arousal"):
        before = np.array([r[f"{dim}_ccc_before"] for r in rows])
        after = np.array([r[f"{dim}_ccc_after"] for r in rows])
        low, high = bootstrap_interval(after - before)
        out[dim] = {"ccc_before": float(before.mean()), "ccc_after": float(after.mean()),
                    "gain": float((after - before).mean()), "gain_low": float(low), "gain_high": float(high),
                    "raised": int((after > before).sum())}
    return out


def run(part: CurveSet, predictor: Predictor, *, evaluations=EVALUATIONS, seed: int = 0,
        progress: Progress | None = None) -> dict:
    """Whichever of the three evaluations the split has labels for."""
    out = {}
    if "curves" in evaluations and part.curves:
        out["curves"] = curves(part, predictor, progress=progress)
    if "levels" in evaluations and part.quadrants:
        out["levels"] = levels(part, predictor, progress=progress)
    if "listeners" in evaluations and part.by_listener(min_songs=2):
        out["listeners"] = listeners(part, predictor, seed=seed, progress=progress)
    return out


def evaluation_split(dataset: CurveSet, split: str, songs: list[str] | None) -> CurveSet:
    """``split`` of the dataset ("all", or a dataset without named splits: all of it), cut to ``songs`` where it
    holds any of them."""
    if split in dataset.splits:
        part = dataset.split(split)
    elif split == "all" or not dataset.splits:
        part = dataset
    else:
        raise InputError(f"{dataset.name} has no split {split!r} (it has {', '.join(sorted(dataset.splits))}): "
                         "pass --split with one of them")
    if songs and set(songs) & set(part.songs):
        part = part.select(songs=[s for s in songs if s in part.songs], name=f"{part.name}:{','.join(songs)}")
    return part


def training_mean(dataset: CurveSet, part: CurveSet, train_split: str):
    """The trivial baseline: the training split's mean (else the mean of every song not evaluated)."""
    from pdmer.evaluate.predictors import ConstantPredictor

    if train_split in dataset.splits:
        return ConstantPredictor.training_mean(dataset.split(train_split))
    rest = [s for s in dataset.songs if s not in part.songs]
    if not rest:
        raise InputError(f"{dataset.name} has no split {train_split!r} and no song outside the evaluated ones to "
                         "take a training mean from")
    return ConstantPredictor.training_mean(dataset.select(songs=rest))


def fmt(value: float, sign: bool = False) -> str:
    if value != value:  # NaN: the split lacks one of the classes
        return "-"
    text = number(value)
    return f"+{text}" if sign and not text.startswith("-") else text


def markdown(report: dict) -> str:
    """One table per evaluation, a row per (model, dataset), the peers' rows under the levels."""
    lines = [f"# pdmer eval: {', '.join(report['models'])}", ""]
    rows = report["results"]
    curve_rows = [r for r in rows if "curves" in r["evaluations"]]
    if curve_rows:
        lines += ["## Curves: per song against its mean curve (mean over songs)", "",
                  "| Model | Data | Songs | Arousal CCC | PCC | RMSE | Valence CCC | PCC | RMSE |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in curve_rows:
            c = r["evaluations"]["curves"]
            m = c["mean"]
            lines.append(f"| {r['model']} | {r['data']} | {c['songs']} | " + " | ".join(
                fmt(m[f"{dim}_{metric}"]) for dim in ("arousal", "valence") for metric in ("ccc", "pcc", "rmse"))
                + " |")
        lines.append("")
    level_rows = [r for r in rows if "levels" in r["evaluations"]]
    if level_rows or report.get("peers"):
        lines += ["## Levels: song-mean prediction against song-level quadrants", "",
                  "| Model | Data | Clips | Arousal AUC | Valence AUC | Quadrant accuracy |", "|---|---|---|---|---|---|"]
        for r in level_rows + report.get("peers", []):
            lv = r["evaluations"]["levels"]
            lines.append(f"| {r['model']} | {r['data']} | {lv['songs']} | {fmt(lv['arousal_auc'])} | "
                         f"{fmt(lv['valence_auc'])} | {fmt(lv['quadrant_accuracy'])} |")
        lines.append("")
    listener_rows = [r for r in rows if "listeners" in r["evaluations"]]
    if listener_rows:
        lines += ["## Listeners: CCC on their other song, base model vs a one-song profile", "",
                  "| Model | Data | Listeners | Valence CCC base | profile | gain [95 % CI] | raised | "
                  "Arousal CCC base | profile | gain [95 % CI] | raised |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in listener_rows:
            ls = r["evaluations"]["listeners"]
            cells = []
            for dim in ("valence", "arousal"):
                d = ls[dim]
                cells += [fmt(d["ccc_before"]), fmt(d["ccc_after"]),
                          f"{fmt(d['gain'], True)} [{fmt(d['gain_low'], True)}, {fmt(d['gain_high'], True)}]",
                          f"{d['raised']}/{ls['listeners']}"]
            lines.append(f"| {r['model']} | {r['data']} | {ls['listeners']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def run_report(datasets: list[CurveSet], checkpoints, *, baseline: str | None = None, evaluations=EVALUATIONS,
               split: str = "val", train_split: str = "train", songs: list[str] | None = None,
               only_with_audio: bool = False, seed: int = 0, steps=None, lr=None, params=None, imagebind=None,
               soundfont=None,
               cache_dir=None, peers=(), progress: Progress | None = None) -> tuple[dict, str]:
    """Every model (default: the embedded one) and the training mean through the evaluations each dataset's labels
    allow; returns (report, Markdown). MIDI datasets are rendered first (once, into the cache)."""
    import time
    from pathlib import Path

    from pdmer.data.deam import with_audio
    from pdmer.data.render import MidiRenderer, with_rendered_audio
    from pdmer.defaults import default_checkpoint
    from pdmer.evaluate.predictors import ConstantPredictor
    from pdmer.evaluate.run import checkpoint_name, model_predictor

    if songs and not any(set(songs) & set(d.songs) for d in datasets):
        raise InputError(f"no --data holds any of the songs {', '.join(songs)}")
    checkpoints = list(checkpoints) or ([] if baseline else [str(default_checkpoint())])
    report = {"models": [checkpoint_name(c) for c in checkpoints] + ["training mean"], "split": split,
              "seed": seed, "results": [], "peers": [read_peer(Path(p)) for p in peers]}
    renderer = None
    for dataset in datasets:
        part = evaluation_split(dataset, split, songs)
        if any(s.midi is not None and s.audio is None for s in part.songs.values()):  # render what is evaluated
            renderer = renderer or MidiRenderer(soundfont=soundfont, root=cache_dir)
            part = with_rendered_audio(part, renderer)
        if only_with_audio:
            part = with_audio(part)
        if not part.songs:
            raise InputError(f"{part.name}: no song to evaluate")
        mean = training_mean(dataset, part, train_split)
        if baseline == "support-mean":
            mean = ConstantPredictor(mean.value, name="support mean", adapt=True)
        predictors = [] if baseline else [
            model_predictor(path, part, cache_dir=cache_dir, imagebind=imagebind, steps=steps, lr=lr, params=params)
            for path in checkpoints]
        if predictors:
            part.require_audio()
        for predictor in predictors + [mean]:
            started = time.perf_counter()
            results = run(part, predictor, evaluations=evaluations, seed=seed, progress=progress)
            report["results"].append({"model": predictor.name, "data": part.name, "evaluations": results,
                                      "seconds": round(time.perf_counter() - started, 1)})
    if not any(r["evaluations"] for r in report["results"]):
        raise InputError(f"none of the data has labels for {', '.join(evaluations)}")
    progress and progress("")
    return report, markdown(report)


def read_peer(path) -> dict:
    """A peer's level results as ``benchmarks/peer_vibenet.py --json`` writes them."""
    import json

    try:
        peer = json.loads(path.read_text())
        peer["evaluations"]["levels"]["songs"]
        return peer
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"{path} is not a peer's level results (benchmarks/peer_vibenet.py --json): {error}") from None
