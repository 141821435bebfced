"""pdmer-stream from a REAL input device: a PulseAudio null sink (norewinds=1, float32 samples, so that the device
delivers the file's own samples) whose monitor is the default input,
real music played into it with paplay, the frames received by a real oscdump (DESIGN.md §10, ../shared/rig)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import shared_path
from test_osc import oscdump  # noqa: F401  (the fixture)
from test_stream import setup  # noqa: F401  (the fixture)

RATE = 44100


@pytest.fixture
def pulse(pulse_rig):
    """Environment of a private PulseAudio daemon with a null sink 'vmic' (its monitor: the default source)."""
    return pulse_rig[0]


@pytest.fixture
def pulse_rig(tmp_path):
    """(environment, daemon process) of a private PulseAudio daemon with a null sink 'vmic'."""
    from pdmer.streamer.pulse import APT_HINT, missing_tools, private_pulse

    if missing_tools():
        pytest.skip(f"{missing_tools()} missing: {APT_HINT} (./test.sh installs them when run as root)")
    with private_pulse(tmp_path / "pa", rate=RATE) as pulse:
        yield pulse.env, pulse.daemon


def start_stream(model, env, *args):
    """pdmer-stream from the default input device (``model`` None: the embedded default); returns (process, stderr
    lines) once it has started."""
    chosen = [] if model is None else ["--model", str(model)]
    stream = subprocess.Popen([sys.executable, "-m", "pdmer.streamer", *chosen, *map(str, args)],
                              env=env, stderr=subprocess.PIPE, text=True)
    started = threading.Event()
    log = []

    def watch():
        for line in stream.stderr:
            log.append(line)
            if line.startswith("pdmer-stream:"):
                started.set()

    threading.Thread(target=watch, daemon=True).start()
    assert started.wait(120), "".join(log)
    return stream, log


@pytest.mark.slow
def test_music_into_the_device_reaches_oscdump_at_2_hz(setup, pulse, oscdump, tmp_path):  # noqa: F811
    port, read = oscdump
    music = shared_path("data", "music", "hr-savino-ocean.ogg")  # 60.5 s, CC BY-SA (see its COPYRIGHT file)
    stats = tmp_path / "stats.json"
    stream, log = start_stream(setup["model"], pulse, "--osc", f"127.0.0.1:{port}", "--stats-json", stats, "--quiet")
    assert "vmic" in log[0] or "default" in log[0] or "pulse" in log[0], log[0]
    subprocess.run(["paplay", "--device=vmic", str(music)], env=pulse, check=True, timeout=120)
    time.sleep(1.5)
    stream.send_signal(signal.SIGTERM)
    assert stream.wait(timeout=60) == 0, "".join(log)

    report = json.loads(stats.read_text())
    assert report["stopped_by"] == "SIGTERM" and report["overruns"] == 0, report
    frames = [(received, args) for received, path, _, args in read(1, stamps=True) if path == "/pdmer/frame"]
    assert len(frames) >= 115, len(frames)  # 60.5 s of music: 121 steps, less the slices after the music
    times = np.array([float(args[0]) for _, args in frames])
    assert np.allclose(np.diff(times), 0.5)
    values = np.array([[float(args[1]), float(args[2])] for _, args in frames])
    assert np.isfinite(values).all() and np.abs(values).max() <= 1.0
    # Arrival rate at oscdump (its receive time stamps): 2 Hz within 5 % over the minute.
    received = np.array([r for r, _ in frames])
    rate = (len(received) - 1) / (received[-1] - received[0])
    assert abs(rate - 2.0) <= 0.1, rate

    # The same audio through --source FILE --fast gives the same values (the device's 16-bit samples aside).
    from pdmer.audio import load_audio
    from pdmer.streamer.engine import Engine

    wave, file_rate = load_audio(music)
    assert file_rate == RATE
    engine = Engine(setup["deployed"], RATE, start_at_sound=True)
    fast = {f.time_s: (f.valence, f.arousal) for f in engine.push(wave) if not f.silent}
    engine.close()
    common = [i for i, t in enumerate(times) if t in fast]  # the device also hears the silence after the music
    assert len(common) >= 115
    expected = np.clip([fast[times[i]] for i in common], -1, 1)
    assert np.abs(values[common] - expected).max() <= 1e-4, np.abs(values[common] - expected).max()


@pytest.mark.slow
def test_a_device_that_disappears_ends_the_stream_with_a_message(setup, pulse_rig, oscdump, tmp_path):  # noqa: F811
    """The sound server dies under a running stream: pdmer-stream says so, keeps its statistics and exits 2 (it does
    not reconnect: a supervisor such as systemd restarts it)."""
    env, daemon = pulse_rig
    port, read = oscdump
    stats = tmp_path / "stats.json"
    stream, log = start_stream(setup["model"], env, "--osc", f"127.0.0.1:{port}", "--stats-json", stats, "--quiet",
                               "--no-start-at-sound")
    music = shared_path("data", "music", "hr-savino-ocean.ogg")
    player = subprocess.Popen(["paplay", "--device=vmic", str(music)], env=env)
    deadline = time.monotonic() + 60
    while not any(path == "/pdmer/frame" for path, _, _ in read(1, timeout=1)):  # music is flowing
        assert time.monotonic() < deadline, "".join(log)
    daemon.kill()  # the device disappears
    player.kill()
    try:
        code = stream.wait(timeout=60)
    except subprocess.TimeoutExpired:
        stream.kill()
        pytest.fail("pdmer-stream did not end after its device disappeared: " + "".join(log))
    time.sleep(0.2)
    assert code == 2, "".join(log)
    assert "stopped delivering audio" in "".join(log) and "Traceback" not in "".join(log), "".join(log)
    report = json.loads(stats.read_text())
    assert report["stopped_by"].startswith("error:") and report["frames_sent"] >= 1, report
    states = [args[0] for path, _, args in read(1) if path == "/pdmer/status"]
    assert states[-1] == '"stopped"', states  # receivers are told the stream has ended
    print("".join(log))


@pytest.mark.slow
def test_without_an_input_device_the_bundled_excerpt_streams(oscdump, tmp_path):  # noqa: F811
    """The README's main command (pdmer-stream, nothing given but where oscdump listens) on a machine with no sound
    server and no sound card: the default model on the bundled excerpt, looped, at real-time pace, with a line that
    says so and credits it."""
    port, read = oscdump
    env = {**os.environ, "PULSE_SERVER": f"unix:{tmp_path}/no-such-server", "PULSE_RUNTIME_PATH": str(tmp_path),
           "XDG_RUNTIME_DIR": str(tmp_path)}
    from pdmer.streamer.sources import DeviceSource, NoInputDevice

    try:
        DeviceSource().stream.close()
        pytest.skip("this machine has a working input device (the fallback is for machines without one)")
    except NoInputDevice:
        pass
    stream, log = start_stream(None, env, "--osc", f"127.0.0.1:{port}", "--quiet")
    deadline = time.monotonic() + 60
    while len([1 for path, _, _ in read(1, timeout=1) if path == "/pdmer/frame"]) < 4:
        assert time.monotonic() < deadline and stream.poll() is None, "".join(log)
    stream.send_signal(signal.SIGTERM)
    assert stream.wait(timeout=60) == 0, "".join(log)
    text = "".join(log)
    assert "no input device" in text and "palace-excerpt.ogg (looped)" in text and "CC BY-SA 3.0" in text, text
    assert "profile default" in text
    frames = [args for path, _, args in read(1) if path == "/pdmer/frame"]
    values = np.array([[float(a[1]), float(a[2])] for a in frames])
    assert np.isfinite(values).all() and np.abs(values).max() <= 1.0
