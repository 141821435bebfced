"""A song as an exported model takes it: its samples (long enough for one step), log-mel slices and per-step global
vectors. Shared by ``pdmer.export.predict`` (whole-song curves) and ``pdmer.profiles.profile`` (a listener's
adaptation song); it sits below both, since predict loads profiles and profiles read songs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pdmer.data.curves import STEP_SECONDS
from pdmer.errors import InputError

Progress = Callable[[int, int], None]  # (done, total)
MIN_SECONDS = STEP_SECONDS  # one whole 0.5 s slice: the model's smallest input


def read_song(audio: str | Path):
    """(mono samples, rate) of an audio file at least MIN_SECONDS long."""
    from pdmer.audio import load_audio

    waveform, rate = load_audio(audio)
    seconds = len(waveform) / rate
    if seconds < MIN_SECONDS:
        raise InputError(f"{audio} is {seconds:.2f} s long; pdmer needs at least {MIN_SECONDS} s of audio "
                         "(one 0.5 s step)")
    return waveform, rate


def waveform_features(encoder, windows, waveform, rate: int, *, progress: Progress | None = None):
    """(log-mel [T, F, M], global [T, G]) of mono samples."""
    from pdmer.data.features import global_vectors
    from pdmer.model.preprocess import LogMelSlicer, MelConfig

    mel = LogMelSlicer(MelConfig()).each_slice(waveform, rate)  # resampled per slice, as the stream does
    return mel, global_vectors(encoder, windows, waveform, rate, len(mel), progress)
