"""A training run: data and features, the model, the step loop, validation, checkpoints and resuming.

The run folder holds everything:
- ``config.toml``: the effective config (``pdmer train --resume OUT`` reads it);
- ``model.safetensors``: the latest good weights (with ``ema``, their moving average), loadable by ``pdmer eval``
  (metadata: the global encoder, the global windows, the adaptation it was meta-trained with, the config, the data
  fingerprint, the step);
- ``best.safetensors``: the weights with the best validation score so far;
- ``state.pt``: weights, their average, optimiser state and step, written atomically, for an exact resume;
- ``log.jsonl``: one line per step (loss) and per validation (scores).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pdmer.data.curves import MEAN
from pdmer.errors import InputError, PdmerError
from pdmer.fileio import atomic_path
from pdmer.train import data as train_data
from pdmer.train.config import DSAML_SWITCHES, TrainConfig
from pdmer.train.distributed import Group, join, leave
from pdmer.train.steps import NonFiniteLoss, StepStats, tasks_gradient, trainable

STATE = "state.pt"
MODEL = "model.safetensors"
BEST = "best.safetensors"


class TrainingError(PdmerError):
    pass


@dataclass
class SourceData:
    """A dataset of the mix as training sees it: what a step draws from it, and what validates on it."""

    name: str
    weight: float
    kind: str  # "curves" or "levels" (song-level quadrants)
    pool: list  # train_data.Example
    sampler: object | None  # train_data.TaskSampler in pdmer mode, for a source with listeners (or random tasks)
    val: object | None  # its validation CurveSet
    fingerprint: str


Report = Callable[[str], None]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise InputError("device = cuda, but this machine has no CUDA device: use device = cpu")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def adaptation_of(cfg: TrainConfig):
    from pdmer.model.adapt import AdaptConfig

    return AdaptConfig(steps=cfg.inner_steps, lr=cfg.inner_lr, window=cfg.window, params=cfg.inner_params)


class Run:
    def __init__(self, cfg: TrainConfig, out: Path, *, resume: bool, report: Report = print):
        self.cfg, self.out, self.report = cfg, Path(out), report
        self.device = resolve_device(cfg.device)
        self.group: Group = join(self.device)
        self.check_folder(resume)
        self.load_data()
        self.build_model()
        if cfg.front_end == "frozen":
            self.local_pool()
        if cfg.global_norm and "global_mean" not in self.given:  # a fresh model: its statistics from the data
            self.standardize_globals()
        self.step, self.best = 0, -math.inf
        if resume:
            self.restore()
        self.write_config()

    # -- setup ---------------------------------------------------------------------------------------------------
    def check_folder(self, resume: bool) -> None:
        config_path = self.out / "config.toml"
        if resume:
            if not (self.out / STATE).is_file():
                raise InputError(f"{self.out} holds no run to resume ({STATE} is missing): start one with --config")
            saved = TrainConfig.from_toml(config_path)
            if saved.fingerprint() != self.cfg.fingerprint():
                raise InputError(f"{self.out}: only steps, validate_every, checkpoint_every and device may change "
                                 "when resuming; start a new run (another --out) for other changes")
        elif (self.out / STATE).exists():
            raise InputError(f"{self.out} already holds a run: pass --resume to continue it, or choose another --out")

    def write_config(self) -> None:
        """Once the data and model are known to be usable: the folder then always holds a startable run."""
        if self.group.main:
            self.out.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.out / "config.toml") as temporary:
                temporary.write_text(self.cfg.to_toml())
        self.group.barrier()

    def load_data(self) -> None:
        from pdmer.data.features import FeatureCache, GlobalWindows
        from pdmer.model.encoders import load_global_encoder

        cfg = self.cfg
        sources = cfg.data_sources()
        if not sources:
            raise InputError("no dataset: pass --data FOLDER (or set data or sources in the config's [data] section)")
        self.encoder = load_global_encoder(cfg.encoder, imagebind_checkpoint=cfg.imagebind or None,
                                           device=self.device)
        self.windows = GlobalWindows(placement=cfg.global_placement, seconds=cfg.global_seconds)
        self.cache = FeatureCache(self.encoder, root=cfg.cache or None, windows=self.windows)
        self.sources = [self.load_source(source) for source in sources]
        if cfg.mode == "pdmer" and not any(s.sampler for s in self.sources):
            raise InputError("pdmer mode meta-trains on listener tasks, and no dataset has per-listener curves "
                             "(DEAM: the per-rater files; VGMIDI has them): use --mode dmer, or add such a dataset")
        self.weights = [source.weight for source in sources]
        fingerprints = [s.fingerprint for s in self.sources]
        self.data_fingerprint = fingerprints[0] if len(fingerprints) == 1 else train_data.hashed(fingerprints)

    def load_source(self, source) -> SourceData:
        """One dataset of the mix: its training examples (and listener tasks), and its validation split."""
        from pdmer.data.load import load_dataset
        from pdmer.data.render import MidiRenderer, with_rendered_audio

        cfg = self.cfg
        dataset = load_dataset(source.data, source.format or None, raters=cfg.raters)
        train = dataset.split(source.train_split)
        val = dataset.split(source.val_split) if source.val_split else None
        if any(song.midi is not None and song.audio is None for song in dataset.songs.values()):
            # MIDI datasets: rendered once, into the cache
            renderer = MidiRenderer(soundfont=source.soundfont or None, root=cfg.cache or None,
                                    transpose=source.transpose)
            train = with_rendered_audio(train, renderer)
            val = val and with_rendered_audio(val, renderer)
        say = self.report if self.group.main else None
        if train.quadrants and not train.curves:
            pool = train_data.level_examples(train, self.cache, progress=say)
            return SourceData(dataset.name, source.weight, "levels", pool, None, val,
                              train_data.fingerprint(train, []))
        tasks = cfg.mode == "pdmer" and cfg.tasks == "listener" and bool(train.listeners)
        per_listener = tasks or (source.curves == "listeners" and bool(train.listeners))
        curves = [c for c in train.curves if c.listener != MEAN] if per_listener else train.mean_curves()
        if not curves:
            raise InputError(f"{train.name} has no curves and no song-level quadrants to train on")
        pool = train_data.examples(train, curves, self.cache, progress=say)
        sampler = None
        if cfg.mode == "pdmer" and (tasks or cfg.tasks == "random"):
            maml = cfg.maml
            sampler = train_data.TaskSampler(pool, kind=cfg.tasks, support=cfg.support if maml else 0,
                                             query=cfg.query + (0 if maml else cfg.support), window=cfg.window)
        return SourceData(dataset.name, source.weight, "curves", pool, sampler, val,
                          train_data.fingerprint(train, curves))

    def build_model(self) -> None:
        from pdmer.model.registry import build_model

        torch.manual_seed(self.cfg.seed)
        self.model = build_model(self.cfg.model, self.cfg.preset, global_dim=self.encoder.dim,
                                 **self.cfg.model_overrides()).to(self.device)
        self.given: set[str] = set()  # the state-dict names taken from init
        if self.cfg.init:
            self.start_from(Path(self.cfg.init))
        if self.cfg.front_end == "frozen":
            self.freeze_front_end()
        self.params = [p for _, p in trainable(self.model)]  # in the order the step gradients come in
        kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
        self.optimizer = kinds[self.cfg.optimizer](self.params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        # ema > 0: the moving average of the weights, which validation scores and the .safetensors files hold
        self.averaged = [p.detach().clone() for p in self.params] if self.cfg.ema else None

    def start_from(self, path: Path) -> None:
        """Load the weights of ``init`` (a checkpoint of the same architecture, config and global encoder). With
        front_end = "frozen", a checkpoint that differs in ``causal`` or in its global encoder gives its front end
        only; the rest starts fresh."""
        from pdmer.model.checkpoint import load_model, read_metadata
        from pdmer.model.registry import architecture_of

        start = load_model(path)
        architecture = architecture_of(start)
        encoder = json.loads(read_metadata(path).get("global_encoder", "{}")).get("name", self.encoder.name)
        own_config = self.model.config
        same = architecture == self.cfg.model and start.config == own_config
        # A causal run may start from a non-causal checkpoint, and (its front end only) from another encoder's, or
        # one that differs in any other of the run's switches or its dropout.
        alike = architecture == self.cfg.model and dataclasses.replace(  # the switches are DSAML's: check first
            start.config, global_dim=own_config.global_dim, dropout=own_config.dropout,
            **{name: getattr(own_config, name) for name in DSAML_SWITCHES}) == own_config
        if not (same or (alike and self.cfg.front_end == "frozen")):
            raise InputError(f"init {path} is a {architecture} with another config than this run's "
                             f"{self.cfg.model} (preset {self.cfg.preset}, {self.cfg.model_overrides()}): "
                             "start from a checkpoint trained with the same model settings")
        own = self.model.state_dict()
        given = {name: w for name, w in start.state_dict().items() if name in own and own[name].shape == w.shape}
        if encoder != self.encoder.name and self.cfg.front_end != "frozen":
            raise InputError(f"init {path} was trained on {encoder} features, this run uses "
                             f"{self.encoder.name}: start from a checkpoint with the same global encoder (or "
                             "take only its front end: front_end = \"frozen\")")
        if not same or encoder != self.encoder.name or self.cfg.init_parts == "front_end":
            # Another sequence model or encoder: only the front end, which never sees the global features, carries
            # over. (Carrying the rest over too made a causal model collapse to one curve for every song on real
            # music: the fusion's sigmoid saturated on features it had not been trained on.)
            front = tuple(f"{name}." for name in self.model.FRONT_END)
            given = {name: w for name, w in given.items() if name.startswith(front)}
        fresh = sorted(set(own) - set(given))
        if fresh:
            self.report(f"init {path}: {len(fresh)} tensors start fresh ({', '.join(fresh[:4])}"
                        f"{' ...' if len(fresh) > 4 else ''})")
        self.model.load_state_dict({**own, **given})
        self.given = set(given)

    def standardize_globals(self) -> None:
        """global_norm: the mean and 1 / std of every training step's global vector, into the model's buffers."""
        rows = torch.cat([example.global_feat for source in self.sources for example in source.pool]).double()
        self.model.global_mean.copy_(rows.mean(dim=0).float())
        self.model.global_scale.copy_((1 / rows.std(dim=0).clamp_min(1e-6)).float())
        self.report(f"global vectors standardised over {len(rows)} training steps")

    def local_pool(self) -> None:
        """front_end = "frozen": every training example's log-mel slices replaced by the fixed front end's
        outputs [T, L], computed once per song (in eval mode, as prediction computes them)."""
        computed: dict[int, torch.Tensor] = {}  # by the storage the examples' rows are views of
        longest: dict[int, torch.Tensor] = {}
        for source in self.sources:
            for example in source.pool:  # the longest rows per storage, so curves of one song share one pass
                key = example.mel.data_ptr()
                if key not in longest or len(example.mel) > len(longest[key]):
                    longest[key] = example.mel
        with torch.no_grad():  # eval mode: no dropout, batch norm on its running statistics
            self.model.eval()
            for key, mel in longest.items():
                computed[key] = torch.cat([self.model.local_features(mel[None, i : i + 256].to(self.device))[0]
                                           for i in range(0, len(mel), 256)]).cpu()
            self.model.train()
        for source in self.sources:
            new = {id(e): dataclasses.replace(e, mel=computed[e.mel.data_ptr()][: len(e.mel)]) for e in source.pool}
            source.pool = [new[id(e)] for e in source.pool]
            if source.sampler is not None:
                source.sampler.groups = {who: [new[id(e)] for e in songs] for who, songs in source.sampler.groups.items()}

    def freeze_front_end(self) -> None:
        """front_end = "frozen": the adapter keeps its weights (and batch-norm statistics); each song's local
        features are computed once (:meth:`local_pool`)."""
        for name in self.model.FRONT_END:
            module = getattr(self.model, name)
            if module is not None:
                module.requires_grad_(False)

    def restore(self) -> None:
        state = torch.load(self.out / STATE, map_location=self.device, weights_only=True)
        if state["data_fingerprint"] != self.data_fingerprint:
            raise InputError(f"{self.out}: the training data changed since this run started (labels or audio); "
                             "resume needs the same data: start a new run (another --out)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.averaged is not None:
            self.averaged = [a.to(self.device) for a in state["averaged"]]
        self.step, self.best = int(state["step"]), float(state["best"])
        self.report(f"resuming {self.out} at step {self.step}")
        log = self.out / "log.jsonl"
        if self.group.main and log.is_file():  # drop what was logged after the checkpoint: those steps run again
            kept = [line for line in log.read_text().splitlines() if json.loads(line)["step"] <= self.step]
            with atomic_path(log) as temporary:
                temporary.write_text("".join(f"{line}\n" for line in kept))

    # -- the loop ------------------------------------------------------------------------------------------------
    def train(self, progress=None) -> dict:
        cfg = self.cfg
        last: dict = {}
        try:
            while self.step < cfg.steps:
                started = time.perf_counter()
                stats = self.one_step(self.step + 1)
                self.step += 1
                last = {"step": self.step, "loss": stats.loss / max(stats.count, 1),
                        "seconds": round(time.perf_counter() - started, 3)}
                if cfg.mode == "pdmer" and cfg.maml:
                    last["inner_first"] = stats.inner_first / stats.count
                    last["inner_last"] = stats.inner_last / stats.count
                if cfg.validate_every and self.step % cfg.validate_every == 0 or self.step == cfg.steps:
                    last.update(self.validate())
                self.log(last)
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    self.save()
                progress and progress(last)
        finally:
            leave(self.group)
        return last

    def one_step(self, step: int) -> StepStats:
        cfg = self.cfg
        rng = train_data.step_rng(cfg.seed, step)
        source = self.sources[0]
        if len(self.sources) > 1:  # one source per step, drawn by weight
            source = self.sources[int(rng.choice(len(self.sources), p=np.array(self.weights) / sum(self.weights)))]
        if source.sampler is not None:
            tasks = source.sampler.sample(rng, cfg.tasks_per_step)
            adaptation = adaptation_of(cfg) if cfg.maml else None
        else:  # one mini-batch of clips (mean curves or quadrants), split into one piece per process
            pool = source.pool
            picked = rng.choice(len(pool), size=cfg.batch_size, replace=cfg.batch_size > len(pool))
            batch = train_data.stack_clips(rng, [pool[i] for i in picked], cfg.window)
            pieces = [slice(r, None, self.group.size) for r in range(self.group.size)]
            tasks = [train_data.Task(MEAN, [], tuple(t[p] for t in batch), kind=source.kind) for p in pieces]
            adaptation = None
        try:
            grads, stats = tasks_gradient(
                self.model, tasks, self.group.share(len(tasks)), adaptation, first_order=cfg.first_order,
                device=self.device, seed_of=lambda index: train_data.task_seed(cfg.seed, step, index))
            failed = 0.0
        except NonFiniteLoss as error:
            grads, stats, failed = [torch.zeros_like(p) for p in self.params], StepStats(), 1.0
            self.report(f"step {step}: {error}")
        self.group.sum_(grads)
        loss, first, last, count, failed = self.group.sum_floats(
            [stats.loss, stats.inner_first, stats.inner_last, stats.count, failed])
        if failed or not all(torch.isfinite(g).all() for g in grads):
            saved = f"the last good checkpoint is {self.out / MODEL} (step {self.last_saved()})"
            raise TrainingError(f"the loss or its gradient became NaN/inf at step {step}; {saved}. Lower the "
                                f"learning rate (lr = {cfg.lr}, inner_lr = {cfg.inner_lr}) or set grad_clip, then "
                                f"resume with pdmer train --resume {self.out}")
        for p, grad in zip(self.params, grads):
            p.grad = grad / len(tasks)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.averaged is not None:
            with torch.no_grad():
                for average, p in zip(self.averaged, self.params):
                    average.lerp_(p, 1 - cfg.ema)
        self.group.average_buffers(self.model)
        return StepStats(loss, first, last, int(count))

    # -- validation and checkpoints ------------------------------------------------------------------------------
    def validate(self) -> dict:
        """The validation score: per source with a val split, the mean CCC of valence and arousal after one-shot
        adaptation to its listeners (or on its mean curves), or for song-level quadrants the mean AUC of valence
        and arousal minus 0.5 (0 = chance, as a CCC of 0); ``val_score`` is their mean over sources."""
        checked = [s for s in self.sources if s.val is not None]
        if not checked:
            return {}
        scores = {}
        if self.group.main:
            with self.averaged_weights():
                per_source = {source.name: self.validate_source(source) for source in checked}
            self.model.train()
            if len(per_source) == 1:
                scores = next(iter(per_source.values()))
            else:
                scores = {f"val_{name}_{key[4:]}": value for name, part in per_source.items()
                          for key, value in part.items()}
                scores["val_score"] = round(sum(p["val_score"] for p in per_source.values()) / len(per_source), 4)
            if scores["val_score"] > self.best:
                self.best = scores["val_score"]
                self.write_model(self.out / BEST, scores)
        self.group.barrier()
        return scores

    def validate_source(self, source: SourceData) -> dict[str, float]:
        from pdmer.evaluate.predictors import ModelPredictor
        from pdmer.evaluate.real import levels
        from pdmer.evaluate.run import evaluate
        from pdmer.model.inference import SlidingWindows

        predictor = ModelPredictor(self.model, self.cache, source.val, adaptation=adaptation_of(self.cfg),
                                   windows=SlidingWindows(window=self.cfg.window))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed)
            if source.kind == "levels":
                result = levels(source.val, predictor)
                aucs = {dim: result[f"{dim}_auc"] for dim in ("valence", "arousal")}
                known = [value for value in aucs.values() if value == value]  # NaN: the split lacks a class
                if not known:
                    raise InputError(f"{source.val.name}: validation needs songs of both signs of valence or "
                                     "arousal (its quadrants are all on one side)")
                scores = {f"val_{dim}_auc": round(value, 4) for dim, value in aucs.items() if value == value}
                scores["val_score"] = round(sum(known) / len(known) - 0.5, 4)
                return scores
            # Listener tasks in pdmer mode only: a DMER run is scored on the mean curves it trains on.
            task = "pdmer" if self.cfg.mode == "pdmer" and source.val.by_listener(min_songs=2) else "dmer"
            mean = evaluate(source.val, predictor=predictor, split=None, tasks=(task,))["tasks"][task]["mean"]
        scores = {f"val_{key}": round(mean[key], 4) for key in ("valence_ccc", "arousal_ccc")}
        scores["val_score"] = round((mean["valence_ccc"] + mean["arousal_ccc"]) / 2, 4)
        return scores

    def metadata(self, extra: dict | None = None) -> dict[str, str]:
        from pdmer.data.features import inputs_metadata

        return {
            **inputs_metadata(self.encoder, self.windows),
            "adaptation": json.dumps(dataclasses.asdict(adaptation_of(self.cfg))),
            "training": json.dumps(dataclasses.asdict(self.cfg)),
            "data_fingerprint": self.data_fingerprint,
            "step": str(self.step),
            **{key: str(value) for key, value in (extra or {}).items()},
        }

    def write_model(self, path: Path, extra: dict | None = None) -> None:
        from pdmer.model.checkpoint import save_model

        with self.averaged_weights():
            save_model(self.model, path, metadata=self.metadata(extra))

    @contextmanager
    def averaged_weights(self):
        """With ema > 0, the model holds the averaged weights inside the block (and its own again after)."""
        if self.averaged is None:
            yield
            return
        with torch.no_grad():
            own = [p.detach().clone() for p in self.params]
            for p, average in zip(self.params, self.averaged):
                p.copy_(average)
            try:
                yield
            finally:
                for p, mine in zip(self.params, own):
                    p.copy_(mine)

    def save(self) -> None:
        if self.group.main:
            state = {"step": self.step, "best": self.best, "model": self.model.state_dict(),
                     "optimizer": self.optimizer.state_dict(), "averaged": self.averaged,
                     "data_fingerprint": self.data_fingerprint,
                     "config_fingerprint": self.cfg.fingerprint()}
            with atomic_path(self.out / STATE) as temporary:
                torch.save(state, temporary)
            self.write_model(self.out / MODEL)
        self.group.barrier()

    def last_saved(self) -> int | str:
        from pdmer.model.checkpoint import read_metadata

        path = self.out / MODEL
        return read_metadata(path).get("step", "?") if path.is_file() else "none yet"

    def log(self, values: dict) -> None:
        if self.group.main:
            with open(self.out / "log.jsonl", "a") as file:
                file.write(json.dumps(values) + "\n")
