"""The examples run as a user would run them: the Python OSC receiver and the Pure Data patch (headless, pd -nogui)
both listen to one real pdmer-stream and print what it sent; the profile script makes a profile and streams with it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pdmer.defaults import MUSIC_EXCERPT

from test_osc import MESSAGES_PER_FRAME, free_udp_port, oscdump  # noqa: F401  (the fixture)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PD_PATCH = EXAMPLES / "pd" / "pdmer-receive.pd"


def start_pd(port: int, log: Path) -> subprocess.Popen:
    """The patch as shipped, headless; its port moved from 9000 to ``port`` the way its comment says."""
    with open(log, "w") as handle:
        pd = subprocess.Popen(["pd", "-nogui", "-noaudio", "-nomidi", "-stderr", "-open", str(PD_PATCH),
                               "-send", f"pdmer-port {port}"], stdout=handle, stderr=subprocess.STDOUT)
    from pythonosc.udp_client import SimpleUDPClient

    probe, deadline = SimpleUDPClient("127.0.0.1", port), time.monotonic() + 20
    while "valence01: 0.5" not in log.read_text():  # listening once a probe frame comes out mapped
        assert time.monotonic() < deadline and pd.poll() is None, f"pd never received a probe: {log.read_text()}"
        probe.send_message("/pdmer/va", [0.0, 0.0])
        time.sleep(0.2)
    return pd


@pytest.fixture(scope="module")
def received(tmp_path_factory):
    """One --fast stream of the bundled excerpt to both receivers: their outputs and the stream's statistics."""
    root = tmp_path_factory.mktemp("examples")
    python_port, pd_port = free_udp_port(), free_udp_port()
    receiver = subprocess.Popen([sys.executable, str(EXAMPLES / "osc_receiver.py"), "--port", str(python_port),
                                 "--until-stopped", "--plot", str(root / "received.png")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert receiver.stdout.readline().startswith("listening on")
    pd, pd_log, pd_ready = None, root / "pd.log", 0
    if shutil.which("pd"):
        pd = start_pd(pd_port, pd_log)
        pd_ready = len(pd_log.read_text().splitlines())
    stats = root / "stats.json"
    stream = subprocess.run([sys.executable, "-m", "pdmer.streamer", "--source", str(MUSIC_EXCERPT), "--fast",
                             "--osc", f"127.0.0.1:{python_port}", "--osc", f"127.0.0.1:{pd_port}",
                             "--stats-json", str(stats)], capture_output=True, text=True, timeout=300)
    assert stream.returncode == 0, stream.stderr
    python_out, _ = receiver.communicate(timeout=30)
    pd_lines = []
    if pd is not None:
        time.sleep(1.0)  # Pd prints as its scheduler gets to the datagrams
        pd.terminate()
        pd.wait(timeout=10)
        pd_lines = pd_log.read_text().splitlines()[pd_ready:]
    return {"root": root, "python": python_out, "returncode": receiver.returncode, "pd": pd is not None,
            "pd_lines": pd_lines, "stats": json.loads(stats.read_text())}


def python_frames(received) -> np.ndarray:
    rows = re.findall(r"^\s*([\d.]+) s  valence ([-+][\d.]+)  arousal ([-+][\d.]+)$", received["python"], re.M)
    return np.array(rows, dtype=float)


def test_the_python_receiver_prints_every_frame_and_plots(received):
    frames = python_frames(received)
    assert received["returncode"] == 0, received["python"]
    assert len(frames) == received["stats"]["frames_sent"] >= 50  # 30 s of music at 2 Hz, start trimmed
    assert np.allclose(np.diff(frames[:, 0]), 0.5) and np.abs(frames[:, 1:]).max() <= 1
    assert "status stopped" in received["python"] and f"received {len(frames)} frames" in received["python"]
    assert (received["root"] / "received.png").read_bytes()[:4] == b"\x89PNG"


def test_pure_data_maps_the_stream_to_two_unit_controls(received):
    if not received["pd"]:
        pytest.skip("Pure Data is not installed (apt-get install puredata-core; ./test.sh does it as root)")
    printed = {"valence01": [], "arousal01": []}
    for line in received["pd_lines"]:
        name, _, value = line.partition(": ")
        if name in printed:
            printed[name].append(float(value))
    frames = python_frames(received)
    assert len(printed["valence01"]) == len(printed["arousal01"]) == len(frames), received["pd_lines"][-5:]
    # Pd prints 6 significant digits; the Python receiver 4 decimals.
    assert np.abs(np.array(printed["valence01"]) - (frames[:, 1] + 1) / 2).max() <= 1e-4
    assert np.abs(np.array(printed["arousal01"]) - (frames[:, 2] + 1) / 2).max() <= 1e-4
    assert min(printed["valence01"] + printed["arousal01"]) >= 0 and max(printed["valence01"]) <= 1


def test_the_profile_script_makes_a_profile_and_streams_with_it(tmp_path, oscdump):  # noqa: F811
    port, read = oscdump
    env = {**os.environ, "PDMER_HOME": str(tmp_path / "home")}
    script = EXAMPLES / "profile_and_stream.sh"
    first = subprocess.run([str(script), "mia", str(MUSIC_EXCERPT)], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0 and "Now edit mia-curve.csv" in first.stderr, first.stderr
    curve = tmp_path / "mia-curve.csv"
    rows = np.loadtxt(curve, delimiter=",", skiprows=1)
    rows[:, 2] = np.clip(rows[:, 2] - 0.4, -1, 1)  # mia hears it calmer than the model does
    np.savetxt(curve, rows, delimiter=",", header="time_s,valence,arousal", comments="", fmt="%.4f")
    stats = tmp_path / "stats.json"
    second = subprocess.run([str(script), "mia", str(MUSIC_EXCERPT), str(curve), "--source", str(MUSIC_EXCERPT),
                             "--fast", "--osc", f"127.0.0.1:{port}", "--stats-json", str(stats), "--quiet"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    report = json.loads(stats.read_text())
    assert report["profile"] == "mia" and report["frames_sent"] >= 50
    assert len([1 for path, _, _ in read(report["frames_sent"] * MESSAGES_PER_FRAME) if path == "/pdmer/frame"]) == report[
        "frames_sent"]
