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
        with open(path, "rb") as handle:  # what libsndfile would only call "not recognised", said plainly
            header = handle.read(4096)
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    if not header:
        raise InputError(f"cannot decode {path}: the file is empty; give an audio file (wav, flac, ogg, mp3)")
    if looks_like_text(header, minimum=1):
        raise InputError(f"cannot decode {path}: it is text, not decodable audio; give a wav, flac, ogg or mp3 "
                         "file (the audio itself, not a playlist or a page about it)")
    try:
        samples, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise InputError(undecodable(path, error)) from None
    if samples.shape[0] == 0:
        raise InputError(f"audio file {path} holds no samples")
    return samples.mean(axis=1), sample_rate


def looks_like_text(header: bytes, *, minimum: int = 16) -> bool:
    """Printable ASCII only (tabs and newlines aside), at least ``minimum`` bytes: no audio file starts that way, and
    no recorded sound stays within those bytes for long."""
    return len(header) >= minimum and all(32 <= byte < 127 or byte in b"\t\n\r" for byte in header)


def undecodable(path: Path, error: Exception) -> str:
    """Why ``path`` cannot be read, and the fix. libsndfile says "File does not exist or is not a regular file" of
    any file it cannot recognise (a text file named .mp3): the file exists, so that part is left out."""
    detail = str(error).split(": ", 1)[-1].strip()  # without libsndfile's "Error opening 'PATH'" (the path is named)
    misleading = "does not exist or is not a regular file" in detail
    reason = "libsndfile does not recognise its contents" if misleading else detail.rstrip(".")
    return (f"cannot decode {path}: it is not decodable audio ({reason}); give a wav, flac, ogg or mp3 file, or "
            f"convert it first (e.g. ffmpeg -i {path} {path.stem}-converted.wav)")


SILENCE_DB = -60.0  # a 0.5 s slice whose RMS is below this (dBFS) is silence: the stream does not feed it


def level_db(samples: np.ndarray) -> float:
    """RMS level of ``samples`` in dBFS (floored at -200 dB for digital silence)."""
    return 20 * np.log10(max(float(np.sqrt(np.mean(np.asarray(samples, np.float64) ** 2))), 1e-10))


def silent_slices(waveform: np.ndarray, rate: int, steps: int, silence_db: float = SILENCE_DB) -> np.ndarray:
    """[steps] bool: which 0.5 s slices (slice k = samples [0.5 k, 0.5 k + 0.5) s) are silence, as the stream
    judges them (pdmer.streamer.engine)."""
    from pdmer.data.curves import STEP_SECONDS

    size = round(rate * STEP_SECONDS)
    return np.array([level_db(waveform[k * size : (k + 1) * size]) < silence_db for k in range(steps)], bool)


def first_sound(samples: np.ndarray, silence_db: float = SILENCE_DB) -> int | None:
    """Index of the first sample at or above the silence level (None: there is none). ``pdmer-stream`` starts its
    clock there (--start-at-sound) and ``pdmer predict`` its slices, so both cut the same slices from a file."""
    loud = np.flatnonzero(np.abs(samples) >= 10 ** (silence_db / 20))
    return int(loud[0]) if loud.size else None
