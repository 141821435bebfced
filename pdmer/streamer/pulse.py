"""A private PulseAudio daemon with a null sink whose monitor is the default input: a real input device on a machine
with no sound card (DESIGN.md §10). Tests and benchmarks play audio into it (paplay, pacat) and stream from it.

    with private_pulse(folder) as pulse:          # pulse.env: the environment that talks to this daemon
        subprocess.run(["paplay", "--device=vmic", "song.ogg"], env=pulse.env)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pdmer.errors import InputError

SINK = "vmic"
TOOLS = ("pulseaudio", "pactl", "paplay", "pacat")
APT_HINT = "apt-get install pulseaudio pulseaudio-utils libasound2-plugins"


@dataclass
class Pulse:
    env: dict[str, str]
    daemon: subprocess.Popen
    folder: Path

    def restart(self) -> None:
        """A new daemon on the same socket, the old one killed if it still runs: a sound server restart, as its
        clients see it."""
        stop(self.daemon, kill=True)
        self.daemon = start_daemon(self.folder, self.env)


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


@contextlib.contextmanager
def private_pulse(folder: str | Path, *, rate: int = 44100):
    """A daemon of our own (its socket and state in ``folder``), with a null sink ``vmic``: ``norewinds=1`` and
    float32 mono at ``rate``, so that what is played into it reaches its monitor sample for sample."""
    missing = missing_tools()
    if missing:
        raise InputError(f"{missing} missing: {APT_HINT}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(folder), "XDG_CONFIG_HOME": str(folder / "config"),
           "XDG_STATE_HOME": str(folder / "state"), "PULSE_SERVER": f"unix:{folder}/native"}
    (folder / "rig.pa").write_text(
        f"load-module module-native-protocol-unix auth-anonymous=1 socket={folder}/native\n"
        f"load-module module-null-sink sink_name={SINK} norewinds=1 format=float32le rate={rate} channels=1\n"
        f"set-default-sink {SINK}\nset-default-source {SINK}.monitor\n")
    pulse = Pulse(env, start_daemon(folder, env), folder)
    try:
        yield pulse
    finally:
        stop(pulse.daemon)


def start_daemon(folder: Path, env: dict[str, str]) -> subprocess.Popen:
    """pulseaudio on ``folder``'s rig.pa, once ``pactl info`` reaches it."""
    daemon = subprocess.Popen(["pulseaudio", "-n", "-F", str(folder / "rig.pa"), "--daemonize=no",
                               "--exit-idle-time=-1", "--use-pid-file=no", "--realtime=no", "--high-priority=no",
                               f"--log-target=file:{folder}/pa.log"], env=env)
    for _ in range(200):
        if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
            return daemon
        time.sleep(0.05)
    stop(daemon)
    log = folder / "pa.log"
    raise InputError(f"pulseaudio did not come up: {log.read_text()[-2000:] if log.exists() else ''}")


def stop(daemon: subprocess.Popen, *, kill: bool = False) -> None:
    if kill:
        daemon.kill()
    else:
        daemon.terminate()
    try:
        daemon.wait(timeout=10)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
