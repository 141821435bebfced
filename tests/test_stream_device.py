"""pdmer-stream from a REAL input device: a PulseAudio null sink (norewinds=1, float32 samples, so that the device
delivers the file's own samples) whose monitor is the default input,
real music played into it with paplay, the frames received by a real oscdump (DESIGN.md §10, ../shared/rig)."""

from __future__ import annotations

import json
import os
import re
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
    return pulse_rig.env


@pytest.fixture
def pulse_rig(tmp_path):
    """A private PulseAudio daemon with a null sink 'vmic' (pdmer.streamer.pulse.Pulse: env, daemon, restart())."""
    from pdmer.streamer.pulse import APT_HINT, missing_tools, private_pulse

    if missing_tools():
        pytest.skip(f"{missing_tools()} missing: {APT_HINT} (./test.sh installs them when run as root)")
    with private_pulse(tmp_path / "pa", rate=RATE) as pulse:
        yield pulse


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
def test_with_exit_on_device_loss_a_device_that_disappears_ends_the_stream(setup, pulse_rig, oscdump,  # noqa: F811
                                                                          tmp_path):
    """--exit-on-device-loss: the sound server dies under a running stream: pdmer-stream says so, keeps its
    statistics and exits 2 (for scripts whose supervisor, such as systemd, restarts it)."""
    env, daemon = pulse_rig.env, pulse_rig.daemon
    port, read = oscdump
    stats = tmp_path / "stats.json"
    stream, log = start_stream(setup["model"], env, "--osc", f"127.0.0.1:{port}", "--stats-json", stats, "--quiet",
                               "--no-start-at-sound", "--exit-on-device-loss")
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


def wait_until(condition, stream, log, what: str, timeout: float = 60.0):
    """Poll ``condition()`` until it returns something true; the stream must keep running meanwhile."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert stream.poll() is None, f"pdmer-stream ended while waiting for {what}: " + "".join(log)
        assert time.monotonic() < deadline, f"no {what} after {timeout} s: " + "".join(log)
        time.sleep(0.2)
    return found


def no_input_at(lines) -> list[int]:
    """Indexes of the /pdmer/status "no input" lines (oscdump prints the string quoted, spaces and all)."""
    return [i for i, (path, _, args) in enumerate(lines) if path == "/pdmer/status" and " ".join(args).startswith(
        '"no input"')]


def frames_at(lines) -> list[int]:
    return [i for i, (path, _, _) in enumerate(lines) if path == "/pdmer/frame"]


@pytest.mark.slow
def test_a_stream_survives_its_sound_server_restarting(setup, pulse_rig, oscdump, tmp_path):  # noqa: F811
    """The show goes on: the sound server is killed under a running stream (as a USB interface pulled out looks to
    it), frames stop and receivers hear /pdmer/status "no input" once a second; the server comes back on the same
    socket, the stream reopens its device by itself and frames resume, in one run, one process."""
    import soundfile

    port, read = oscdump
    t = np.arange(8 * RATE) / RATE
    tone = tmp_path / "tone.wav"
    soundfile.write(str(tone), (0.3 * np.sin(2 * np.pi * (330 + 40 * np.sin(t)) * t)).astype(np.float32), RATE)
    stats = tmp_path / "stats.json"
    stream, log = start_stream(setup["model"], pulse_rig.env, "--osc", f"127.0.0.1:{port}", "--stats-json", stats,
                               "--no-start-at-sound", "--status-every", "1")
    players = [subprocess.Popen(["paplay", "--device=vmic", str(tone)], env=pulse_rig.env)]
    try:
        wait_until(lambda: frames_at(read(0, timeout=0)), stream, log, "frame from the first tone")
        pulse_rig.daemon.kill()  # the device disappears under the stream
        players[0].kill()
        first_lost = wait_until(lambda: no_input_at(read(0, timeout=0)), stream, log, '"no input" status')[0]
        time.sleep(3.5)  # gone for a while: the stream waits, and says so
        lines = read(0, timeout=0)
        lost = no_input_at(lines)
        assert len(lost) >= 3, lines[first_lost:]  # once a second while it is gone
        assert not [i for i in frames_at(lines) if i > lost[1]], lines[first_lost:]  # frames stopped
        assert stream.poll() is None, "".join(log)

        pulse_rig.restart()  # the same socket path: the server is back
        players.append(subprocess.Popen(["paplay", "--device=vmic", str(tone)], env=pulse_rig.env))
        resumed = wait_until(lambda: [i for i in frames_at(read(0, timeout=0)) if i > len(lines)], stream, log,
                             "frame after the server came back", timeout=30)
        after = read(0, timeout=0)
        assert not no_input_at(after[resumed[0]:]), after[resumed[0]:]
        assert any(path == "/pdmer/status" and args[0] == '"running"' for path, _, args in after[len(lines):])
        stream.send_signal(signal.SIGTERM)
        code = stream.wait(timeout=60)
    finally:
        for process in (*players, stream):
            if process.poll() is None:
                process.kill()
                process.wait()
    time.sleep(0.2)
    text = "".join(log)
    assert code == 0 and "Traceback" not in text, text
    assert "stopped delivering audio" in text and 'sending /pdmer/status "no input" and reopening it' in text, text
    assert re.search(r"no input for \d+ s: waiting for '[^']+' to come back", text), text  # the plain status line
    assert re.search(r"input device '[^']+' is back after \d+\.\d s: streaming again", text), text
    report = json.loads(stats.read_text())
    assert report["device_losses"] == 1 and report["no_input_s"] >= 3.5 and report["stopped_by"] == "SIGTERM"
    assert report["frames_sent"] == len(frames_at(read(0, timeout=0))), report
    final = read(0, timeout=0)
    assert final[-1][0] == "/pdmer/status" and final[-1][2][0] == '"stopped"'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oscdump.txt", "pa", "stats.json", "tone.wav"]


def test_list_devices_names_the_rig_s_input(pulse):
    result = subprocess.run([sys.executable, "-m", "pdmer.streamer", "--list-devices"], env=pulse,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and re.search(r"^\d+: \S.* \(\d+ in, \d+ Hz\)$", result.stdout, re.M), result


def test_list_devices_without_any_says_what_to_check(tmp_path):
    """No sound server and no sound card: an empty list would look like a broken command; it says why instead."""
    env = {**os.environ, "PULSE_SERVER": f"unix:{tmp_path}/no-such-server", "PULSE_RUNTIME_PATH": str(tmp_path),
           "XDG_RUNTIME_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "pdmer.streamer", "--list-devices"], env=env,
                            capture_output=True, text=True, timeout=120)
    if result.returncode == 0 and result.stdout.strip():
        pytest.skip("this machine has an input device without PulseAudio: " + result.stdout)
    assert result.returncode == 1 and result.stdout == "", result
    assert result.stderr.startswith("pdmer-stream: PortAudio sees no input device: check that the sound server runs")
    assert "PULSE_SERVER" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
