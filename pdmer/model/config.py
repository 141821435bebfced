"""Every size of the DSAML model in one dataclass, with named presets.

A config travels with its weights (checkpoints store ``to_dict()``), so a model can always be rebuilt from its
checkpoint alone. Numbers come from the DSAML paper (AAAI 2025, §Implementation) and the authors' code
(Littleor/Personalized-DMER @ 20b12ea, ``train.py`` defaults and ``models/``); each preset says where it differs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from pdmer.errors import InputError


class PresetConfig:
    """Named presets and dict round trips for the frozen config dataclasses of every architecture (DSAML, DAMFF,
    CRNN). Each class sets ``PRESETS`` once its presets are defined."""

    PRESETS: ClassVar[dict]

    @classmethod
    def preset(cls, name: str, **overrides):
        """A named preset, optionally with fields overridden: ``ModelConfig.preset("small", global_dim=200)``."""
        if name not in cls.PRESETS:
            raise InputError(
                f"unknown preset {name!r} for {cls.__name__}; choose one of {', '.join(sorted(cls.PRESETS))}"
            )
        return dataclasses.replace(cls.PRESETS[name], name=name, **overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown model config keys {unknown} for {cls.__name__}; this pdmer knows {sorted(known)}")
        return cls(**values)


@dataclass(frozen=True)
class ModelConfig(PresetConfig):
    # Input: one log-mel slice per 0.5 s step (DESIGN.md §2): 51 frames x 128 mel bands.
    mel_frames: int = 51
    n_mels: int = 128
    # Global feature from the frozen encoder; projected to hidden_dim when the sizes differ (e.g. musicnn's 200-d).
    global_dim: int = 1024  # ImageBind huge's audio embedding
    hidden_dim: int = 1024  # D
    # Authors' FeatureFusionModel applies Linear(D, D) after sigmoid(z_l + z_g); the paper's text omits it.
    fusion_linear: bool = True
    # The ONE transformer encoder shared by the local and global passes (BERT-style post-norm layers).
    num_layers: int = 3  # paper §Implementation
    num_heads: int = 16  # authors' train.py --model_num_attention_heads
    ffn_dim: int = 2048  # hard-coded in the authors' TransformerMultiScaleAttention
    dropout: float = 0.1  # authors' train.py --dropout_rate
    layer_norm_eps: float = 1e-12  # transformers' Blip2QFormerConfig default, used by the authors
    max_relative_distance: int = 512  # relative-key embeddings cover |i - j| < 512 (2*512-1 rows)
    local_band: int = 5  # n_l, paper §Implementation
    global_band: int = 30  # n_g, paper §Implementation
    use_local_attention: bool = True
    use_global_attention: bool = True
    # Ablation "w.o. Adapter" (paper Table 3): no local feature; z = sigma(z_g) from the global feature alone.
    use_adapter: bool = True
    # Sequence predictor: BiLSTM(D -> D/4 per direction) -> Linear(D/2 -> D/4) -> Dropout -> Linear(-> 2).
    lstm_hidden: int = 256
    head_hidden: int = 256
    # Diagonal attention loss (paper eq. 3): targets for the local (alpha) and global (beta) maps.
    attn_loss_local_target: float = 0.5  # paper; authors' code 0.9
    attn_loss_global_target: float = 0.05  # paper; authors' code 0.1
    attn_loss_weight: float = 1.0
    # "per_sequence": eq. 3 on each sequence's map, averaged over the batch (the paper);
    # "batch_map": eq. 3 on the batch-averaged map (the authors' utils/train.py).
    attn_loss_reduction: str = "per_sequence"
    # Not in the paper: every step sees only itself and the steps before it (band masks cut to the past, a forward
    # LSTM of twice the width instead of the BiLSTM). The stream emits each window's newest row, which a BiLSTM and
    # two-sided bands train for least (its backward pass has seen one step there); a causal model trains every row
    # for what the stream sends.
    causal: bool = False
    # Not in the paper. global_norm: the global vector is standardised (per-dimension mean and scale, buffers set from
    # the training data) before the fusion; global_skip: a linear path from it straight to (valence, arousal), added
    # to the sequence model's output. The song-level mood a frozen encoder hears then reaches the output in one
    # layer, where through the fusion's sigmoid and three post-norm layers a model trained on real music collapsed to
    # one curve for every song (see the model card).
    global_norm: bool = False
    global_skip: bool = False
    # Not in the paper: each slice's loudness, onset strength and its swing, appended to the adapter's output
    # (pdmer.model.adapter.slice_statistics says why).
    slice_stats: bool = False
    # Not in the paper: a linear path from the mean of the slice statistics over each step and the trailing_stats - 1
    # steps before it straight to (valence, arousal), added to the output (0: none; needs slice_stats). On VGMIDI
    # train pieces, arousal follows the onset strength of the last ~10 s best (20 steps; diagnostics/onset_arousal.py).
    trailing_stats: int = 0
    # Not in the paper: dropout on the fusion's inputs (each slice's local features and the global vector), for a
    # model that overfits its few training songs (the global skip's input is left whole).
    input_dropout: float = 0.0
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        if self.hidden_dim % self.num_heads:
            raise InputError(f"hidden_dim={self.hidden_dim} must be a multiple of num_heads={self.num_heads}")
        if not 0 <= self.input_dropout < 1:
            raise InputError(f"input_dropout={self.input_dropout} must be in [0, 1)")
        if self.trailing_stats < 0 or (self.trailing_stats and not self.slice_stats):
            raise InputError(f"trailing_stats={self.trailing_stats} must be >= 0, and > 0 only with slice_stats = true")
        if not (0 <= self.local_band and 0 <= self.global_band):
            raise InputError(f"band widths must be >= 0, got local_band={self.local_band}, global_band={self.global_band}")
        if self.attn_loss_reduction not in ("per_sequence", "batch_map"):
            raise InputError(
                f"attn_loss_reduction={self.attn_loss_reduction!r} must be 'per_sequence' or 'batch_map'"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.num_heads


PRESETS: dict[str, ModelConfig] = {
    # The paper's model with ImageBind global features: ~29.7 M trainable parameters, as the authors' model.
    "paper": ModelConfig(),
    # The authors' code exactly (for parity with their checkpoints): attention-loss targets 0.9 / 0.1 on the
    # batch-averaged maps. Architecture as "paper"; sizes of their tiny fixture are overrides of this preset.
    "authors": ModelConfig(
        attn_loss_local_target=0.9, attn_loss_global_target=0.1, attn_loss_reduction="batch_map"
    ),
    # The embedded default: same code, D 256, for the small offline encoder (musicnn, 200-d).
    "small": ModelConfig(
        global_dim=200, hidden_dim=256, num_heads=8, ffn_dim=512, lstm_hidden=64, head_hidden=64
    ),
}
ModelConfig.PRESETS = PRESETS
