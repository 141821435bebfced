"""The descriptors global encoder: each descriptor measures what its name says, on signals whose answer is known."""

import math

import numpy as np
import pytest
import torch

from pdmer.errors import InputError
from pdmer.model.descriptors import DESCRIPTOR_NAMES, DIM, SAMPLE_RATE, Descriptors
from pdmer.model.encoders import load_global_encoder

RATE = SAMPLE_RATE


def value(vector: torch.Tensor, name: str) -> float:
    return float(vector[DESCRIPTOR_NAMES.index(name)])


def harmonic_tone(hz: float, seconds: float, *, tilt: float = 1.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    partials = [k for k in range(1, 11) if k * hz < RATE / 2]
    wave = sum(k**-tilt * np.sin(2 * np.pi * k * hz * t) for k in partials)
    return amplitude * wave / np.abs(wave).max()


def chords(triads: list[list[int]], seconds_each: float = 1.0) -> np.ndarray:
    """Sustained triads (MIDI notes), one after another, each note a few harmonics."""
    parts = []
    for triad in triads:
        parts.append(sum(harmonic_tone(440.0 * 2 ** ((m - 69) / 12), seconds_each, tilt=2.0) for m in triad) / 3)
    return np.concatenate(parts)


def clicks(bpm: float, seconds: float) -> np.ndarray:
    wave = np.zeros(round(seconds * RATE))
    burst = np.exp(-np.arange(200) / 30.0) * np.random.default_rng(0).standard_normal(200)
    for start in np.arange(0.0, seconds - 0.05, 60.0 / bpm):
        first = round(start * RATE)
        wave[first : first + 200] += 0.5 * burst
    return wave


def describe(wave: np.ndarray) -> torch.Tensor:
    return Descriptors()(torch.from_numpy(wave))


def test_loudness_is_the_rms_level_in_dbfs():
    for amplitude in (0.5, 0.05):
        t = np.arange(5 * RATE) / RATE
        vector = describe(amplitude * np.sin(2 * np.pi * 440.0 * t))
        expected_db = 20 * math.log10(amplitude / math.sqrt(2))
        assert value(vector, "rms_db_mean") * 20 == pytest.approx(expected_db, abs=0.3)
        assert value(vector, "rms_db_std") < 0.02  # a steady tone


def test_register_and_brightness_are_told_apart():
    low, high = describe(harmonic_tone(220.0, 4)), describe(harmonic_tone(660.0, 4))
    assert value(low, "pitch_height") == pytest.approx(math.log2(220 / 440), abs=0.05)
    assert value(high, "pitch_height") == pytest.approx(math.log2(660 / 440), abs=0.05)
    dull, bright = describe(harmonic_tone(220.0, 4, tilt=2.5)), describe(harmonic_tone(220.0, 4, tilt=0.3))
    assert value(bright, "centroid_log2") > value(dull, "centroid_log2") + 0.5
    assert value(bright, "pitch_height") == pytest.approx(value(dull, "pitch_height"), abs=0.05)


def test_major_and_minor_progressions():
    major = describe(chords([[60, 64, 67], [65, 69, 72], [67, 71, 74], [60, 64, 67]] * 2))  # C F G C
    minor = describe(chords([[60, 63, 67], [65, 68, 72], [67, 70, 74], [60, 63, 67]] * 2))  # Cm Fm Gm Cm
    assert value(major, "major_chords") > 0.8 and value(minor, "major_chords") < -0.8
    assert value(major, "mode") > value(minor, "mode")
    consonant = describe(chords([[60, 64, 67]] * 4))
    clashing = describe(chords([[60, 61, 66]] * 4))  # a minor second and a tritone above the root
    assert value(clashing, "semitone_clash") > value(consonant, "semitone_clash")
    assert value(clashing, "tritone_clash") > value(consonant, "tritone_clash")


def test_onset_rate_follows_the_tempo():
    slow, fast = describe(clicks(90, 8)), describe(clicks(150, 8))
    assert value(slow, "onset_rate") * 10 == pytest.approx(1.5, rel=0.15)
    assert value(fast, "onset_rate") * 10 == pytest.approx(2.5, rel=0.15)
    assert value(fast, "pulse_clarity") > 0.5  # a metronome is as periodic as it gets


def test_encoder_interface():
    encoder = load_global_encoder("descriptors")
    assert (encoder.name, encoder.dim, encoder.spec) == ("descriptors", DIM, {"name": "descriptors", "options": {}})
    assert encoder.fingerprint["descriptors"] == list(DESCRIPTOR_NAMES)
    wave = harmonic_tone(330.0, 6)
    at_44k = np.interp(np.arange(12 * RATE) / (2 * RATE), np.arange(len(wave)) / RATE, wave)  # the same at 44.1 kHz
    vector = encoder.embed(wave, RATE, window=(1.0, 5.0))
    assert vector.shape == (DIM,) and torch.isfinite(vector).all()
    resampled = encoder.embed(at_44k, 2 * RATE, window=(1.0, 5.0))
    assert value(resampled, "pitch_height") == pytest.approx(value(vector, "pitch_height"), abs=0.05)
    assert value(resampled, "rms_db_mean") == pytest.approx(value(vector, "rms_db_mean"), abs=0.01)
    assert torch.isfinite(encoder.embed(wave, RATE, window=(0.0, 0.5))).all()  # a stream's first global window
    with pytest.raises(InputError, match="at least"):
        encoder.embed(wave, RATE, window=(0.0, 0.05))
    with pytest.raises(InputError, match="no options"):
        load_global_encoder("descriptors", features="taggram")
