"""What pdmer uses when it is not told otherwise: the embedded default model (``pdmer/assets/default``, see its
MODEL_CARD.md) and, for a machine without an input device, a short excerpt of real music to stream
(``pdmer/assets/music``, CC BY-SA 3.0, see its ATTRIBUTION.md). Both ship inside the package: nothing is downloaded."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pdmer.errors import InputError

ASSETS = Path(str(resources.files("pdmer"))) / "assets"
DEFAULT_MODEL_DIR = ASSETS / "default"
MUSIC_EXCERPT = ASSETS / "music" / "palace-excerpt.ogg"
EXCERPT_CREDIT = "\"Palace\" by Will Savino, CC BY-SA 3.0"


def default_model() -> Path:
    """The embedded default model's ONNX export (what the stream and ``pdmer predict`` run without --model)."""
    return existing(DEFAULT_MODEL_DIR / "model.onnx")


def default_checkpoint() -> Path:
    """The embedded default model's weights (the base of profiles made without --base)."""
    return existing(DEFAULT_MODEL_DIR / "model.safetensors")


def has_default_model() -> bool:
    return (DEFAULT_MODEL_DIR / "model.safetensors").is_file()


def existing(path: Path) -> Path:
    if not path.is_file():
        raise InputError(f"this pdmer build has no embedded default model ({path} is missing); give --model "
                         "CHECKPOINT_OR_ONNX, or reinstall pdmer")
    return path
