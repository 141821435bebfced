"""The synthetic per-listener benchmark: audible cues, listeners that differ, DEAM calibration, the written dataset."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, shared_path
from pdmer.data.curves import STEP_SECONDS
from pdmer.data.plain import load_plain
from pdmer.data.synth import (
    CUE_NAMES, DEAM, RATE, Score, Section, baseline_scores, calibration_report, compose, cue_timeline,
    curve_statistics, generate, make_benchmark, render,
)
from pdmer.data.synth.benchmark import MIN_SONGS_PER_LISTENER, within_tolerance
from pdmer.data.synth.music import section_lengths
from pdmer.errors import InputError
from pdmer.metrics import ccc

TINY = dict(n_train_songs=16, n_val_songs=0, n_test_songs=16, n_train_listeners=2, n_val_listeners=0,
            n_test_listeners=2, songs_per_train_listener=16, song_seconds=12)


@pytest.fixture(scope="module")
def default():
    return generate(0)


# --- songs -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds", [12.0, 20.0, 45.0, 47.5, 200.0])
def test_sections_tile_the_song_on_the_label_grid(seconds):
    for seed in range(5):
        score = compose(np.random.default_rng(seed), seconds)
        lengths = [s.seconds for s in score.sections]
        assert sum(lengths) == seconds and len(lengths) >= 2
        assert all(6.0 <= length <= 12.0 and (length / STEP_SECONDS).is_integer() for length in lengths)
        assert [s.start_s for s in score.sections] == list(np.cumsum([0.0, *lengths[:-1]]))
        if seconds == 45.0:
            assert 4 <= len(lengths) <= 6
    assert section_lengths(np.random.default_rng(0), 45.0) == section_lengths(np.random.default_rng(0), 45.0)


def test_cue_timeline_follows_the_sections_and_the_home_key():
    for seed in range(10):
        score = compose(np.random.default_rng(seed), 45.0)
        cues = cue_timeline(score)
        assert cues.shape == (90, len(CUE_NAMES)) and cues.dtype == np.float32
        assert np.abs(cues).max() <= 1.0
        for section in score.sections:
            first = round(section.start_s / STEP_SECONDS)
            np.testing.assert_allclose(cues[first], section.cues, atol=1e-6)
        home = score.sections[0].tonic
        assert [s.cue("home") > 0 for s in score.sections] == [s.tonic == home for s in score.sections]
        assert score.sections[0].cue("home") == 1 and min(s.cue("home") for s in score.sections) == -1
        assert {s.major for s in score.sections} == {True, False}  # every cue moves within a song
        for name in ("tempo", "loudness", "register", "brightness", "dissonance"):
            assert np.ptp(cues[:, CUE_NAMES.index(name)]) > 0.4


def beat_bpm(wave: np.ndarray, hop: int = 128) -> float:
    """Tempo from the autocorrelation of a high-passed spectral-flux envelope: its first strong peak."""
    high = np.diff(wave.astype(np.float64), 2)
    energy = np.log((high[: len(high) // hop * hop].reshape(-1, hop) ** 2).sum(1) + 1e-12)
    flux = np.maximum(np.diff(energy), 0)
    flux -= flux.mean()
    ac = np.correlate(flux, flux, "full")[len(flux) - 1 :]
    lags = np.arange(len(ac)) * hop / RATE
    ac, lags = ac[(lags >= 60 / 175) & (lags <= 60 / 55)], lags[(lags >= 60 / 175) & (lags <= 60 / 55)]
    peaks = np.flatnonzero((ac[1:-1] >= ac[:-2]) & (ac[1:-1] >= ac[2:])) + 1
    return 60.0 / lags[peaks[ac[peaks] >= 0.6 * ac.max()][0]]


def test_tempo_and_loudness_are_audible():
    bpm, heard, gain, level = [], [], [], []
    for seed in range(3):
        score = compose(np.random.default_rng(seed), 45.0)
        wave = render(score)
        assert wave.dtype == np.float32 and len(wave) == 45 * RATE and np.abs(wave).max() < 1.0
        for section in score.sections:
            part = wave[round((section.start_s + 0.5) * RATE) : round((section.start_s + section.seconds) * RATE)]
            bpm.append(section.bpm)
            heard.append(beat_bpm(part))
            gain.append(section.gain_db)
            level.append(20 * np.log10(part.std()))
    print(f"\ntempo vs onset-envelope tempo r = {np.corrcoef(bpm, heard)[0, 1]:.3f}; "
          f"loudness cue vs RMS dB r = {np.corrcoef(gain, level)[0, 1]:.3f}")
    assert np.corrcoef(bpm, heard)[0, 1] > 0.95
    assert np.corrcoef(gain, level)[0, 1] > 0.95


def controlled(name: str, value: float) -> np.ndarray:
    """A 6 s one-section song at neutral cues but ``name`` = ``value``; the same seed, so the same notes."""
    cues = dict.fromkeys(CUE_NAMES, 0.0) | {"mode": 1.0, "home": 1.0, name: value}
    section = Section(0.0, 6.0, tuple(cues[c] for c in CUE_NAMES), tonic=0)
    return render(Score(6.0, (section,), render_seed=7))


def centroid(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float((spectrum * np.fft.rfftfreq(len(wave), 1 / RATE)).sum() / spectrum.sum())


def pitch_classes(wave: np.ndarray) -> np.ndarray:
    """Energy per pitch class (0 = C) between 100 Hz and 2 kHz."""
    power, freqs = np.abs(np.fft.rfft(wave)) ** 2, np.fft.rfftfreq(len(wave), 1 / RATE)
    keep = (freqs > 100) & (freqs < 2000)
    return np.bincount(np.round(12 * np.log2(freqs[keep] / 440) + 69).astype(int) % 12, power[keep], 12)


def test_brightness_register_mode_and_dissonance_are_audible():
    assert centroid(controlled("brightness", 0.8)) > 1.1 * centroid(controlled("brightness", -0.8))
    assert centroid(controlled("register", 0.8)) > 1.1 * centroid(controlled("register", -0.8))
    major, minor = pitch_classes(controlled("mode", 1.0)), pitch_classes(controlled("mode", -1.0))
    assert major[4] > 3 * major[3] and minor[3] > 3 * minor[4]  # C major has E, C minor has Eb
    clean, clash = pitch_classes(controlled("dissonance", -1.0)), pitch_classes(controlled("dissonance", 1.0))
    assert clash[6] / clash.sum() > 3 * clean[6] / clean.sum()  # the tritone above C
    loud, quiet = controlled("loudness", 0.5), controlled("loudness", -0.5)
    assert 20 * np.log10(loud.std() / quiet.std()) == pytest.approx(10.0, abs=1.0)


# --- listeners and the benchmark -----------------------------------------------------------------------------

def test_same_seed_same_benchmark_other_seed_other():
    one, two, other = generate(3, **TINY), generate(3, **TINY), generate(4, **TINY)
    assert [c.va.tobytes() for c in one.curves] == [c.va.tobytes() for c in two.curves]
    assert one.listeners == two.listeners and one.splits == two.splits
    for k in (0, -1):
        np.testing.assert_array_equal(one.songs[k].waveform, two.songs[k].waveform)
        assert not np.array_equal(one.songs[k].waveform, other.songs[k].waveform)
    assert not np.array_equal(one.curves[0].va, other.curves[0].va)
    assert one.listeners != other.listeners


def test_a_song_does_not_depend_on_the_other_splits_sizes():
    small, large = generate(5, **TINY), generate(5, **(TINY | dict(n_test_songs=20)))
    assert small.songs[0].score == large.songs[0].score


def test_every_listener_labels_at_least_16_songs_of_their_split(default):
    tasks = {}
    for curve in default.curves:
        tasks.setdefault(curve.listener, set()).add(curve.song)
    assert len(tasks) == 16 + 4 + 6
    for split, spec in default.splits.items():
        for listener in spec["listeners"]:
            assert len(tasks[listener]) >= MIN_SONGS_PER_LISTENER and tasks[listener] <= set(spec["songs"])
            if split != "train":
                assert tasks[listener] == set(spec["songs"])  # held out: every unseen song
        labelled = set().union(*(tasks[w] for w in spec["listeners"]))
        assert labelled == set(spec["songs"])
    assert len(default.splits["train"]["songs"]) == 40 and len(default.splits["test"]["songs"]) == 16
    counts = np.unique([c.song for c in default.curves if c.song in default.splits["train"]["songs"]],
                       return_counts=True)[1]
    assert counts.max() - counts.min() <= 1  # balanced: 16 x 20 / 40 = 8 listeners per train song


def test_oracle_is_near_perfect_and_the_consensus_is_not(default):
    oracle, consensus = [], []
    for curve in default.curves:
        target = torch.from_numpy(curve.va.T.copy())
        oracle.append(ccc(torch.from_numpy(default.oracle(curve).T.copy()), target))
        consensus.append(ccc(torch.from_numpy(default.consensus(curve.song).T.copy()), target))
    oracle, consensus = torch.stack(oracle).mean(0), torch.stack(consensus).mean(0)
    print(f"\nmean CCC over {len(default.curves)} listener curves (valence, arousal): "
          f"oracle {oracle[0]:.3f}, {oracle[1]:.3f}; consensus {consensus[0]:.3f}, {consensus[1]:.3f}")
    assert (oracle > 0.9).all()
    assert (consensus < 0.5).all() and (oracle - consensus > 0.4).all()
    scores = baseline_scores(default)  # the numpy figures written to dataset.json agree
    for d, name in enumerate(("valence", "arousal")):
        assert scores["oracle"][name] == pytest.approx(float(oracle[d]), abs=1e-3)
        assert scores["consensus"][name] == pytest.approx(float(consensus[d]), abs=1e-3)
    assert scores["consensus"]["valence"] < scores["consensus_offset"]["valence"] < 0.6


def test_listeners_differ_in_the_documented_ways(default):
    listeners = default.listeners
    assert len({w.arousal_driver for w in listeners}) >= 4  # single drivers and mixes
    assert any(w.contrarian for w in listeners) and not all(w.contrarian for w in listeners)
    for w in listeners:
        assert 0.0 <= w.lag_s <= 3.0 and (w.lag_s / STEP_SECONDS).is_integer()
        valence = w.weights[0]
        assert (valence["mode"] < 0) == w.contrarian and (valence["dissonance"] > 0) == w.contrarian
        assert valence["home"] >= 0 and all(v >= 0 for v in w.weights[1].values())
        json.dumps(w.to_dict())
    for curve in default.curves[:20]:
        assert curve.va.shape == (90, 2) and curve.start_s == 0.0 and np.abs(curve.va).max() <= 1.0


# --- calibration -----------------------------------------------------------------------------------------------

def test_deam_constants_match_the_averaged_annotations():
    folder = shared_path("data", "deam", "annotations", "annotations averaged per song",
                         "dynamic (per second annotations)")
    for name in ("valence", "arousal"):
        with open(folder / f"{name}.csv", newline="") as file:
            rows = list(csv.reader(file))[1:]
        clips = [np.array([float(v) for v in row[1:] if v.strip()]) for row in rows if int(float(row[0])) <= 2000]
        assert len(clips) == 1744 and {len(c) for c in clips} == {60}
        figures = curve_statistics(clips)
        for key, value in DEAM[name].items():
            assert figures[key] == pytest.approx(value, abs=6e-5), (name, key)


def test_benchmark_matches_deam(default):
    report = calibration_report(default)
    for name in ("valence", "arousal"):
        synthetic, deam = report[name]["mean_over_listeners"], report[name]["deam"]
        print(f"\n{name}: " + ", ".join(f"{k} {synthetic[k]:.3f} (DEAM {deam[k]:.3f})" for k in deam))
        assert report[name]["within_tolerance"] and within_tolerance(synthetic, deam)
        # listeners move more within a song than their average does: they disagree on the dynamics
        assert report[name]["single_listeners"]["median_std"] > 1.5 * synthetic["median_std"]


# --- writing -----------------------------------------------------------------------------------------------------

def test_written_benchmark_round_trips_through_load_plain(tmp_path):
    root = make_benchmark(tmp_path / "synth", seed=2, **TINY)
    benchmark = generate(2, **TINY)
    dataset = load_plain(root)
    assert dataset.splits == benchmark.splits
    assert set(dataset.songs) == {s.id for s in benchmark.songs}
    assert all(s.audio is not None and s.audio.suffix == ".flac" for s in dataset.songs.values())
    loaded = {(c.song, c.listener): c for c in dataset.curves}
    assert len(loaded) == len(benchmark.curves) and "mean" not in {c.listener for c in dataset.curves}
    for curve in benchmark.curves:
        twin = loaded[curve.song, curve.listener]
        assert twin.start_s == curve.start_s
        np.testing.assert_allclose(twin.va, curve.va, atol=1e-5)
    test = dataset.split("test")
    assert test.listeners == benchmark.splits["test"]["listeners"]
    assert len(test.by_listener(min_songs=16)) == 2
    manifest = json.loads((root / "dataset.json").read_text())["synth"]
    assert manifest["seed"] == 2 and manifest["cue_names"] == list(CUE_NAMES)
    assert set(manifest["listeners"]) == {w.id for w in benchmark.listeners}
    assert {"oracle", "consensus"} <= set(manifest["baselines_ccc"]) and "valence" in manifest["calibration"]
    assert manifest["songs"]["s001"][0]["home"] is True
    with pytest.raises(InputError, match="already exists"):
        make_benchmark(root, seed=2, **TINY)
    smaller = TINY | dict(n_test_songs=0, n_test_listeners=0)
    assert make_benchmark(root, seed=3, overwrite=True, **smaller) == root
    assert json.loads((root / "dataset.json").read_text())["synth"]["seed"] == 3


@pytest.mark.parametrize("change, message", [
    (dict(songs_per_train_listener=15), "songs_per_train_listener is 15"),
    (dict(n_train_songs=10), "n_train_songs \\(10\\) is below songs_per_train_listener"),
    (dict(n_train_listeners=1, n_train_songs=40, songs_per_train_listener=20), "cannot cover 40 train songs"),
    (dict(n_val_songs=8, n_val_listeners=2), "n_val_songs is 8"),
    (dict(n_test_songs=16, n_test_listeners=0), "give both or neither"),
    (dict(song_seconds=10.0), "song_seconds"),
    (dict(song_seconds=20.2), "multiple of 0.5"),
    (dict(n_train_songs=16.5), "n_train_songs must be a whole number"),
    (dict(n_train_listeners=-1), "n_train_listeners must be at least 0"),
    (dict(seed=-1), "seed must be at least 0"),
])
def test_bad_sizes_are_named(change, message):
    arguments = TINY | change
    with pytest.raises(InputError, match=message):
        generate(arguments.pop("seed", 0), **arguments)


def test_synth_modules_do_not_import_torch():
    code = "import sys, pdmer.data.synth; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)



def test_bias_sd_widens_offsets_and_changes_nothing_else():
    narrow, wide = generate(3, **TINY), generate(3, **TINY, bias_sd=0.36)
    assert [s.id for s in narrow.songs] == [s.id for s in wide.songs]
    for a, b in zip(narrow.listeners, wide.listeners):
        assert np.allclose(np.array(b.bias), 3 * np.array(a.bias), atol=3e-6)  # same draws, three times the spread
        assert (a.gain, a.lag_s, a.weights) == (b.gain, b.lag_s, b.weights)
    with pytest.raises(InputError, match="bias_sd"):
        generate(3, **TINY, bias_sd=-0.1)
