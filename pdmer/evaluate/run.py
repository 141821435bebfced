"""One evaluation run: a model checkpoint (or a trivial baseline) on a dataset split, both tasks, one report."""

from __future__ import annotations

import json
from pathlib import Path

from pdmer.data.curves import CurveSet, warn
from pdmer.data.deam import with_audio
from pdmer.errors import InputError
from pdmer.evaluate.predictors import ConstantPredictor, ModelPredictor, Predictor
from pdmer.evaluate.report import task_result
from pdmer.evaluate.tasks import Progress, personalized, traditional

BASELINES = ("training-mean", "support-mean")
TASKS = ("dmer", "pdmer")


def split_of(dataset: CurveSet, name: str | None) -> CurveSet:
    return dataset if name in (None, "all") else dataset.split(name)


def baseline_predictor(kind: str, dataset: CurveSet, train_split: str | None) -> Predictor:
    if kind not in BASELINES:
        raise InputError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")
    if train_split is None:
        raise InputError("a baseline needs the split it learns its mean from: pass --train-split (e.g. train)")
    return ConstantPredictor.training_mean(split_of(dataset, train_split), adapt=kind == "support-mean")


def model_predictor(checkpoint, dataset: CurveSet, *, cache_dir=None, encoder=None, imagebind=None,
                    adaptation=None, **adaptation_overrides) -> Predictor:
    """``adaptation``: the AdaptConfig to personalize with; default: the one the checkpoint was meta-trained with
    (else the authors'), with ``adaptation_overrides`` (e.g. ``steps=``, ``lr=``; None values ignored) applied."""
    import dataclasses

    from pdmer.data.features import FeatureCache, recorded_inputs
    from pdmer.model.adapt import AdaptConfig
    from pdmer.model.checkpoint import load_model, read_metadata

    model = load_model(checkpoint)
    metadata = read_metadata(checkpoint)
    spec = json.loads(metadata["global_encoder"]) if "global_encoder" in metadata else {"name": encoder or "musicnn",
                                                                                        "options": {}}
    if encoder and encoder != spec["name"]:
        raise InputError(f"{checkpoint} was trained with the {spec['name']} global encoder, not {encoder}")
    global_encoder, windows = recorded_inputs({**metadata, "global_encoder": json.dumps(spec)},
                                              model.config.global_dim, source=str(checkpoint), imagebind=imagebind)
    cache = FeatureCache(global_encoder, root=cache_dir, windows=windows)
    if adaptation is None:  # the adaptation the model was meta-trained with, else the authors' default
        adaptation = AdaptConfig(**json.loads(metadata["adaptation"])) if "adaptation" in metadata else AdaptConfig()
    adaptation = dataclasses.replace(adaptation, **{k: v for k, v in adaptation_overrides.items() if v is not None})
    return ModelPredictor(model, cache, dataset, name=checkpoint_name(checkpoint), adaptation=adaptation)


def checkpoint_name(checkpoint) -> str:
    """A training run's files are all called model/best.safetensors: name those after their run folder."""
    path = Path(checkpoint)
    return f"{path.parent.name}/{path.stem}" if path.stem in ("model", "best") and path.parent.name else path.stem


def evaluate(
    dataset: CurveSet,
    *,
    predictor: Predictor,
    split: str | None = "test",
    tasks=TASKS,
    support: str = "song",
    seed: int = 0,
    only_with_audio: bool = False,
    songs: list[str] | None = None,
    needs_audio: bool = True,
    progress: Progress | None = None,
) -> dict:
    """Both tasks on ``split`` (only ``songs`` of it, when given); returns the report (see
    :func:`pdmer.evaluate.report.markdown`)."""
    part = split_of(dataset, split)
    if songs:
        unknown = sorted(set(songs) - set(part.songs))
        if unknown:
            raise InputError(f"song(s) {', '.join(unknown)} are not in {part.name}")
        part = part.select(songs=songs, name=f"{part.name}:{','.join(songs)}")
    if only_with_audio:
        part = with_audio(part)
        if not part.songs:
            raise InputError(f"{part.name}: none of its songs has audio at hand")
    if needs_audio:
        part.require_audio()
    report = {"dataset": dataset.name, "split": split or "all", "model": predictor.name, "tasks": {}}
    if "dmer" in tasks:
        report["tasks"]["dmer"] = task_result(traditional(part, predictor, progress=progress))
    if "pdmer" in tasks:
        if not part.listeners:
            message = f"{part.name} has no per-listener curves, so no personalized task"
            if set(tasks) == {"pdmer"}:
                raise InputError(message + " (for DEAM pass --raters; its per-rater files must be present)")
            warn(message + "; reporting the traditional task only")
        else:
            results = personalized(part, predictor, support=support, seed=seed, progress=progress)
            report["tasks"]["pdmer"] = task_result(results, support=support, seed=seed)
    return report
