"""The stream engine and ``pdmer-stream --source FILE --fast``, received by a real oscdump."""

from __future__ import annotations

import json
import os
import re
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


def test_the_ring_gives_back_what_was_pushed_across_its_wrap(setup):
    """The global windows are read from a ring of ~31 s: a window that wraps round its end is still the audio."""
    from pdmer.streamer.engine import Engine

    engine = Engine(setup["deployed"], RATE)
    wave = np.random.default_rng(0).standard_normal(int(75.5 * RATE)).astype(np.float32) * 0.1
    for start in range(0, wave.size, 4097):
        engine.push(wave[start : start + 4097])
        now = engine.received / RATE
        back = max(now - 30.0, 0.0, (engine.received - engine.audio.size) / RATE)
        expected = wave[round(back * RATE) : engine.received]
        assert np.array_equal(engine.tail(back, now), expected)  # wrapped or not, whole or a part
    with pytest.raises(InputError, match="no longer"):
        engine.tail(now - 40.0, now)
    engine.close()


def stream(setup, *args):
    return subprocess.run([sys.executable, "-m", "pdmer.streamer", "--model", str(setup["model"]), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_stream_a_file_fast_to_oscdump(setup, oscdump, tmp_path):  # noqa: F811
    port, read = oscdump
    stats = tmp_path / "runs" / "stats.json"  # a folder that does not exist yet: it is made
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
    assert bad_host.stderr.startswith("pdmer-stream: error: ")  # the program the user ran, not "pdmer:"
    unknown = subprocess.run([sys.executable, "-m", "pdmer.streamer", "--model", str(setup["model"]), "--profile",
                              "nobody", "--source", str(setup["music"]), "--fast"], capture_output=True, text=True,
                             timeout=300, env={**__import__("os").environ, "PDMER_HOME": str(tmp_path)})
    assert unknown.returncode == 2 and "known profiles: default" in unknown.stderr


def test_an_unwritable_stats_path_is_refused_before_the_stream(tmp_path):
    """--stats-json is written at exit: a path it cannot take is said at once, in one line, not after the whole
    source. The model and the source are bad too: its error can only come first if it is checked first."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for path, fix in ((tmp_path / "a-file" / "s.json", f"{blocker} is a file, not a folder"),
                      ("/proc/s.json", "cannot create files in /proc")):
        result = subprocess.run([sys.executable, "-m", "pdmer.streamer", "--model", str(tmp_path / "none.onnx"),
                                 "--source", str(blocker), "--fast", "--stats-json", str(path)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [result.stderr.strip()]  # one line, no traceback
        assert result.stderr.startswith(f"pdmer-stream: error: --stats-json {path}: {fix}")
        assert sorted(tmp_path.iterdir()) == [blocker] and not os.path.exists(path)


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
    for refresh in engine.pending.values():  # the last refresh (anchor 18) is used by no hop yet: wait for it
        refresh.result()
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


def stream_stdin(setup, data: bytes, *args):
    return subprocess.run([sys.executable, "-m", "pdmer.streamer", "--model", str(setup["model"]), "--source", "-",
                           *map(str, args)], input=data, capture_output=True, timeout=300)


def m4a_header() -> bytes:
    """The first box of an .m4a file (ISO base media: size, "ftyp", brand "M4A ", compatible brands)."""
    body = b"ftyp" + b"M4A " + (0x200).to_bytes(4, "big") + b"M4A mp42isom\x00\x00\x00\x00"
    return len(body).to_bytes(4, "big") + body + bytes(4000)


@pytest.mark.parametrize("kind", ["MP3", "FLAC", "Ogg", "WAV", "MP4/M4A"])
def test_compressed_audio_on_stdin_is_refused_by_its_magic_bytes(setup, kind, tmp_path):
    """A file piped into --source - would stream as loud noise read as raw PCM: it is named and refused instead.
    The MP3 is libsndfile's own encoding, which starts on a bare MPEG frame sync (no ID3 tag)."""
    import io

    if kind == "MP4/M4A":
        data = m4a_header()
    else:
        buffer = io.BytesIO()
        soundfile.write(buffer, song(2.0), RATE, format={"Ogg": "OGG"}.get(kind, kind))
        data = buffer.getvalue()
    stats = tmp_path / "stats.json"
    result = stream_stdin(setup, data, "--osc", f"127.0.0.1:{free_udp_port()}", "--stats-json", stats)
    errors = result.stderr.decode()
    assert result.returncode == 2, errors
    assert f"pdmer-stream: error: standard input holds {kind} data, not raw PCM: use --source FILE" in errors
    assert "Traceback" not in errors and json.loads(stats.read_text())["frames_sent"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json"]  # no temporary file left behind


def test_raw_pcm_that_starts_like_a_frame_sync_is_not_taken_for_mp3(setup, oscdump):  # noqa: F811
    """Two s16le samples of -1 and -1264 are the bytes of an MPEG frame header; one such pair is not MP3."""
    port, read = oscdump
    wave = (song(3.0) * 32767).astype("<i2")
    wave[:2] = [-1, -1264]  # ff ff 10 fb: a valid MPEG-1 layer I header, but no second frame where it says
    result = stream_stdin(setup, wave.tobytes(), "--rate", RATE, "--osc", f"127.0.0.1:{port}")
    assert result.returncode == 0, result.stderr.decode()
    assert len([1 for path, _, _ in read(4 * MESSAGES_PER_FRAME) if path == "/pdmer/frame"]) >= 4


def nan_pcm() -> bytes:
    wave = song(2.0)
    wave[:] = np.nan  # a float writer that failed: every sample NaN
    return wave.astype("<f4").tobytes()


@pytest.mark.parametrize("case, data, args, code, message", [
    ("empty", b"", [], 1, "no frame sent: standard input was empty: pipe raw PCM into it"),
    ("silence", bytes(4 * RATE), [], 1, "no frame sent: all 2.0 s of stdin (s16le, 1 ch) were silence (below -60 "
                                        "dBFS): check that the input carries sound"),
    ("too short", (song(0.3) * 32767).astype("<i2").tobytes(), [], 1,
     "no frame sent: stdin (s16le, 1 ch) held 0.30 s of sound, less than the 0.5 s one frame needs"),
    ("NaN", nan_pcm(), ["--format", "f32le"], 1, f"no frame sent: all {2 * RATE} samples of stdin (f32le, 1 ch) "
                                                 "were NaN or infinite (streamed as silence): is it really f32le?"),
    ("one byte", b"\x01", [], 1, "no frame sent: stdin (s16le, 1 ch) held no whole sample (1 byte)"),
    ("text", b"#EXTM3U\nsong.mp3\nother song.mp3\n", [], 2, "error: standard input holds text, not raw PCM audio"),
])
def test_a_stream_that_sends_no_frame_says_why(setup, tmp_path, case, data, args, code, message):
    """Nothing usable on standard input: one line names what the input held and what to do, the exit code says
    it failed (1: the source ended with nothing to send; 2: refused), and the statistics are still written."""
    stats = tmp_path / "stats.json"
    result = stream_stdin(setup, data, "--rate", RATE, *args, "--osc", f"127.0.0.1:{free_udp_port()}",
                          "--stats-json", stats)
    errors = result.stderr.decode()
    assert result.returncode == code, errors
    assert f"pdmer-stream: {message}" in errors and "Traceback" not in errors, errors
    report = json.loads(stats.read_text())
    assert report["frames_sent"] == 0 and report["stopped_by"].startswith("end of source" if code == 1 else "error")
    if code == 1:
        assert report["nothing_sent"] in errors
    if case == "NaN":  # said at once, not only at the end
        assert "warning: stdin (f32le, 1 ch) holds NaN or infinite samples" in errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json"]


def test_a_text_file_named_mp3_is_not_decodable_audio(setup, tmp_path):
    """libsndfile calls such a file "does not exist or is not a regular file": the command says what it is."""
    fake = tmp_path / "song.mp3"
    fake.write_text("this is the lyrics page, saved with the wrong name\n")
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    for path, reason in ((fake, "it is text, not decodable audio"), (noise, "it is not decodable audio")):
        result = stream(setup, "--source", path, "--fast", "--osc", f"127.0.0.1:{free_udp_port()}")
        assert result.returncode == 2, result.stderr
        assert f"pdmer-stream: error: cannot decode {path}: {reason}" in result.stderr, result.stderr
        assert "give a wav, flac, ogg or mp3 file" in result.stderr
        assert "does not exist" not in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise.mp3", "song.mp3"]


@pytest.mark.slow
def test_plain_status_lines_when_stderr_is_not_a_terminal(setup, tmp_path):
    """A stream under a supervisor or in a log: a plain status line every few seconds (5 by default, or
    --status-every), none with --quiet."""
    tone = tmp_path / "tone.wav"
    soundfile.write(str(tone), song(6.0), RATE)
    line = re.compile(r"^pdmer-stream: (\d+\.\d) s streamed, (\d+) frames sent, (\d+) silent; now (V \S+ A \S+|silence)"
                      r", hop \d+\.\d ms, overruns 0$", re.M)
    port = free_udp_port()
    default = stream(setup, "--source", tone, "--osc", f"127.0.0.1:{port}")  # real-time pace: 6 s
    assert default.returncode == 0, default.stderr
    lines = line.findall(default.stderr)
    assert len(lines) == 1 and 4.0 <= float(lines[0][0]) <= 5.5 and int(lines[0][1]) >= 8, default.stderr
    every = stream(setup, "--source", tone, "--status-every", "1", "--osc", f"127.0.0.1:{port}")
    times = [float(t) for t, *_ in line.findall(every.stderr)]
    assert every.returncode == 0 and 4 <= len(times) <= 6 and times == sorted(times), every.stderr
    quiet = stream(setup, "--source", tone, "--fast", "--quiet", "--status-every", "0.01", "--osc", f"127.0.0.1:{port}")
    assert quiet.returncode == 0 and not line.findall(quiet.stderr), quiet.stderr


def test_an_id3_tagged_mp3_on_stdin_is_refused_and_pcm_that_ends_early_still_streams():
    """An MP3 with an ID3 tag (what most players and taggers write) is refused by the tag alone; raw PCM shorter
    than the bytes held back for the check still comes out whole at the end of input."""
    import io

    from pdmer.streamer.sources import StdinSource, container

    tagged = b"ID3\x04\x00\x00\x00\x00\x00\x23" + bytes(35) + b"\xff\xfb\x90\xc4" + bytes(413)
    with pytest.raises(InputError, match="standard input holds MP3 data, not raw PCM: use --source FILE"):
        list(StdinSource(44100, stream=io.BytesIO(tagged)).chunks())
    assert container(b"\xff\xfb\x90\xc4" + bytes(413) + b"\xff\xfb\x90\xc4") == "MP3"  # two frames, 417 bytes apart
    assert container(b"\xff\xfb\x90\xc4" + bytes(500)) is None  # a lone frame sync: two PCM samples, maybe
    short = (song(0.05) * 32767).astype("<i2")
    got = np.concatenate(list(StdinSource(RATE, stream=io.BytesIO(short.tobytes())).chunks()))
    np.testing.assert_array_equal(got, short / 32768.0)
