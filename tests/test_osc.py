"""OSC out, received by a real OSC application: liblo's ``oscdump`` (Debian liblo-tools; CI installs it)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time

import pytest

from pdmer.errors import InputError
from pdmer.streamer.osc import FRAME_ADDRESSES, OscOut, parse_target, unit

LINE = re.compile(r"^([0-9a-f]{8}\.[0-9a-f]{8}) (\S+) (\S+)(.*)$")

MESSAGES_PER_FRAME = len(FRAME_ADDRESSES)  # datagrams per frame without --only or --bundle


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def oscdump(tmp_path):
    """(port, read()): an oscdump listening on a free port; read() returns its lines parsed so far."""
    if shutil.which("oscdump") is None:
        pytest.skip("oscdump is missing: apt-get install liblo-tools (./test.sh installs it when run as root)")
    port = free_udp_port()
    out = tmp_path / "oscdump.txt"
    with open(out, "w") as handle:
        process = subprocess.Popen(["oscdump", "-L", str(port)], stdout=handle, stderr=subprocess.STDOUT)
    bound = time.monotonic() + 10
    while time.monotonic() < bound:  # oscdump is up once its port is taken
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                break
        time.sleep(0.02)

    def read(expected: int, timeout: float = 10.0, *, stamps: bool = False):
        """(path, tags, args) per line; with ``stamps``, (receive time in NTP seconds, path, tags, args)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = out.read_text().splitlines()
            if len(lines) >= expected:
                break
            time.sleep(0.02)
        parsed = []
        for line in out.read_text().splitlines():
            match = LINE.match(line)
            assert match, f"unexpected oscdump line {line!r}"
            stamp, path, tags, rest = match.groups()
            seconds, fraction = stamp.split(".")
            received = int(seconds, 16) + int(fraction, 16) / 2**32
            parsed.append((received, path, tags, rest.split()) if stamps else (path, tags, rest.split()))
        return parsed

    yield port, read
    process.terminate()
    process.wait(timeout=10)


@pytest.mark.parametrize("bundle", [False, True])
def test_frames_reach_oscdump(oscdump, bundle):
    port, read = oscdump
    out = OscOut([parse_target(f"127.0.0.1:{port}")], prefix="/show/pdmer", bundle=bundle)
    out.frame(12.5, 0.25, -0.5)
    out.status("running", 12.5, 3)
    lines = read(8)
    assert [(path, tags) for path, tags, _ in lines] == [
        ("/show/pdmer/va", "ff"), ("/show/pdmer/valence", "f"), ("/show/pdmer/arousal", "f"),
        ("/show/pdmer/va01", "ff"), ("/show/pdmer/valence01", "f"), ("/show/pdmer/arousal01", "f"),
        ("/show/pdmer/frame", "fff"), ("/show/pdmer/status", "sfi")]
    values = {path: args for path, _, args in lines}
    assert values["/show/pdmer/va"] == ["0.250000", "-0.500000"]
    assert values["/show/pdmer/va01"] == ["0.625000", "0.250000"]
    assert values["/show/pdmer/valence01"] == ["0.625000"] and values["/show/pdmer/arousal01"] == ["0.250000"]
    assert values["/show/pdmer/frame"] == ["12.500000", "0.250000", "-0.500000"]
    assert values["/show/pdmer/status"] == ['"running"', "12.500000", "3"]
    assert out.send_errors == 0


def test_only_some_addresses(oscdump):
    port, read = oscdump
    out = OscOut([parse_target(f"127.0.0.1:{port}")], only=["valence01"])
    out.frame(1.0, 0.5, -0.5)
    out.status("running", 1.0, 0)
    assert [(path, args) for path, _, args in read(2)] == [("/pdmer/valence01", ["0.750000"]),
                                                         ("/pdmer/status", ['"running"', "1.000000", "0"])]
    with pytest.raises(InputError, match="unknown OSC address vibe: choose from va, valence"):
        OscOut([parse_target("127.0.0.1:9000")], only=["vibe"])


def test_a_receiver_that_is_not_listening_never_stalls_the_sender():
    out = OscOut([parse_target(f"127.0.0.1:{free_udp_port()}")])
    started = time.monotonic()
    for step in range(200):
        out.frame(step * 0.5, 0.0, 0.0)
    assert time.monotonic() - started < 5.0  # non-blocking: 1400 datagrams, lost or refused, without waiting
    assert out.sent + out.send_errors == 200 * MESSAGES_PER_FRAME


@pytest.mark.parametrize("text, message", [
    ("127.0.0.1", "must be HOST:PORT"),
    (":9000", "must be HOST:PORT"),
    ("127.0.0.1:abc", "is not a number"),
    ("127.0.0.1:70000", "outside 1-65535"),
    ("no-such-host.invalid:9000", "cannot resolve host"),
])
def test_bad_targets_fail_at_start(text, message):
    with pytest.raises(InputError, match=message):
        parse_target(text)


def test_prefix_and_mapping():
    with pytest.raises(InputError, match="prefix"):
        OscOut([parse_target("127.0.0.1:9000")], prefix="pdmer/")
    assert parse_target("[::1]:9000").family == socket.AF_INET6
    assert (unit(-1.0), unit(0.0), unit(1.0), unit(3.0)) == (0.0, 0.5, 1.0, 1.0)
