"""Running an exported graph with onnxruntime: provider choice, thread settings for a real-time process, checks.

``OnnxModel(path)(mel, global_feat)`` takes what the torch model takes (log-mel slices [B, T, 51, 128] and global
vectors [B, G] or [B, T, G]) and returns V-A [B, T, 2] as (valence, arousal), plus the local features to reuse.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pdmer.errors import CheckpointError, InputError
from pdmer.sessions import session_options

# The exported file's interface, which pdmer.export.graph writes and this module checks and feeds. It lives here,
# below the exporter (which imports this module to check its output), so that the two never import each other.
FORMAT = "pdmer.onnx/1"
INPUTS = ("mel", "past_local", "global")
OUTPUTS = ("va", "local")
DEVICES = ("auto", "cpu", "cuda")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
# A real-time process shares the machine with the audio thread and the global encoder: a few threads, and no
# spin-waiting between calls (spinning keeps cores busy for ~ms after each call, which the encoder then lacks).
DEFAULT_THREADS = 2


@dataclass
class OnnxOutput:
    va: np.ndarray  # [B, T, 2] (valence, arousal)
    local: np.ndarray  # [B, T, L] local features of every step: the next call's past_local


def reexport_hint(source: str) -> str:
    return f"export it again from its checkpoint: pdmer export CHECKPOINT -o {source}"


def cuda_usable(ort) -> bool:
    """onnxruntime-gpu offers its CUDA provider on every machine, and logs an error when it then finds no driver:
    ask for it only where the driver library loads."""
    import ctypes

    if CUDA not in ort.get_available_providers():
        return False
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


class OnnxModel:
    """An exported pdmer graph in an onnxruntime session.

    ``device``: "cpu", "cuda" (refused with a clear message when onnxruntime cannot use a GPU here) or "auto" (CUDA
    when it works, else CPU). ``threads``: intra-op threads (default 2, or fewer cores). ``expect``: a model config
    the graph must have been exported from (a profile's base, for instance)."""

    def __init__(self, source: str | Path | bytes, *, device: str = "auto", threads: int | None = None,
                 expect=None):
        import onnxruntime as ort

        if device not in DEVICES:
            raise InputError(f"device {device!r} must be one of {', '.join(DEVICES)}")
        self.source = "<memory>" if isinstance(source, bytes) else str(source)
        if not isinstance(source, bytes) and not Path(source).is_file():
            raise InputError(f"ONNX model {source} does not exist")
        options = session_options(threads or min(DEFAULT_THREADS, os.cpu_count() or 1))
        wanted = [CUDA, CPU] if device in ("auto", "cuda") and cuda_usable(ort) else [CPU]
        try:
            self.session = ort.InferenceSession(source if isinstance(source, bytes) else str(source), options,
                                                providers=wanted)
        except Exception as error:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, ...)
            raise CheckpointError(f"{self.source} is not a readable ONNX model ({type(error).__name__}: "
                                  f"{str(error).strip()[:200]}); it may be truncated or corrupt: "
                                  f"{reexport_hint(self.source)}") from None
        self.providers = self.session.get_providers()
        if device == "cuda" and CUDA not in self.providers:
            raise InputError("device cuda: onnxruntime cannot use a CUDA GPU on this machine "
                             f"(it offers {', '.join(ort.get_available_providers())}): use --device cpu")
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.check_metadata()
        if expect is not None and expect.to_dict() != self.config:
            changed = sorted(k for k, v in expect.to_dict().items() if self.config.get(k) != v)
            raise CheckpointError(f"{self.source} was exported from another model config (differs in {changed}); "
                                  f"{reexport_hint(self.source)}")

    @property
    def device(self) -> str:
        return "cuda" if self.providers[0] == CUDA else "cpu"

    def check_metadata(self) -> None:
        # A model that ignores the global vector (the DAMFF and CRNN baselines) has no "global" input.
        self.inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if (self.metadata.get("format") != FORMAT or self.inputs[:2] != list(INPUTS[:2])
                or not set(self.inputs) <= set(INPUTS) or outputs != list(OUTPUTS)):
            raise CheckpointError(f"{self.source} is an ONNX model but not a pdmer export (format "
                                  f"{self.metadata.get('format')!r}, inputs {self.inputs}): {reexport_hint(self.source)}")
        try:
            self.config = json.loads(self.metadata["config"])
            self.global_dim, self.local_dim = int(self.config["global_dim"]), int(self.metadata["local_dim"])
        except (KeyError, ValueError, TypeError) as error:
            raise CheckpointError(f"{self.source}: its pdmer metadata is incomplete ({error}): "
                                  f"{reexport_hint(self.source)}") from None
        self.mel_shape = (int(self.config["mel_frames"]), int(self.config["n_mels"]))

    def json_field(self, key: str, default=None):
        return json.loads(self.metadata[key]) if key in self.metadata else default

    def __call__(self, mel, global_feat, *, past_local=None) -> OnnxOutput:
        """mel [B, N, F, M] new slices; global_feat [B, G] or [B, P + N, G]; past_local [B, P, L] or None."""
        mel = np.asarray(mel, dtype=np.float32)
        if mel.ndim != 4 or mel.shape[1] < 1 or mel.shape[2:] != self.mel_shape:
            raise InputError(f"mel must be [batch, steps >= 1, {self.mel_shape[0]}, {self.mel_shape[1]}], "
                             f"got {list(mel.shape)}")
        batch = mel.shape[0]
        if past_local is None:
            past_local = np.zeros((batch, 0, self.local_dim), np.float32)
        past_local = np.asarray(past_local, dtype=np.float32)
        if past_local.ndim != 3 or past_local.shape[0] != batch or past_local.shape[2] != self.local_dim:
            raise InputError(f"past_local must be [batch={batch}, steps, {self.local_dim}], got {list(past_local.shape)}")
        steps = past_local.shape[1] + mel.shape[1]
        global_feat = np.asarray(global_feat, dtype=np.float32)
        if global_feat.ndim == 2:
            global_feat = np.repeat(global_feat[:, None, :], steps, axis=1)
        if global_feat.shape != (batch, steps, self.global_dim):
            raise InputError(f"global_feat must be [batch={batch}, {self.global_dim}] or [batch, steps={steps}, "
                             f"{self.global_dim}], got {list(global_feat.shape)}")
        feeds = {"mel": mel, "past_local": past_local, "global": global_feat}
        va, local = self.session.run(list(OUTPUTS), {name: feeds[name] for name in self.inputs})
        return OnnxOutput(va=va, local=local)
