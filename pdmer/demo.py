"""The demo behind ``pdmer demo``: audio in, one (valence, arousal) pair per 0.5 s out.

The weights are the embedded default model (``pdmer/assets/default``, see its MODEL_CARD.md) unless a checkpoint
is given (pdmer's own, or one from the authors' code). With ImageBind and no checkpoint there is no trained model
to use, and the weights are a seeded random initialisation: the output then shows the pipeline, not emotion. The
global feature comes from the embedded musicnn encoder, or from ImageBind when its checkpoint is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 44100


def generated_clip(seconds: float = 20.0, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A music-like clip in two sections: slow, quiet, low A-minor chords, then fast, loud, bright C-major ones."""
    rng = np.random.default_rng(0)
    half = seconds / 2
    sections = [
        (half, 60, [57, 60, 64], 0.15, 1.0),  # (length s, tempo bpm, MIDI chord, loudness, brightness)
        (seconds - half, 150, [72, 76, 79], 0.5, 3.0),
    ]
    pieces = []
    for length, tempo, chord, loudness, brightness in sections:
        beat = 60.0 / tempo
        t = np.arange(int(length * sample_rate)) / sample_rate
        since_beat = t % beat
        envelope = np.exp(-3.0 * since_beat / beat)  # a struck note on every beat
        tone = sum(
            np.sin(2 * np.pi * 440.0 * 2 ** ((note - 69) / 12) * k * t) / k ** (1.0 / brightness)
            for note in chord
            for k in (1, 2, 3)
        )
        pieces.append(loudness * envelope * tone / (3 * len(chord)) + 0.003 * rng.standard_normal(t.size))
    return np.concatenate(pieces).astype(np.float32)


@dataclass
class DemoResult:
    times: np.ndarray  # (T,) start of each 0.5 s slice, seconds
    va: np.ndarray  # (T, 2) valence, arousal
    source: str  # which weights and global encoder produced it


def run_demo(
    waveform: np.ndarray,
    sample_rate: int,
    *,
    imagebind_checkpoint: str | None = None,
    checkpoint: str | None = None,
    authors_checkpoint: str | None = None,
    seed: int = 0,
) -> DemoResult:
    import torch

    from pdmer.defaults import default_checkpoint, has_default_model
    from pdmer.errors import InputError
    from pdmer.model import DSAML
    from pdmer.model.encoders import load_global_encoder, model_config_for
    from pdmer.model.preprocess import LogMelSlicer

    # The global encoder: the paper's ImageBind when its checkpoint is given, else the embedded musicnn.
    if imagebind_checkpoint:
        encoder = load_global_encoder("imagebind", imagebind_checkpoint=imagebind_checkpoint)
    else:
        encoder = load_global_encoder("musicnn")

    torch.manual_seed(seed)
    if checkpoint:
        from pdmer.model.checkpoint import load_model

        model, weights = load_model(checkpoint), f"weights from {checkpoint}"
    elif authors_checkpoint:
        from pdmer.model.authors import load_authors_checkpoint

        model = load_authors_checkpoint(authors_checkpoint)
        weights = f"weights from the authors' code ({authors_checkpoint})"
    elif not imagebind_checkpoint and has_default_model():
        from pdmer.model.checkpoint import load_model

        model, weights = load_model(default_checkpoint()), "the embedded default model (see its MODEL_CARD.md)"
    else:
        model = DSAML(model_config_for(encoder)).eval()
        weights = f"UNTRAINED weights (seeded init, seed {seed}): the values show the pipeline, not emotion"
    if model.config.global_dim != encoder.dim:
        raise InputError(
            f"the model expects a {model.config.global_dim}-d global feature but the {encoder.name} encoder gives "
            f"{encoder.dim}-d; a model trained on ImageBind features needs --imagebind PATH"
        )

    slicer = LogMelSlicer()
    with torch.no_grad():
        mel = slicer(waveform, sample_rate)[None]  # (1, T, 51, 128)
        global_feat = encoder.embed(waveform, sample_rate)[None]  # (1, G): one vector for the whole clip
        va = model(mel, global_feat).va[0].numpy()
    times = np.arange(va.shape[0]) * slicer.config.slice_seconds
    return DemoResult(times=times, va=va, source=f"{weights}; global feature: {encoder.name}")
