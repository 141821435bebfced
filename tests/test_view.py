"""The live view (``pdmer-stream --view``): its server on its own, and the page in a real headless Chromium while a
file streams, through a restart of the stream and after it is gone. Screenshots go to build/test-artifacts/ (or
$PDMER_TEST_ARTIFACTS) for people to look at."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pdmer.errors import InputError

from test_osc import free_udp_port

ARTIFACTS = Path(os.environ.get("PDMER_TEST_ARTIFACTS", Path(__file__).parents[1] / "build" / "test-artifacts"))


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def view():
    from pdmer.view.server import LiveView

    live = LiveView(f"127.0.0.1:{free_tcp_port()}", profile="alice", model="m", source="song.wav",
                    osc=["127.0.0.1:9000"])
    yield live
    live.close()


def test_the_server_serves_the_page_and_pushes_values_with_the_last_minute(view):
    from websockets.sync.client import connect

    with urllib.request.urlopen(view.url) as response:
        assert response.headers["Content-Type"].startswith("text/html") and b"view.js" in response.read()
    with urllib.request.urlopen(view.url + "view.js") as response:
        assert b"new WebSocket" in response.read()
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(view.url + "secret.txt")
    assert missing.value.code == 404
    for step in range(150):  # 75 s: the first 15 s fall out of the page's 60 s
        view.point(step * 0.5, 0.1, -0.2)
    view.hop(74.5, float("nan"), 3.0, True)  # NaN is not JSON: it travels as null
    socket_url = view.url.replace("http", "ws") + "live"
    with connect(socket_url) as page:
        hello = json.loads(page.recv(timeout=5))
        assert hello["type"] == "hello" and hello["profile"] == "alice" and hello["source"] == "song.wav"
        assert [p["t"] for p in hello["points"]] == [step * 0.5 for step in range(29, 150)]
        assert hello["hops"] == [{"type": "hop", "t": 74.5, "level_db": None, "compute_ms": 3.0, "silent": True}]
        view.point(75.0, 0.3, 0.4)
        assert json.loads(page.recv(timeout=5)) == {"type": "point", "t": 75.0, "v": 0.3, "a": 0.4}


def test_a_busy_port_is_refused_with_the_way_out(view):
    from pdmer.view.server import LiveView

    with pytest.raises(InputError, match=f"port is in use.*--view 127.0.0.1:{view.port + 1}"):
        LiveView(f"127.0.0.1:{view.port}", profile="p", model="m", source="s", osc=[])
    with pytest.raises(InputError, match="must be HOST:PORT"):
        LiveView("8765", profile="p", model="m", source="s", osc=[])


def test_the_command_says_a_busy_port_before_loading_the_model(view, tmp_path):
    """The port is bound first: the model (here a missing one, which would fail with its own error) and the source
    are never reached, so the message comes at once instead of after seconds of loading."""
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    result = subprocess.run([sys.executable, "-m", "pdmer.streamer", "--model", str(tmp_path / "none.onnx"),
                             "--source", str(junk), "--fast", "--view", f"127.0.0.1:{view.port}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"pdmer-stream: error: --view 127.0.0.1:{view.port}: cannot serve the live "
                                          "view: the port is in use (another pdmer-stream --view?); pick another, "
                                          f"e.g. --view 127.0.0.1:{view.port + 1}"]


# -- the page in a real browser ----------------------------------------------------------------------------------------
def chromium_or_skip() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed (scripts/bootstrap.sh installs it as root: apt-get install "
                    "chromium); the live view's browser test needs a real browser")
    pytest.importorskip("playwright", reason="playwright (the test extra) drives the browser: pip install -e '.[test]'")
    return path


def start_stream(source: Path, view_port: int, osc_port: int, *extra: str) -> subprocess.Popen:
    """pdmer-stream with the embedded default model, at real-time pace; returns once its view is serving."""
    stream = subprocess.Popen([sys.executable, "-m", "pdmer.streamer", "--source", str(source), "--view",
                               f"127.0.0.1:{view_port}", "--osc", f"127.0.0.1:{osc_port}", "--quiet", *extra],
                              stderr=subprocess.PIPE, text=True)
    for line in stream.stderr:
        if "live view at" in line:
            return stream
    raise AssertionError(f"pdmer-stream ended before serving its view (exit {stream.wait()})")


def stop(stream: subprocess.Popen) -> None:
    stream.send_signal(signal.SIGINT)
    stream.wait(timeout=30)
    stream.stderr.close()


def page_state(page) -> dict:
    return page.evaluate("""() => ({
        plane: {...document.getElementById('va-plane').dataset},
        valence: Number(document.getElementById('valence-chart').dataset.points || 0),
        arousal: Number(document.getElementById('arousal-chart').dataset.points || 0),
        banner: document.getElementById('banner').className,
        bannerText: document.getElementById('banner').textContent,
        bannerShown: document.getElementById('banner').offsetParent !== null,
        profile: document.getElementById('profile').textContent,
        source: document.getElementById('source').textContent,
        osc: document.getElementById('osc').textContent,
        level: document.getElementById('level').textContent,
        compute: document.getElementById('compute').textContent,
    })""")


def wait_for(page, condition, what: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = page_state(page)
        if condition(state):
            return state
        page.wait_for_timeout(200)
    raise AssertionError(f"the page never showed {what}; last state {state}")


def test_the_page_keeps_two_columns_down_to_laptop_widths(view):
    """The plane beside the charts at 1200 px (once they dropped under it: 520 + 640 px and the gaps need 1214);
    one column on a phone; never a horizontal scroll bar."""
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    layout = """() => { const box = (id) => document.getElementById(id).getBoundingClientRect();
        const plane = box('va-plane'), chart = box('valence-chart');
        return {beside: chart.left >= plane.right && chart.top < plane.bottom,
                below: chart.top >= plane.bottom, scroll: document.documentElement.scrollWidth, width: innerWidth}; }"""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        seen = {}
        for width in (1280, 1200, 900, 420):
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.goto(view.url)
            seen[width] = page.evaluate(layout)
            if width == 1200:
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=ARTIFACTS / "live-view-1200.png")
            page.close()
        browser.close()
    assert [seen[w]["beside"] for w in (1280, 1200, 900)] == [True, True, True] and seen[420]["below"]
    assert all(state["scroll"] <= state["width"] for state in seen.values()), seen


@pytest.mark.slow
def test_the_page_follows_the_stream_reconnects_and_says_when_it_is_gone(tmp_path):
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    from pdmer.defaults import MUSIC_EXCERPT

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    view_port, osc_port = free_tcp_port(), free_udp_port()
    rate = 22050  # the second stream: a different source, so the page must show that it changed
    t = np.arange(20 * rate) / rate
    tone = tmp_path / "rising-tone.wav"
    soundfile.write(tone, (0.3 * np.sin(2 * np.pi * (200 + 20 * t) * t)).astype(np.float32), rate)

    first = start_stream(MUSIC_EXCERPT, view_port, osc_port)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            errors, requests = [], []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(f"http://127.0.0.1:{view_port}/")

            # While the file streams, the point moves and the charts fill.
            early = wait_for(page, lambda s: s["valence"] >= 4, "the first points")
            assert early["profile"] == "default" and early["source"] == MUSIC_EXCERPT.name and not early["bannerShown"]
            assert early["osc"] == f"127.0.0.1:{osc_port}"
            # 7 s on: past a refresh of the global vector (every 3 s), which the default model's curve follows
            later = wait_for(page, lambda s: s["valence"] >= early["valence"] + 14, "the charts filling")
            assert later["arousal"] == later["valence"]
            assert (later["plane"]["x"], later["plane"]["y"]) != (early["plane"]["x"], early["plane"]["y"])
            assert all(-1 <= float(later["plane"][key]) <= 1 for key in ("valence", "arousal"))
            assert later["level"].endswith("dBFS") and later["compute"].endswith("ms")
            page.screenshot(path=ARTIFACTS / "live-view.png")

            # The stream is gone: a clear message.
            stop(first)
            gone = wait_for(page, lambda s: s["banner"] == "banner gone", "the stream-gone message", 10)
            assert gone["bannerShown"] and "stream is gone" in gone["bannerText"]
            page.screenshot(path=ARTIFACTS / "live-view-gone.png")

            # It comes back (another source): the page reconnects by itself and starts over.
            second = start_stream(tone, view_port, osc_port)
            try:
                back = wait_for(page, lambda s: s["source"] == tone.name and s["valence"] >= 3, "the reconnect")
                assert not back["bannerShown"]
                page.screenshot(path=ARTIFACTS / "live-view-reconnected.png")
            finally:
                stop(second)
            browser.close()
    finally:
        if first.poll() is None:
            stop(first)
    assert errors == []
    outside = [url for url in requests if not url.startswith((f"http://127.0.0.1:{view_port}/", "data:"))]
    assert outside == []  # works offline: nothing fetched from anywhere else
    assert (ARTIFACTS / "live-view.png").stat().st_size > 10_000
