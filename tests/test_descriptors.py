"""The descriptors global encoder: each descriptor measures what its name says, on signals whose answer is known."""

import math

import numpy as np
import pytest
import torch

from pdmer.errors import InputError
from pdmer.model.descriptors import DESCRIPTOR_NAMES, DIM, SAMPLE_RATE, Descriptors, stretch_ids
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


C, F, G, A_MINOR = [60, 64, 67], [65, 69, 72], [67, 71, 74], [57, 60, 64]
D_MINOR, E_MINOR, E, A, B = [62, 65, 69], [64, 67, 71], [64, 68, 71], [69, 73, 76], [71, 75, 78]


def test_chord_degrees_tell_a_major_key_from_its_relative_minor():
    """C major and A minor use the same seven pitch classes; only a major key has its I, only the minor its iv and v
    (the set's ii and iii)."""
    major = describe(chords([C, F, G, A_MINOR, C, F, G, C]))
    minor = describe(chords([A_MINOR, D_MINOR, E_MINOR, F, G, A_MINOR, D_MINOR, A_MINOR]))
    assert value(major, "degree_I") > 0.3 and value(major, "degree_ii") + value(major, "degree_iii") == 0
    assert value(minor, "degree_I") == 0 and value(minor, "degree_ii") + value(minor, "degree_iii") > 0.3
    assert value(minor, "degree_vi") > value(major, "degree_vi")  # the minor key's tonic chord
    shares = [value(major, f"degree_{name}") for name in ("I", "ii", "iii", "IV", "V", "vi")]
    assert sum(shares) == pytest.approx(1.0, abs=0.01)  # every half second holds one of the diatonic triads


def test_key_stability_sees_a_modulation():
    home = describe(chords([C, F, G, C] * 3))
    modulating = describe(chords([C, F, G, C, F, G, E, A, B, E, A, B]))  # C major, then E major
    assert value(home, "key_same") == 1.0 and value(modulating, "key_same") == pytest.approx(0.5)
    parallel = describe(chords([C, F, G, C, F, G, [60, 63, 67], [65, 68, 72], [67, 70, 74], [60, 63, 67]] * 1))
    assert value(parallel, "key_parallel") > 0  # C minor after C major: the same tonic, the other mode


def test_key_stretches_keep_whole_ones_and_join_a_short_tail():
    assert stretch_ids(12, 6).tolist() == [0] * 6 + [1] * 6  # a whole last stretch stays a stretch
    assert stretch_ids(14, 6).tolist() == [0] * 6 + [1] * 8  # a tail under half a stretch joins the one before
    assert stretch_ids(15, 6).tolist() == [0] * 6 + [1] * 6 + [2] * 3  # half a stretch stands on its own
    assert stretch_ids(4, 6).tolist() == [0] * 4  # a window shorter than one stretch


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
