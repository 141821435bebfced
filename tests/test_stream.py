"""The stream engine and ``pdmer-stream --source FILE --fast``, received by a real oscdump."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from pdmer.errors import InputError
from pdmer.model.checkpoint import save_model
from pdmer.model.registry import build_model

from conftest import MUSICNN_INPUTS

from test_osc import MESSAGES_PER_FRAME, free_udp_port, oscdump  # noqa: F401  (the fixture)

RATE = 22050


def song(seconds: float, *, silent_from: float | None = None, silent_to: float | None = None) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    wave = (0.3 * np.sin(2 * np.pi * (220 + 30 * np.sin(t)) * t) * (0.6 + 0.4 * np.sin(t / 2))).astype(np.float32)
    if silent_from is not None:
        wave[int(silent_from * RATE) : int(silent_to * RATE)] = 0.0
    return wave


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    torch.manual_seed(0)
    model = save_model(build_model("dsaml", "small", global_dim=200), root / "model.safetensors",
                       metadata=MUSICNN_INPUTS)
    music = root / "music.wav"
    soundfile.write(str(music), song(12.0), RATE)
    gap = root / "gap.wav"
    soundfile.write(str(gap), song(12.0, silent_from=4.0, silent_to=7.0), RATE)
    from pdmer.export.predict import load_deployed

    return {"root": root, "model": model, "music": music, "gap": gap, "deployed": load_deployed(model, device="cpu")}


def run_engine(deployed, wave, chunk: int, **options):
    from pdmer.streamer.engine import Engine

    engine = Engine(deployed, RATE, **options)
    frames = []
    for start in range(0, len(wave), chunk):
        frames += engine.push(wave[start : start + chunk])
    engine.close()
    return frames


def test_frames_do_not_depend_on_how_the_audio_arrives(setup):
    """A device delivers blocks of any size; a file pushes others: the frames must be the same."""
    wave = song(12.0)
    a = run_engine(setup["deployed"], wave, 441)
    b = run_engine(setup["deployed"], wave, 4097)
    assert [f.step for f in a] == list(range(24)) and [f.time_s for f in a] == [0.5 * i for i in range(24)]
    assert np.abs(np.array([[f.valence, f.arousal] for f in a]) - [[f.valence, f.arousal] for f in b]).max() == 0


def test_lookahead_shows_older_steps_with_more_context(setup):
    wave = song(12.0)
    plain = run_engine(setup["deployed"], wave, 2205)
    late = run_engine(setup["deployed"], wave, 2205, lookahead=3)
    assert [f.step for f in late] == list(range(21))  # the last 3 steps wait for hops that never come
    assert not np.allclose([f.valence for f in late], [f.valence for f in plain[:21]])


def test_silence_is_reported_not_fed(setup):
    wave = song(12.0, silent_from=4.0, silent_to=7.0)
    frames = run_engine(setup["deployed"], wave, 2205)
    silent = [f.step for f in frames if f.silent]
    assert silent == list(range(8, 14))  # 4.0-7.0 s
    assert all(np.isfinite([f.valence, f.arousal]).all() for f in frames if not f.silent)


def test_memory_is_bounded(setup):
    from pdmer.streamer.engine import Engine

    engine = Engine(setup["deployed"], RATE)
    size = engine.audio.size
    for _ in range(3):
        engine.push(song(40.0))
    grid = engine.grids[0]
    assert engine.audio.size == size and len(grid.local) <= 59 and len(grid.globals) <= 60
    assert len(engine.patches.vectors) <= 11  # the patches of one 30 s window (and the newest), not of the stream
    assert len(engine.vectors) <= 1 and len(engine.pending) <= 2
    engine.close()


def stream(setup, *args):
    return subprocess.run([sys.executable, "-m", "pdmer.streamer", "--model", str(setup["model"]), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_stream_a_file_fast_to_oscdump(setup, oscdump, tmp_path):  # noqa: F811
    port, read = oscdump
    stats = tmp_path / "stats.json"
    result = stream(setup, "--source", setup["gap"], "--fast", "--osc", f"127.0.0.1:{port}", "--stats-json", stats)
    assert result.returncode == 0, result.stderr
    from pdmer.audio import load_audio

    wave, _ = load_audio(setup["gap"])  # the file's 16-bit samples, as the command reads them
    engine = run_engine(setup["deployed"], wave, 1000, start_at_sound=True)  # the clock starts at the first sound
    assert [f.step for f in engine if f.silent] == list(range(8, 14))  # 4.0-7.0 s
    sent = [f for f in engine if not f.silent]
    lines = read(len(sent) * MESSAGES_PER_FRAME + 2)
    frames = [args for path, tags, args in lines if path == "/pdmer/frame"]
    times = [float(a[0]) for a in frames]
    assert times == [f.time_s for f in sent] and len(times) >= 17  # silence is not sent
    values = np.array([[float(a[1]), float(a[2])] for a in frames])
    assert np.isfinite(values).all() and np.abs(values).max() <= 1.0
    expected = [(f.valence, f.arousal) for f in sent]
    assert np.abs(values - np.clip(expected, -1, 1)).max() <= 1e-4  # the command sends what the engine computes
    states = [args[0] for path, _, args in lines if path == "/pdmer/status"]
    assert '"silence"' in states and states[-1] == '"stopped"'
    report = json.loads(stats.read_text())
    assert report["frames_sent"] == len(sent) and report["silent_steps"] == 6 and report["osc_send_errors"] == 0


def test_stream_refuses_bad_targets_and_profiles(setup, tmp_path):
    bad_host = stream(setup, "--source", setup["music"], "--fast", "--osc", "no-such-host.invalid:9000")
    assert bad_host.returncode == 2 and "cannot resolve host" in bad_host.stderr
    unknown = subprocess.run([sys.executable, "-m", "pdmer.streamer", "--model", str(setup["model"]), "--profile",
                              "nobody", "--source", str(setup["music"]), "--fast"], capture_output=True, text=True,
                             timeout=300, env={**__import__("os").environ, "PDMER_HOME": str(tmp_path)})
    assert unknown.returncode == 2 and "known profiles: default" in unknown.stderr


def test_raw_pcm_on_stdin_streams_like_the_file(setup, oscdump):  # noqa: F811
    """``--source -``: f32le stereo PCM piped in gives the file's frames (the same samples, downmixed)."""
    port, read = oscdump
    from pdmer.audio import load_audio

    wave, _ = load_audio(setup["music"])
    stereo = np.repeat(wave[:, None], 2, axis=1).astype("<f4").tobytes()
    result = subprocess.run([sys.executable, "-m", "pdmer.streamer", "--model", str(setup["model"]), "--source", "-",
                             "--rate", str(RATE), "--channels", "2", "--format", "f32le", "--osc", f"127.0.0.1:{port}"],
                            input=stereo, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    assert b"stdin (f32le, 2 ch)" in result.stderr
    expected = [f for f in run_engine(setup["deployed"], wave, 1000, start_at_sound=True) if not f.silent]
    frames = [args for path, _, args in read(len(expected) * MESSAGES_PER_FRAME + 2) if path == "/pdmer/frame"]
    assert [float(a[0]) for a in frames] == [f.time_s for f in expected]
    values = np.array([[float(a[1]), float(a[2])] for a in frames])
    assert np.abs(values - np.clip([(f.valence, f.arousal) for f in expected], -1, 1)).max() <= 1e-4


def test_raw_pcm_decoding():
    import io

    from pdmer.streamer.sources import StdinSource

    samples = np.array([[0, -32768], [16384, 16384], [32767, 0]], "<i2")  # 3 stereo sample frames
    data = samples.tobytes() + b"\x01"  # a trailing partial sample is dropped at the end of input
    source = StdinSource(8000, channels=2, sample_format="s16le", stream=io.BytesIO(data))
    got = np.concatenate(list(source.chunks()))
    np.testing.assert_allclose(got, [-0.5, 0.5, 32767 / 65536], atol=1e-7)
    with pytest.raises(InputError, match="unknown PCM format"):
        StdinSource(8000, sample_format="u8")


def test_smoothing_and_interpolation():
    from pdmer.streamer.shaping import Interpolator, Point, Smoother

    smooth = Smoother(1.0)
    keep = np.exp(-0.5)  # time constant 1 s, 0.5 s steps
    first, second = smooth(Point(0.0, 1.0, -1.0)), smooth(Point(0.5, 0.0, 0.0))
    assert (first.valence, first.arousal) == (1.0, -1.0)
    assert np.isclose(second.valence, keep) and np.isclose(second.arousal, -keep)
    smooth.reset()
    assert smooth(Point(9.0, 0.2, 0.3)).valence == 0.2  # after silence: no fade from the music before
    assert Smoother(0.0)(Point(0.0, 0.4, 0.1)).valence == 0.4

    lerp = Interpolator(20.0)  # 10 points per hop
    assert lerp(Point(0.0, 0.0, 0.0)) == [Point(0.0, 0.0, 0.0)]
    points = lerp(Point(0.5, 1.0, -1.0))
    assert len(points) == 10 and lerp.interval_s == 0.05
    assert np.allclose([p.time_s for p in points], np.arange(1, 11) * 0.05)
    assert np.allclose([p.valence for p in points], np.arange(1, 11) / 10)
    assert points[-1] == Point(0.5, 1.0, -1.0)  # each hop ends on the model's frame
    assert lerp(Point(3.0, 0.0, 0.0)) == [Point(3.0, 0.0, 0.0)]  # after a gap (silence): no ramp across it
    with pytest.raises(InputError, match="out-rate"):
        Interpolator(500.0)


def test_out_rate_sends_interpolated_points_that_end_on_each_frame(setup, oscdump):  # noqa: F811
    port, read = oscdump
    result = stream(setup, "--source", setup["music"], "--fast", "--out-rate", "10", "--smooth", "1",
                    "--osc", f"127.0.0.1:{port}")
    assert result.returncode == 0, result.stderr
    from pdmer.audio import load_audio
    from pdmer.streamer.shaping import Interpolator, Point, Smoother

    wave, _ = load_audio(setup["music"])
    smooth, lerp, expected = Smoother(1.0), Interpolator(10.0), []
    engine = run_engine(setup["deployed"], wave, 1000, start_at_sound=True)
    for f in engine:
        expected += lerp(smooth(Point(f.time_s, f.valence, f.arousal)))
    frames = [args for path, _, args in read(len(expected) * MESSAGES_PER_FRAME + 2) if path == "/pdmer/frame"]
    assert len(frames) == len(expected) == 1 + 5 * (len(engine) - 1)  # 5 points per hop after the first frame
    assert np.allclose([float(a[0]) for a in frames], [p.time_s for p in expected], atol=1e-6)
    values = np.array([[float(a[1]), float(a[2])] for a in frames])
    assert np.abs(values - np.clip([(p.valence, p.arousal) for p in expected], -1, 1)).max() <= 1e-4


class CountingEncoder:
    def __init__(self, encoder):
        self.encoder, self.calls = encoder, 0

    def embed(self, audio, rate):
        self.calls += 1
        return self.encoder.embed(audio, rate)


@pytest.mark.parametrize("every, calls", [(None, 4), (2, 12)])
def test_global_refresh_period_is_configurable(setup, every, calls):
    import dataclasses

    counting = CountingEncoder(setup["deployed"].encoder)
    deployed = dataclasses.replace(setup["deployed"], encoder=counting)
    frames = run_engine(deployed, song(12.0), 2205, global_every=every)
    assert len(frames) == 24 and counting.calls == calls  # 24 steps: anchors every 6 (the model's) or 2 steps


def test_each_refresh_encodes_one_new_patch(setup):
    """Trailing windows every 3 s share their 3 s patches: 4 refreshes of a 12 s stream encode 4 patches, where
    encoding each window from scratch would encode 1 + 1 + 2 + 3."""
    from pdmer.streamer.engine import Engine

    engine = Engine(setup["deployed"], RATE)
    assert len(engine.push(song(12.0))) == 24
    engine.close()
    assert engine.patches.encoded == 4


def test_a_model_trained_on_centred_windows_streams_trailing_ones_with_a_warning(setup):
    import dataclasses

    centred = dataclasses.replace(setup["deployed"].windows, placement="centred")
    deployed = dataclasses.replace(setup["deployed"], windows=centred)
    with pytest.warns(UserWarning, match="centred global windows.*trailing windows of the same length"):
        frames = run_engine(deployed, song(6.0), 4410)
    trailing = run_engine(setup["deployed"], song(6.0), 4410)
    assert [(f.valence, f.arousal) for f in frames] == [(f.valence, f.arousal) for f in trailing]


def test_a_looped_file_starts_again_at_its_end(setup):
    from itertools import islice

    from pdmer.streamer.sources import FileSource

    source = FileSource(setup["music"], fast=True, loop=True)
    size = len(source.samples)
    chunks = list(islice(source.chunks(), 2 * (size // 441 + 1) + 3))  # 441-sample chunks at 22.05 kHz: over 2 passes
    played = np.concatenate(chunks)
    assert played.size > 2 * size and source.name == "music.wav (looped)"
    np.testing.assert_array_equal(played[size : 2 * size], source.samples)


def test_nobody_listening_never_stalls_the_stream(setup, tmp_path):
    """UDP to a port nobody listens on: the kernel refuses some sends; the stream runs to its end and counts them."""
    stats = tmp_path / "stats.json"
    result = stream(setup, "--source", setup["music"], "--fast", "--osc", f"127.0.0.1:{free_udp_port()}",
                    "--stats-json", stats)
    assert result.returncode == 0, result.stderr
    report = json.loads(stats.read_text())
    assert report["frames_sent"] == report["steps"] - report["silent_steps"] >= 20, report
    assert report["stopped_by"] == "end of source"


def test_a_shorter_hop_interleaves_grids_of_the_same_slices(setup):
    """--hop 0.1: a frame every 0.1 s, each from the newest complete 0.5 s slice; the frames on the 0.5 s grid are
    the --hop 0.5 frames exactly, and the others do not depend on how the audio arrives either."""
    wave = song(12.0)
    plain = run_engine(setup["deployed"], wave, 2205)
    fine = run_engine(setup["deployed"], wave, 441, hop=0.1)
    other_chunks = run_engine(setup["deployed"], wave, 3001, hop=0.1)
    assert [f.step for f in fine] == list(range(116))  # slices ending at 0.5, 0.6, ..., 12.0 s
    assert np.allclose([f.time_s for f in fine], np.arange(116) * 0.1)
    on_grid = [f for f in fine if f.step % 5 == 0]
    assert [(f.valence, f.arousal) for f in on_grid] == [(f.valence, f.arousal) for f in plain]
    assert [(f.valence, f.arousal) for f in fine] == [(f.valence, f.arousal) for f in other_chunks]
    between = np.array([[f.valence, f.arousal] for f in fine if f.step % 5 == 2])
    assert np.isfinite(between).all() and not np.allclose(between[:20], [[f.valence, f.arousal] for f in plain[:20]])


def test_bad_hops_are_named(setup):
    from pdmer.streamer.engine import Engine

    with pytest.raises(InputError, match="hop 0.3 s must be one of 0.1, 0.25, 0.5"):
        Engine(setup["deployed"], RATE, hop=0.3)
    with pytest.raises(InputError, match="22050 Hz does not hold a whole number of samples per 0.25 s hop"):
        Engine(setup["deployed"], RATE, hop=0.25)


def test_a_refresh_period_between_patch_boundaries_is_refused(setup):
    from pdmer.streamer.engine import Engine

    with pytest.raises(InputError, match="multiple of 3 s .* not 2 s"):
        Engine(setup["deployed"], RATE, global_every=4)
    Engine(setup["deployed"], RATE, global_every=12).close()  # 6 s: every patch still shared


def test_stream_a_file_at_hop_0_1_to_oscdump(setup, oscdump, tmp_path):  # noqa: F811
    """pdmer-stream --hop 0.1: a frame every 0.1 s of stream time reaches a real OSC receiver, each what the engine
    computes at that hop, and the statistics say the hop and what a second of audio cost."""
    port, read = oscdump
    stats = tmp_path / "stats.json"
    result = stream(setup, "--source", setup["music"], "--fast", "--hop", "0.1", "--osc", f"127.0.0.1:{port}",
                    "--stats-json", stats)
    assert result.returncode == 0, result.stderr
    from pdmer.audio import load_audio

    wave, _ = load_audio(setup["music"])
    engine = run_engine(setup["deployed"], wave, 1000, start_at_sound=True, hop=0.1)
    frames = [args for path, _, args in read(len(engine) * MESSAGES_PER_FRAME + 2) if path == "/pdmer/frame"]
    times = np.array([float(a[0]) for a in frames])
    assert len(frames) == len(engine) >= 100 and np.allclose(np.diff(times), 0.1)
    values = np.array([[float(a[1]), float(a[2])] for a in frames])
    assert np.abs(values - np.clip([(f.valence, f.arousal) for f in engine], -1, 1)).max() <= 1e-4
    report = json.loads(stats.read_text())
    assert report["hop_s"] == 0.1 and report["frames_sent"] == len(engine) and report["cpu_per_audio_s"] > 0


def read_curve_csv(path):
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    return np.array([[float(v) for v in row] for row in rows])


@pytest.mark.slow
@pytest.mark.parametrize("which", ["gap", "real"])
def test_predict_and_the_stream_send_the_same_values(setup, oscdump, tmp_path, which):  # noqa: F811
    """One causal path: `pdmer predict FILE` and `pdmer-stream --source FILE --fast` give the same value per step,
    on a file with a silent gap (a test model) and on real music (the embedded default model)."""
    from pdmer.defaults import MUSIC_EXCERPT

    port, read = oscdump
    audio, model = (setup["gap"], ["--model", str(setup["model"])]) if which == "gap" else (MUSIC_EXCERPT, [])
    csv = tmp_path / "curve.csv"
    predicted = subprocess.run([sys.executable, "-m", "pdmer", "predict", str(audio), *model, "--csv", str(csv)],
                               capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr
    curve = read_curve_csv(csv)
    sounding = curve[np.isfinite(curve[:, 1])]
    streamed = subprocess.run([sys.executable, "-m", "pdmer.streamer", *model, "--source", str(audio), "--fast",
                               "--osc", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=300)
    assert streamed.returncode == 0, streamed.stderr
    lines = read(len(sounding) * MESSAGES_PER_FRAME + 2)
    frames = np.array([[float(a) for a in args] for path, _, args in lines if path == "/pdmer/frame"])
    assert len(frames) == len(sounding) > 12
    if which == "gap":
        assert len(curve) - len(sounding) == 6  # the 3 s gap: nan rows in the CSV, no frames on OSC
    # the same steps (stream time counts from the first sound, predict's from the file's start) and values
    offset = curve[0, 0]
    assert np.abs(frames[:, 0] + offset - sounding[:, 0]).max() < 2e-3
    assert np.abs(frames[:, 1:] - np.clip(sounding[:, 1:], -1, 1)).max() <= 1e-3
