"""The trainable architectures by name: DSAML and the baselines it is compared with (paper Tables 1-2).

Every architecture takes the same inputs (log-mel slices and the global feature, which a baseline may ignore),
returns a :class:`~pdmer.model.dsaml.DSAMLOutput` and knows its own training loss (``model.loss``), so training,
adaptation, evaluation and checkpoints treat them alike.
"""

from __future__ import annotations

from torch import nn

from pdmer.errors import InputError

ARCHITECTURES = ("dsaml", "damff", "crnn")


def _classes(architecture: str):
    if architecture == "dsaml":
        from pdmer.model.config import ModelConfig
        from pdmer.model.dsaml import DSAML

        return DSAML, ModelConfig
    if architecture == "damff":
        from pdmer.model.damff import DAMFF, DAMFFConfig

        return DAMFF, DAMFFConfig
    if architecture == "crnn":
        from pdmer.model.crnn import CRNN, CRNNConfig

        return CRNN, CRNNConfig
    raise InputError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")


def architecture_of(model: nn.Module) -> str:
    for name in ARCHITECTURES:
        if type(model) is _classes(name)[0]:
            return name
    raise InputError(f"{type(model).__name__} is not one of pdmer's architectures ({', '.join(ARCHITECTURES)})")


def config_from_dict(architecture: str, values: dict):
    return _classes(architecture)[1].from_dict(values)


def build_model(architecture: str, preset: str, **overrides) -> nn.Module:
    """A freshly initialised model: ``build_model("dsaml", "small", use_adapter=False)``."""
    model_class, config_class = _classes(architecture)
    return model_class(config_class.preset(preset, **overrides))


def from_config(architecture: str, config) -> nn.Module:
    return _classes(architecture)[0](config)
