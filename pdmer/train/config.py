"""Every hyperparameter of a training run, read from and written to TOML.

Defaults are the authors' (Littleor/Personalized-DMER @ 20b12ea: ``train.py``, ``utils/args.py``) and the paper's
(§Implementation Details): first-order MAML over all parameters, 16 inner steps of lr 5e-3, outer Adam 5e-5,
meta-batches of 16 listener tasks with 1 support and 15 query songs, 2000 outer steps, 30 s (60-step) clips.
A run writes the effective config beside its checkpoints, so ``pdmer train --resume OUT`` needs nothing else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from pdmer.errors import InputError

PARAMS = ("all", "head", "output", "bias")  # pdmer.model.adapt.PARAMS (not imported: it would import torch)

MODES = ("dmer", "pdmer")
MODELS = ("dsaml", "damff", "crnn")  # pdmer.model.registry.ARCHITECTURES
TASK_KINDS = ("listener", "random")  # paper eq. 6 (per annotator) and eq. 5 (random over mean labels)
OPTIMIZERS = ("adam", "adamw", "sgd")  # adamw: decoupled weight decay (Loshchilov & Hutter 2019)
DEVICES = ("auto", "cpu", "cuda")
PLACEMENTS = ("trailing", "centred")  # pdmer.data.features.PLACEMENTS (not imported: it would import torch)
FRONT_ENDS = ("train", "frozen")
INIT_PARTS = ("all", "front_end")
# Fields that only steer how long or how loudly a run goes: changing them does not change what is being trained.
RUN_CONTROL = ("steps", "validate_every", "checkpoint_every", "device")


@dataclass(frozen=True)
class TrainConfig:
    # [run]
    mode: str = "pdmer"
    model: str = "dsaml"
    preset: str = "small"
    seed: int = 0
    steps: int = 2000  # outer (meta) steps, or optimizer steps in dmer mode; authors' --num_epochs
    device: str = "auto"
    init: str = ""  # a pdmer model checkpoint to start from (e.g. a dmer run's model.safetensors); "" = random
    # DSAML only, not in the paper: each step sees the past only (pdmer.model.config.ModelConfig.causal), so every
    # training row is what the stream sends
    causal: bool = False
    # "train": the per-slice front end (DSAML's adapter CNN) trains with the rest; "frozen": it keeps the weights of
    # ``init`` and its outputs are computed once per song, so a step costs ~10x less on a CPU (the adapter is 0.06 %
    # of the parameters and ~90 % of a step's work there)
    front_end: str = "train"
    # What of init to take: "all" its weights, or "front_end" the adapter CNN alone (the rest starts fresh)
    init_parts: str = "all"
    # DSAML only, not in the paper (pdmer.model.config.ModelConfig): standardise the global vector with the training
    # data's statistics, and add a linear path from it to the output
    global_norm: bool = False
    global_skip: bool = False
    # DSAML only, not in the paper: each slice's loudness and onset strength beside the adapter's output
    slice_stats: bool = False
    trailing_stats: int = 0  # steps; 0 = off (pdmer.model.config.ModelConfig says why)
    dropout: float = -1.0  # DSAML's dropout; < 0 = the preset's (0.1, the authors')
    input_dropout: float = 0.0  # DSAML, on the fusion's inputs; 0 = none
    # [data]
    data: str = ""
    # Several datasets, each drawn in proportion to its weight (replaces ``data``): a TOML list of tables,
    # sources = [{data = "VGMIDI", weight = 1.0}, {data = "4Q", weight = 0.5, format = "4q"}]; keys data (folder),
    # weight (> 0, default 1), format ("" = detected), train_split / val_split (default the run's). See Source.
    sources: list = field(default_factory=list)
    format: str = ""  # "" = detected
    raters: bool = True  # DEAM: per-rater curves (needed for listener tasks)
    train_split: str = "train"
    val_split: str = ""  # "" = no validation
    encoder: str = "musicnn"
    imagebind: str = ""  # path to imagebind_huge.pth for encoder = "imagebind"
    cache: str = ""  # feature cache folder; "" = the user cache
    window: int = 60  # steps per training clip: the authors' 30 s clips
    # Global windows (pdmer.data.features.GlobalWindows). "trailing" is causal, what the stream can compute;
    # "centred" is the authors' test path (it looks global_seconds / 2 ahead), for offline prediction of files.
    global_placement: str = "trailing"
    global_seconds: float = 30.0  # authors' global_context_length
    # [optim]
    optimizer: str = "adam"
    lr: float = 5e-5  # authors' --lr (outer)
    batch_size: int = 16  # dmer mode: clips per step
    grad_clip: float = 0.0  # 0 = none
    weight_decay: float = 0.0  # adamw: decoupled; adam and sgd: an L2 term in the gradient
    # Not in the paper: validate and save an exponential moving average of the weights (decay per step; 0 = off),
    # which varies less between nearby steps than the weights themselves
    ema: float = 0.0
    # [meta]
    tasks: str = "listener"
    maml: bool = True  # false: per-listener labels without the inner loop (paper Table 4, "w.o. MAML")
    tasks_per_step: int = 16  # authors' meta-batch
    support: int = 1  # songs to adapt on (paper: one)
    query: int = 15  # songs to score the adapted weights on
    inner_steps: int = 16  # authors' --adapt_steps
    inner_lr: float = 5e-3  # authors' --meta_lr
    first_order: bool = True  # cuDNN LSTMs have no double backward; second-order runs on CPU
    inner_params: str = "all"  # "all" (authors), "head" (all but the per-slice front end), "output" (last layer), "bias"
    # [ablation] (paper Table 3), DSAML only
    local_attention: bool = True
    global_attention: bool = True
    attention_loss: bool = True
    adapter: bool = True
    # [log]
    validate_every: int = 100  # steps; 0 = only at the end
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        for name, value, choices in (
            ("mode", self.mode, MODES),
            ("model", self.model, MODELS),
            ("tasks", self.tasks, TASK_KINDS),
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("device", self.device, DEVICES),
            ("inner_params", self.inner_params, PARAMS),
            ("global_placement", self.global_placement, PLACEMENTS),
            ("front_end", self.front_end, FRONT_ENDS),
            ("init_parts", self.init_parts, INIT_PARTS),
        ):
            if value not in choices:
                raise InputError(f"config: {name} = {value!r} is not one of {', '.join(choices)}")
        positive = ("steps", "window", "batch_size", "tasks_per_step", "support", "query", "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise InputError(f"config: {name} must be >= 1, got {getattr(self, name)}")
        if self.inner_steps < 0 or self.validate_every < 0 or self.grad_clip < 0 or self.weight_decay < 0:
            raise InputError("config: inner_steps, validate_every, grad_clip and weight_decay must be >= 0")
        if not 0 <= self.ema < 1:
            raise InputError(f"config: ema is a decay per step in [0, 1) (0 = off, e.g. 0.999), got {self.ema}")
        if self.global_seconds <= 0:
            raise InputError(f"config: global_seconds must be > 0, got {self.global_seconds}")
        if self.lr <= 0 or self.inner_lr <= 0:
            raise InputError(f"config: lr and inner_lr must be > 0, got {self.lr} and {self.inner_lr}")
        if self.data and self.sources:
            raise InputError("config: give data or sources, not both (one source is sources = [{data = ...}])")
        for source in self.sources:
            Source.parse(source)  # a bad entry is named before any work
        if self.model != "dsaml" and self.ablations():
            raise InputError(f"config: the ablation flags {sorted(self.ablations())} apply to dsaml only")
        if self.dropout >= 1 or not 0 <= self.input_dropout < 1:
            raise InputError(f"config: dropout must be < 1 and input_dropout in [0, 1), got {self.dropout} and "
                             f"{self.input_dropout}")
        if self.model != "dsaml" and (any(getattr(self, name) for name in DSAML_SWITCHES) or self.dropout >= 0):
            raise InputError(f"config: {', '.join(DSAML_SWITCHES)} and dropout apply to dsaml only")
        if self.front_end == "frozen" and not self.init:
            raise InputError("config: front_end = \"frozen\" keeps the front end of init: set init to a checkpoint")
        if self.front_end == "frozen" and self.mode == "pdmer" and self.inner_params == "all":
            raise InputError("config: with front_end = \"frozen\", adapt inner_params = head, output or bias")

    def data_sources(self) -> list[Source]:
        """The datasets to train on: ``sources``, else ``data`` as one source of weight 1."""
        if self.sources:
            return [Source.parse(entry, self) for entry in self.sources]
        return [Source(self.data, 1.0, self.format, self.train_split, self.val_split)] if self.data else []

    def model_overrides(self) -> dict:
        """ModelConfig fields this run sets: the ablations, and the DSAML switches that are on."""
        switches = {name: getattr(self, name) for name in DSAML_SWITCHES if getattr(self, name)}
        if self.dropout >= 0:
            switches["dropout"] = self.dropout
        return {**self.ablations(), **switches}

    def ablations(self) -> dict:
        """ModelConfig overrides for the paper's Table 3 ablations that are switched on."""
        overrides = {}
        if not self.local_attention:
            overrides["use_local_attention"] = False
        if not self.global_attention:
            overrides["use_global_attention"] = False
        if not self.attention_loss:
            overrides["attn_loss_weight"] = 0.0
        if not self.adapter:
            overrides["use_adapter"] = False
        return overrides

    def replace(self, **changes) -> TrainConfig:
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise InputError(f"unknown training settings {unknown}")
        return dataclasses.replace(self, **changes)

    def fingerprint(self) -> str:
        """SHA-256 of everything that defines what is trained (not how long or how often it is logged)."""
        values = {k: v for k, v in dataclasses.asdict(self).items() if k not in RUN_CONTROL}
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()

    def to_toml(self) -> str:
        lines = ["# pdmer training config: every hyperparameter of the run (pdmer train --config FILE)"]
        for section, names in SECTIONS.items():
            lines.append(f"\n[{section}]")
            for name in names:
                lines.append(f"{name} = {_toml_value(getattr(self, name))}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            document = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise InputError(f"{path} is not valid TOML: {error}") from None
        values = {}
        for section, table in document.items():
            if section not in SECTIONS or not isinstance(table, dict):
                raise InputError(f"{path}: unknown section [{section}]; sections are {', '.join(SECTIONS)}")
            unknown = sorted(set(table) - set(SECTIONS[section]))
            if unknown:
                raise InputError(f"{path}: unknown keys {unknown} in [{section}]; it knows {SECTIONS[section]}")
            values.update(table)
        for name, value in values.items():
            expected = type(getattr(cls(), name))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                values[name] = value = float(value)
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise InputError(f"{path}: {name} must be a {expected.__name__}, got {value!r}")
        return cls(**values)


SOURCE_KEYS = ("data", "weight", "format", "train_split", "val_split", "curves", "soundfont", "transpose")
SOURCE_CURVES = ("mean", "listeners")


@dataclass(frozen=True)
class Source:
    """One dataset of a training mix. Each step draws one source, with probability weight / sum of weights, and
    trains on a batch of it: curves (DSAML's loss), song-level quadrants (a sign loss on the clip's mean
    prediction: pdmer.model.loss.song_sign_loss) or, in pdmer mode, listener tasks where it has listeners."""

    data: str
    weight: float = 1.0
    format: str = ""
    train_split: str = "train"
    val_split: str = ""
    # Plain batches (dmer mode, or a pdmer-mode source without listener tasks) of its songs' mean curves, or of
    # every listener's own curve (more, noisier examples of what one person hears)
    curves: str = "mean"
    # MIDI datasets: the .sf2 to render with ("" = pdmer.data.render's choice). The same pieces rendered with another
    # soundfont are another source: the same labels on other timbres, against overfitting to one rendering
    soundfont: str = ""
    transpose: int = 0  # MIDI datasets: semitones to move every pitched note by before rendering

    @classmethod
    def parse(cls, entry, run: TrainConfig | None = None) -> Source:
        if not isinstance(entry, dict) or not isinstance(entry.get("data"), str) or not entry["data"]:
            raise InputError(f"config: each of sources must be a table with data = \"FOLDER\", got {entry!r}")
        unknown = sorted(set(entry) - set(SOURCE_KEYS))
        if unknown:
            raise InputError(f"config: source {entry['data']!r} has unknown keys {unknown}; it knows {SOURCE_KEYS}")
        weight = entry.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            raise InputError(f"config: source {entry['data']!r} needs weight > 0, got {weight!r}")
        for key in ("format", "train_split", "val_split", "curves", "soundfont"):
            if not isinstance(entry.get(key, ""), str):
                raise InputError(f"config: source {entry['data']!r}: {key} must be a string")
        transpose = entry.get("transpose", 0)
        if isinstance(transpose, bool) or not isinstance(transpose, int) or not -12 <= transpose <= 12:
            raise InputError(f"config: source {entry['data']!r}: transpose is whole semitones in -12..12, got "
                             f"{transpose!r}")
        if entry.get("curves", "mean") not in SOURCE_CURVES:
            raise InputError(f"config: source {entry['data']!r}: curves must be one of {', '.join(SOURCE_CURVES)}")
        defaults = run or TrainConfig()
        return cls(entry["data"], float(weight), entry.get("format", defaults.format),
                   entry.get("train_split", defaults.train_split), entry.get("val_split", defaults.val_split),
                   entry.get("curves", "mean"), entry.get("soundfont", ""), transpose)


# ModelConfig switches that a run sets by name ([run] keys of the same name), DSAML only and not in the paper
DSAML_SWITCHES = ("causal", "global_norm", "global_skip", "slice_stats", "trailing_stats", "input_dropout")

SECTIONS = {
    "run": ("mode", "model", "preset", "seed", "steps", "device", "init", "init_parts", "causal", "front_end",
            "global_norm", "global_skip", "slice_stats", "trailing_stats", "dropout",
            "input_dropout"),
    "data": ("data", "sources", "format", "raters", "train_split", "val_split", "encoder", "imagebind", "cache", "window",
             "global_placement", "global_seconds"),
    "optim": ("optimizer", "lr", "batch_size", "grad_clip", "weight_decay", "ema"),
    "meta": ("tasks", "maml", "tasks_per_step", "support", "query", "inner_steps", "inner_lr", "first_order",
             "inner_params"),
    "ablation": ("local_attention", "global_attention", "attention_loss", "adapter"),
    "log": ("validate_every", "checkpoint_every"),
}
assert sorted(n for names in SECTIONS.values() for n in names) == sorted(f.name for f in fields(TrainConfig))


def _toml_value(value) -> str:
    if isinstance(value, dict):  # an inline table
        return "{" + ", ".join(f"{key} = {_toml_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)  # a TOML basic string is a JSON string for the characters used here
