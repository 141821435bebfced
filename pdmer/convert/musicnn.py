"""musicnn 0.1.0 wheel -> ``musicnn_msd.safetensors`` for :class:`pdmer.model.musicnn.Musicnn`, without TensorFlow.

Get the wheel with ``pip download --no-deps musicnn==0.1.0`` (``pip install musicnn`` fails on Python 3.11). Only the
model's variables are kept: Adam slots, ``beta*_power`` and other training state are dropped.
"""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from pdmer.convert.tf_bundle import TensorBundle
from pdmer.errors import CheckpointError, InputError
from pdmer.fileio import atomic_path

CHECKPOINT_IN_WHEEL = "musicnn/MSD_musicnn/"  # files ".index" and ".data-00000-of-00001" under this prefix
LICENSE_IN_WHEEL = "musicnn-0.1.0.dist-info/LICENSE.md"

# TF layer -> our module. tf.compat.v1.layers numbers layers in creation order (models.py: build_musicnn).
LAYERS = {
    "batch_normalization": "front.input_bn",
    "conv2d": "front.timbral.0.conv",
    "batch_normalization_1": "front.timbral.0.bn",
    "conv2d_1": "front.timbral.1.conv",
    "batch_normalization_2": "front.timbral.1.bn",
    "conv2d_2": "front.temporal.0.conv",
    "batch_normalization_3": "front.temporal.0.bn",
    "conv2d_3": "front.temporal.1.conv",
    "batch_normalization_4": "front.temporal.1.bn",
    "conv2d_4": "front.temporal.2.conv",
    "batch_normalization_5": "front.temporal.2.bn",
    "conv2d_5": "mid.convs.0",
    "batch_normalization_6": "mid.bns.0",
    "conv2d_6": "mid.convs.1",
    "batch_normalization_7": "mid.bns.1",
    "conv2d_7": "mid.convs.2",
    "batch_normalization_8": "mid.bns.2",
    "batch_normalization_9": "back.pool_bn",
    "dense": "back.dense",
    "batch_normalization_10": "back.dense_bn",
    "dense_1": "back.out",
}
VARIABLES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var",
             "kernel": "weight", "bias": "bias"}  # fmt: skip


def _to_torch_layout(ours: str, value: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(value)
    if value.ndim == 4:  # TF conv kernel (kh, kw, in, out)
        tensor = tensor.permute(3, 2, 0, 1)  # Conv2d (out, in, kh, kw)
        if ours.startswith("mid."):  # the mid end's (7 x channels) kernels span all channels: Conv1d (out, in, 7)
            tensor = tensor[:, 0].permute(0, 2, 1)
    elif value.ndim == 2:  # TF dense kernel (in, out) -> Linear (out, in)
        tensor = tensor.T
    return tensor.contiguous()


def convert_bundle(bundle: TensorBundle) -> dict[str, torch.Tensor]:
    """Our state dict (BatchNorm ``num_batches_tracked`` included) from the checkpoint's model variables."""
    state = {}
    for name in bundle.names():
        layer, _, variable = name.partition("/")
        if layer not in LAYERS or variable not in VARIABLES:
            continue  # optimizer slots (".../Adam", ".../Adam_1") and beta1/beta2_power
        ours = f"{LAYERS[layer]}.{VARIABLES[variable]}"
        state[ours] = _to_torch_layout(ours, bundle.tensor(name))
    for layer in LAYERS.values():
        if f"{layer}.running_mean" in state:
            state[f"{layer}.num_batches_tracked"] = torch.zeros((), dtype=torch.int64)
    return state


def convert_wheel(wheel: str | Path, output: str | Path) -> Path:
    """Read the MSD_musicnn checkpoint inside ``wheel`` and write our safetensors state dict atomically."""
    wheel, output = Path(wheel), Path(output)
    if not wheel.is_file():
        raise InputError(f"wheel {wheel} does not exist; get it with: pip download --no-deps musicnn==0.1.0")
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise InputError(f"{wheel} is not a wheel (zip) file") from None
    with archive, tempfile.TemporaryDirectory() as scratch:
        members = [m for m in archive.namelist() if m.startswith(CHECKPOINT_IN_WHEEL + ".")]
        if not members:
            raise CheckpointError(f"{wheel} holds no {CHECKPOINT_IN_WHEEL} checkpoint; is it musicnn 0.1.0?")
        for member in members:
            archive.extract(member, scratch)
        state = convert_bundle(TensorBundle(f"{scratch}/{CHECKPOINT_IN_WHEEL}"))  # a prefix, not a folder
        licence = archive.read(LICENSE_IN_WHEEL).decode() if LICENSE_IN_WHEEL in archive.namelist() else ""
    metadata = {
        "source": f"{wheel.name} ({CHECKPOINT_IN_WHEEL})",
        "source_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "licence": "ISC (musicnn by Jordi Pons and Xavier Serra); full text in LICENSE-musicnn.md beside this file",
    }
    with atomic_path(output) as temporary:
        save_file(state, str(temporary), metadata=metadata)
    if licence:
        with atomic_path(output.parent / "LICENSE-musicnn.md") as temporary:
            temporary.write_text(licence)
    return output


class _AllFeatures(torch.nn.Module):
    """Musicnn with its per-patch feature outputs as a tuple (in ONNX_OUTPUTS order), for the exporter."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, mel: torch.Tensor):
        out = self.model(mel)
        return tuple(out[name] for name in ONNX_OUTPUTS)


def write_onnx(weights: str | Path, output: str | Path) -> Path:
    """``musicnn_msd.onnx``: the eval-mode network of ``weights`` for onnxruntime (about 2x faster than torch eager
    on CPU). Its metadata records the SHA-256 of the safetensors it was made from, so a stale file is detected."""
    import io
    import warnings

    import onnx
    from safetensors.torch import load_file

    from pdmer.fileio import file_sha256
    from pdmer.model.musicnn import N_MELS, PATCH_FRAMES, Musicnn

    model = Musicnn()
    model.load_state_dict(load_file(str(weights)), strict=True)
    graph = _AllFeatures(model.eval().requires_grad_(False)).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about the Python-side shape check in forward
        torch.onnx.export(graph, (torch.zeros(2, PATCH_FRAMES, N_MELS),), buffer, dynamo=False, opset_version=17,
                          input_names=["mel"], output_names=list(ONNX_OUTPUTS), dynamic_axes={"mel": {0: "patches"}})
    proto = onnx.load_from_string(buffer.getvalue())
    proto.metadata_props.add(key="weights_sha256", value=file_sha256(weights))
    proto.metadata_props.add(key="licence", value="ISC (musicnn by Jordi Pons and Xavier Serra)")
    with atomic_path(output) as temporary:
        onnx.save(proto, str(temporary))
    return Path(output)


ONNX_OUTPUTS = ("penultimate", "mean_pool", "max_pool", "taggram")  # pdmer.model.encoders.FEATURE_DIMS
