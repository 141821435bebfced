"""Export: everything after the global encoder (adapter, fusion, dual-mask transformer, BiLSTM, head) as one ONNX graph.

The graph takes the *new* log-mel slices plus the local features of the slices before them, the way a language
model's ONNX export takes its past keys and values:

    mel         [B, N, 51, 128]  log-mel slices not seen before (N >= 1)
    past_local  [B, P, L]        the local features (adapter outputs) of the P slices before them (P may be 0)
    global      [B, P + N, G]    one global vector per step (trailing windows, as in training)
 -> va          [B, P + N, 2]    (valence, arousal) per step
    local       [B, P + N, L]    the local features of every step, to pass back as the next call's past_local

Offline, one call with P = 0 is the whole model (the parity tests use it). Live, the stream feeds one new slice per
hop and its cached past: the adapter, about half the work of a 60-step window, then runs on one slice instead of 60.
Global vectors are per step because the model is trained with per-step trailing windows (DESIGN.md §5, §7); a
caller with one vector per sequence repeats it (``OnnxModel`` does).

The file's metadata_props (:data:`FORMAT`) record what a runtime needs to check and feed the graph: the architecture
and config, the global encoder and windows, the V-A order and hashes of the base and the exported weights.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pdmer import __version__
from pdmer.errors import PdmerError
from pdmer.export.runtime import FORMAT, INPUTS, OUTPUTS, OnnxModel
from pdmer.fileio import atomic_path
from pdmer.model.adapt import Weights
from pdmer.model.checkpoint import weights_hash

OPSET = 17  # LayerNormalization is a single op from 17 on; onnxruntime >= 1.14 runs it
VA_ORDER = "valence,arousal"
TOLERANCE = 1e-4  # max |onnxruntime - torch| accepted by the check after export (issue 6)
CHECK_SHAPES = ((1, 1), (1, 7), (2, 60))  # (B, T) of the check after export: T < n_g, odd T, a training window


class ExportError(PdmerError):
    """The model could not be exported, or the export does not match torch."""


class SequenceGraph(nn.Module):
    """The traced module: new slices + past local features + per-step globals -> (va, local)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, mel: torch.Tensor, past_local: torch.Tensor, global_feat: torch.Tensor):
        local = torch.cat([past_local, self.model.local_features(mel)], dim=1)
        return self.model(None, global_feat, local=local).va, local


def local_dim(model: nn.Module) -> int:
    cfg = model.config
    with torch.no_grad():
        return int(model.local_features(torch.zeros(1, 1, cfg.mel_frames, cfg.n_mels)).shape[-1])


def example_inputs(model: nn.Module, batch: int, steps: int, *, past: int = 0, seed: int = 0):
    """Random (mel, past_local, global) of the graph's shapes: log-mel-like values, sigmoid-range globals."""
    cfg = model.config
    generator = torch.Generator().manual_seed(seed)
    mel = torch.randn(batch, steps - past, cfg.mel_frames, cfg.n_mels, generator=generator) * 2 - 6
    past_local = torch.randn(batch, past, local_dim(model), generator=generator)
    global_feat = torch.rand(batch, steps, cfg.global_dim, generator=generator)
    return mel, past_local, global_feat


def onnx_bytes(model: nn.Module) -> bytes:
    """The serialized ONNX graph of ``model`` (eval mode), with dynamic batch and time axes."""
    from pdmer.model.registry import architecture_of

    architecture_of(model)  # refuses modules that are not pdmer models
    graph = SequenceGraph(model).eval()
    buffer = io.BytesIO()
    dynamic = {"mel": {0: "batch", 1: "new_steps"}, "past_local": {0: "batch", 1: "past_steps"},
               "global": {0: "batch", 1: "steps"}, "va": {0: "batch", 1: "steps"}, "local": {0: "batch", 1: "steps"}}
    with warnings.catch_warnings():
        # The tracer warns about Python-side shape checks in forward; they hold for every shape the graph accepts.
        warnings.simplefilter("ignore")
        # dynamo=False: the TorchScript exporter keeps the BiLSTM's time axis dynamic (DESIGN.md §6 warns that the
        # dynamo exporter has frozen it); the parity checks cover several lengths either way.
        torch.onnx.export(graph, example_inputs(model, 1, 3, past=1), buffer, dynamo=False, opset_version=OPSET,
                          input_names=list(INPUTS), output_names=list(OUTPUTS), dynamic_axes=dynamic)
    return buffer.getvalue()


def build_metadata(model: nn.Module, *, base_hash: str, context: dict[str, str] | None = None) -> dict[str, str]:
    """metadata_props of an export: ``context`` carries what the checkpoint recorded (global encoder, windows,
    adaptation) and, for a profile, the profile's fields."""
    from pdmer.model.registry import architecture_of

    return {
        **(context or {}),
        "format": FORMAT,
        "pdmer_version": __version__,
        "architecture": architecture_of(model),
        "preset": model.config.name,
        "config": json.dumps(model.config.to_dict()),
        "va_order": VA_ORDER,
        "local_dim": str(local_dim(model)),
        "base_model_sha256": base_hash,
        "weights_sha256": weights_hash(model),
    }


def to_onnx(model: nn.Module, *, weights: Weights | None = None, context: dict[str, str] | None = None,
            check: bool = True) -> bytes:
    """``model`` (or a copy carrying adapted ``weights``) as ONNX bytes with pdmer metadata; ``check`` runs
    onnx.checker and compares onnxruntime with torch on a few shapes (:data:`CHECK_SHAPES`)."""
    import copy

    import onnx

    base_hash = weights_hash(model)
    if weights is not None:
        model = copy.deepcopy(model)
        model.load_state_dict({name: w.detach() for name, w in weights.items()}, strict=True)
    model = model.eval()
    proto = onnx.load_from_string(onnx_bytes(model))
    for key, value in build_metadata(model, base_hash=base_hash, context=context).items():
        proto.metadata_props.add(key=key, value=value)
    data = proto.SerializeToString()
    if check:
        onnx.checker.check_model(proto, full_check=True)
        compare_with_torch(model, data)
    return data


def compare_with_torch(model: nn.Module, data: bytes, shapes=CHECK_SHAPES, tolerance: float = TOLERANCE) -> float:
    """Max |onnxruntime - torch| over ``shapes``; raises ExportError above ``tolerance``."""
    runtime = OnnxModel(data, device="cpu")
    worst = 0.0
    for batch, steps in shapes:
        mel, past_local, global_feat = example_inputs(model, batch, steps)
        with torch.no_grad():
            expected = model(mel, global_feat).va.numpy()
        worst = max(worst, float(np.abs(runtime(mel.numpy(), global_feat.numpy()).va - expected).max()))
    if not worst <= tolerance:
        raise ExportError(f"the ONNX graph differs from torch by {worst:.2e} (> {tolerance:g}); "
                          "please report this with the checkpoint's config")
    return worst


def export_onnx(model: nn.Module, path: str | Path, *, weights: Weights | None = None,
                context: dict[str, str] | None = None, check: bool = True) -> Path:
    """Write ``model`` (with ``weights`` if given) as a checked ONNX file, atomically; returns the path."""
    data = to_onnx(model, weights=weights, context=context, check=check)
    path = Path(path)
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return path
