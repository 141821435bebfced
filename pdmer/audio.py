"""Reading audio files: soundfile decodes wav/flac/ogg/mp3 without torchcodec; errors name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pdmer.errors import InputError


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """(mono float32 samples [N], sample rate) of an audio file."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise InputError(f"audio file {path} does not exist")
    try:
        samples, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise InputError(f"cannot decode {path}: {error} (supported: wav, flac, ogg, mp3)") from None
    if samples.shape[0] == 0:
        raise InputError(f"audio file {path} holds no samples")
    return samples.mean(axis=1), sample_rate
