"""pdmer's own model checkpoints: safetensors weights with the architecture and its config in the file's metadata.

The config travels with the weights, so ``load_model(path)`` rebuilds the model (DSAML, DAMFF or CRNN) from the
file alone. Writes are
atomic (a temporary file in the same folder, then rename): an interrupted save never leaves a broken checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from pdmer.errors import CheckpointError
from pdmer.fileio import atomic_path
from pdmer.errors import InputError
from pdmer.model.registry import architecture_of, config_from_dict, from_config

FORMAT = "pdmer.model/1"
DSAML_ONLY_FORMAT = "pdmer.dsaml/1"  # before the baselines: no "architecture" key, always DSAML


def save_model(model: nn.Module, path: str | Path, *, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model``'s weights and config to ``path`` (.safetensors) atomically; returns the path."""
    path = Path(path)
    header = {**(metadata or {}), "format": FORMAT, "architecture": architecture_of(model),
              "config": json.dumps(model.config.to_dict())}
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata=header)
    return path


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """The model stored at ``path`` by :func:`save_model`, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as file:
            header = file.metadata() or {}
            tensors = {name: file.get_tensor(name) for name in file.keys()}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"cannot read {path} as a safetensors checkpoint: {error}") from None
    if header.get("format") not in (FORMAT, DSAML_ONLY_FORMAT):
        raise CheckpointError(
            f"{path} is not a pdmer model checkpoint (format {header.get('format')!r}, expected {FORMAT!r}); "
            "for weights from the authors' code use pdmer.model.authors.load_authors_checkpoint"
        )
    architecture = header.get("architecture", "dsaml")
    try:
        model = from_config(architecture, config_from_dict(architecture, json.loads(header["config"])))
    except (InputError, KeyError, ValueError) as error:
        raise CheckpointError(f"{path}: its stored model config is not usable: {error}") from None
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit its own config: {error}") from None
    return model.to(device).eval()


def weights_hash(model: nn.Module) -> str:
    """SHA-256 over the names, shapes and bytes of every parameter and buffer: identifies a model's weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}:{array.dtype}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata stored with a checkpoint (format, config, and what training recorded)."""
    try:
        with safe_open(str(path), framework="pt") as file:
            return dict(file.metadata() or {})
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"cannot read {path} as a safetensors checkpoint: {error}") from None


# What a deployed model needs besides its weights, as recorded by training (metadata keys, JSON values).
DEPLOYMENT_KEYS = ("global_encoder", "global_windows", "adaptation")
# Checkpoints written before training recorded their encoder were trained on pdmer 0.1's spread patches.
DEFAULT_GLOBAL_ENCODER = {"name": "musicnn", "options": {"patches": "spread"}}


def deployment_metadata(path: str | Path) -> dict[str, str]:
    """The checkpoint's global encoder and windows (defaults where it predates them) and adaptation, if recorded."""
    from pdmer.data.features import LEGACY_WINDOWS

    metadata = read_metadata(path)
    context = {key: metadata[key] for key in DEPLOYMENT_KEYS if key in metadata}
    context.setdefault("global_encoder", json.dumps(DEFAULT_GLOBAL_ENCODER))
    context.setdefault("global_windows", json.dumps(LEGACY_WINDOWS))
    return context
