"""Offline prediction of a whole song on the ONNX runtime: ``pdmer predict``.

The song is cut into 0.5 s log-mel slices; each step's global vector comes from the windows the model was trained
with (recorded in the checkpoint; by default the trailing 30 s, refreshed every 3 s and used one refresh later:
what the live stream sees). Each step's value is the newest row of the model on the (at most 60) steps up to it
(:mod:`pdmer.model.inference`), silent slices left out, as the stream runs it: an offline curve is what
``pdmer-stream --source FILE --fast`` sends, not a look-ahead one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pdmer.audio import SILENCE_DB, first_sound, silent_slices
from pdmer.data.curves import STEP_SECONDS
from pdmer.data.plain import curve_csv
from pdmer.errors import InputError
from pdmer.export.runtime import OnnxModel
from pdmer.export.song import MIN_SECONDS, Progress, read_song, waveform_features
from pdmer.model.inference import SlidingWindows, newest_rows


@dataclass
class Deployed:
    """An exported model and what feeds it: the global encoder and windows recorded with it."""

    onnx: OnnxModel
    encoder: object  # pdmer.model.encoders.GlobalEncoder
    windows: object  # pdmer.data.features.GlobalWindows
    name: str  # the base model's file name
    profile: str = "default"


def load_deployed(path: str | Path | None, *, profile: str | None = None, device: str = "auto",
                  imagebind: str | None = None, threads: int | None = None,
                  encoder_threads: int | None = None) -> Deployed:
    """A model from a .onnx export, or from a .safetensors checkpoint exported (and checked) in memory; with a
    ``profile``, that listener's adapted export, after checking it was made from this base model. Without either,
    the embedded default model. ``threads``: the model's onnxruntime threads; ``encoder_threads``: the global
    encoder's (None: every core)."""
    from pdmer.data.features import recorded_inputs
    from pdmer.evaluate.run import checkpoint_name
    from pdmer.export.graph import to_onnx
    from pdmer.model.checkpoint import deployment_metadata, load_model

    chosen = load_profile(profile) if profile else None
    if path is None and (chosen is None or chosen.folder is None):
        from pdmer.defaults import default_model

        path = default_model()  # the embedded default (pdmer/assets/default)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"model {path} does not exist (give a .safetensors checkpoint or a .onnx export)")
        if path.suffix == ".onnx":
            onnx = OnnxModel(path, device=device, threads=threads)
        else:
            onnx = OnnxModel(to_onnx(load_model(path), context=deployment_metadata(path)), device=device,
                             threads=threads)
        if chosen is not None:
            chosen.check_base(onnx.metadata["weights_sha256"], str(path))
    if chosen is not None and chosen.folder is not None:
        onnx = OnnxModel(chosen.onnx, device=device, threads=threads)
    name = checkpoint_name(path if path is not None else chosen.info["base"]["source"])
    if "global_encoder" not in onnx.metadata:
        raise InputError(f"{onnx.source} does not record its global encoder: export it again with pdmer export")
    encoder, windows = recorded_inputs(onnx.metadata, onnx.global_dim, source=onnx.source, imagebind=imagebind,
                                       device="cuda" if onnx.device == "cuda" else "cpu", threads=encoder_threads)
    return Deployed(onnx, encoder, windows, name, chosen.name if chosen else "default")


def use_threads(threads: int) -> None:
    """Torch's CPU threads for this process (log-mels, resampling). Measured on 2 cores: one thread costs ~15 %
    less CPU per song than two, whose workers spin between the many short steps of a song's features."""
    import torch

    torch.set_num_threads(threads)


def load_profile(name: str):
    from pdmer.profiles.profile import load

    return load(name)


def predict_onnx(onnx: OnnxModel, mel, global_feat, *, windows: SlidingWindows = SlidingWindows(),
                 silent=None) -> np.ndarray:
    """V-A [T, 2] for one song's log-mel [T, F, M] and per-step global vectors [T, G]: each step the newest row of
    its causal window, as :func:`pdmer.model.inference.predict_song` on the torch model and as the stream sends it
    (``silent`` steps are not fed and are NaN)."""
    mel, global_feat = np.asarray(mel, np.float32), np.asarray(global_feat, np.float32)
    size = windows.window
    # Each slice's local feature once (the graph returns them), then every window from cached local features.
    local = np.concatenate([onnx(mel[None, i : i + size], global_feat[None, i : i + size]).local[0]
                            for i in range(0, len(mel), size)])

    def newest(rows: np.ndarray) -> np.ndarray:
        result = onnx(mel[rows[:, -1:]], global_feat[rows], past_local=local[rows[:, :-1]])
        return result.va[:, -1]

    def every_row(rows: np.ndarray) -> np.ndarray:  # a causal model: each row is its own window's newest
        return onnx(mel[rows[-1:]][None], global_feat[rows][None], past_local=local[rows[:-1]][None]).va[0]

    causal = json.loads(onnx.metadata.get("config", "{}")).get("causal", False)
    return newest_rows(len(mel), windows, newest, silent, every_row=every_row if causal else None)


@dataclass
class SongPrediction:
    song: str
    model: str
    times: np.ndarray  # [T] seconds: the start of each 0.5 s step
    va: np.ndarray  # [T, 2] (valence, arousal)

    def rows(self):
        return [(round(float(t), 3), float(v), float(a)) for t, (v, a) in zip(self.times, self.va)]

    def to_json(self) -> str:
        return json.dumps({"song": self.song, "model": self.model, "step_seconds": STEP_SECONDS,
                           "columns": ["time_s", "valence", "arousal"], "rows": self.rows()})

    def to_csv(self) -> str:
        return curve_csv(self.times, self.va)  # the format's one writer: what pdmer predict --csv writes


def predict_file(deployed: Deployed, audio: str | Path, *, progress: Progress | None = None):
    """(SongPrediction, waveform, rate) of an audio file."""
    predictions, waveform, rate = predict_each([deployed], audio, progress=progress)
    return predictions[0], waveform, rate


def predict_each(deployments: list[Deployed], audio: str | Path, *, progress: Progress | None = None):
    """([SongPrediction per deployment], waveform, rate): several profiles of one song. The features are computed
    once for every deployment that records the same global encoder and windows (profiles of one base model).

    As ``pdmer-stream --source FILE`` does, the slices start at the file's first sound (the first sample above the
    silence level) and silent slices are not fed: the values are the stream's, step for step. Times are the
    file's (the first sound's time plus 0.5 s per step)."""
    waveform, rate = read_song(audio)
    start = first_sound(waveform)
    if start is None or (len(waveform) - start) / rate < MIN_SECONDS:
        raise InputError(f"{audio} is silent (nothing above {SILENCE_DB:g} dBFS for {MIN_SECONDS} s): "
                         "nothing to predict")
    heard = waveform[start:]
    features, predictions = {}, []
    for deployed in deployments:
        key = (deployed.onnx.metadata["global_encoder"], deployed.windows)
        if key not in features:
            mel, global_feat = waveform_features(deployed.encoder, deployed.windows, heard, rate, progress=progress)
            features[key] = (mel.numpy(), global_feat.numpy(), silent_slices(heard, rate, len(mel)))
        mel, global_feat, silent = features[key]
        va = predict_onnx(deployed.onnx, mel, global_feat, silent=silent)
        times = start / rate + np.arange(len(va)) * STEP_SECONDS
        predictions.append(SongPrediction(Path(audio).name, deployed.name, times, va))
    return predictions, waveform, rate
