"""Load a model trained with the authors' code (Littleor/Personalized-DMER, ``models/PDMER.py``) into ``DSAML``.

Their ``utils/train.py:save_model`` writes ``torch.save(state_dict)`` to ``<run>/models/epoch_N.pt`` and the run's
arguments to ``<run>/config.json``. Their state dict lists the ONE shared encoder three times (canonical
``multi_scale_attention.encoder.`` and two aliases); we keep the canonical copy. Their head emits
(arousal, valence); ours (valence, arousal), so the last Linear's two rows are swapped on load.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from pdmer.errors import CheckpointError
from pdmer.model.config import ModelConfig
from pdmer.model.dsaml import DSAML

ENCODER = "multi_scale_attention.encoder.encoder.layer."
ALIASES = (
    "multi_scale_attention.multi_scale_attention.local_attention.",
    "multi_scale_attention.multi_scale_attention.global_attention.",
)

# Their name (after the layer index for encoder keys) -> ours.
_LAYER_PARTS = {
    "attention.attention.query.": "attention.query.",
    "attention.attention.key.": "attention.key.",
    "attention.attention.value.": "attention.value.",
    "attention.attention.distance_embedding.": "attention.distance_embedding.",
    "attention.output.dense.": "attention_out.",
    "attention.output.LayerNorm.": "attention_norm.",
    "intermediate.dense.": "ffn_in.",
    "output.dense.": "ffn_out.",
    "output.LayerNorm.": "ffn_norm.",
}
_PREFIXES = {
    "spectrogram_feature_extractor.feature_extractor.": "adapter.blocks.",
    "spectrogram_feature_extractor.conv1x1.": "adapter.reduce.",
    "fusion_model.spectrogram_feature_project.": "fusion.local_proj.",
    "fusion_model.fusion_project.": "fusion.out_proj.",
    "sequence_predict_model.bilstm.": "predictor.lstm.",
    "sequence_predict_model.layers.0.": "predictor.hidden.",
    "sequence_predict_model.layers.2.": "predictor.out.",
}


def _our_key(key: str) -> str:
    if key.startswith(ENCODER):
        index, rest = key[len(ENCODER) :].split(".", 1)
        for theirs, ours in _LAYER_PARTS.items():
            if rest.startswith(theirs):
                return f"encoder.layers.{index}.{ours}{rest[len(theirs):]}"
    for theirs, ours in _PREFIXES.items():
        if key.startswith(theirs):
            return ours + key[len(theirs) :]
    raise CheckpointError(f"unexpected key {key!r} in the authors' state dict; is this a PDMERModel checkpoint?")


def convert_state_dict(theirs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The authors' PDMERModel state dict -> ours (aliases dropped, V-A order swapped)."""
    theirs = {key.removeprefix("module."): value for key, value in theirs.items()}  # a wrapped (MAML/DDP) model
    ours = {}
    for key, value in theirs.items():
        if key.startswith(ALIASES) or key.startswith("imagebind_model."):
            continue
        ours[_our_key(key)] = value
    for name in ("predictor.out.weight", "predictor.out.bias"):
        if name in ours:
            ours[name] = ours[name].flip(0)  # rows (arousal, valence) -> (valence, arousal)
    return ours


def infer_config(theirs: dict[str, torch.Tensor], run_config: dict | None = None, **overrides) -> ModelConfig:
    """Sizes from the tensors themselves; band widths and dropout from the run's config.json when given."""
    theirs = {key.removeprefix("module."): value for key, value in theirs.items()}
    try:
        hidden = theirs["fusion_model.fusion_project.weight"].shape[0]
        distance = theirs[ENCODER + "0.attention.attention.distance_embedding.weight"]
        layers = {int(m.group(1)) for k in theirs if (m := re.match(re.escape(ENCODER) + r"(\d+)\.", k))}
        values = dict(
            global_dim=hidden,  # their fusion adds the global embedding unprojected
            hidden_dim=hidden,
            num_layers=len(layers),
            num_heads=hidden // distance.shape[1],
            ffn_dim=theirs[ENCODER + "0.intermediate.dense.weight"].shape[0],
            max_relative_distance=(distance.shape[0] + 1) // 2,
            lstm_hidden=theirs["sequence_predict_model.bilstm.weight_hh_l0"].shape[1],
            head_hidden=theirs["sequence_predict_model.layers.0.weight"].shape[0],
        )
    except KeyError as missing:
        raise CheckpointError(f"the authors' state dict lacks {missing}; is this a PDMERModel checkpoint?") from None
    run = run_config or {}
    for ours, theirs_name in (
        ("local_band", "local_context_length"),
        ("global_band", "global_context_length"),
        ("dropout", "dropout_rate"),
    ):
        if theirs_name in run:
            values[ours] = run[theirs_name]
    return ModelConfig.preset("authors", **{**values, **overrides})


def load_authors_checkpoint(path: str | Path, **overrides) -> DSAML:
    """A ``DSAML`` (eval mode) from the authors' ``epoch_N.pt``; reads ``<run>/config.json`` beside ``models/``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        theirs = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for unreadable files
        raise CheckpointError(f"cannot read {path} as a torch checkpoint: {error}") from None
    run_config_path = path.parent.parent / "config.json"
    run_config = json.loads(run_config_path.read_text()) if run_config_path.is_file() else None
    return build_from_authors(theirs, run_config, **overrides)


def build_from_authors(theirs: dict[str, torch.Tensor], run_config: dict | None = None, **overrides) -> DSAML:
    model = DSAML(infer_config(theirs, run_config, **overrides))
    try:
        model.load_state_dict(convert_state_dict(theirs), strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"the authors' weights do not fit the inferred model: {error}") from None
    return model.eval()
