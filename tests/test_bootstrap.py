"""scripts/bootstrap.sh (which ./test.sh runs first) as root with a Debian package missing, against a fake apt-get
whose lock another process holds: it waits for the lock instead of failing with apt's exit 100. The script is the
real one, run in a copy of the repository's layout whose virtual environment is already installed; apt-get, dpkg-query,
id and sleep are stand-ins on PATH (no root, no network, no waiting)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
LOCKED = "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)"

# update fails while the counter is under $LOCKED_FOR (with $MESSAGE), then succeeds; every call is logged.
FAKE_APT = """#!/bin/sh
echo "$*" >> "$LOG"
case "$*" in *update*)
    n=$(($(cat "$COUNT" 2>/dev/null || echo 0) + 1)); echo $n > "$COUNT"
    if [ "$n" -le "$LOCKED_FOR" ]; then echo "$MESSAGE" >&2; exit 100; fi;;
esac
exit 0
"""


def run_bootstrap(tmp_path: Path, locked_for: int, message: str = LOCKED) -> tuple[subprocess.CompletedProcess, Path]:
    repo, bin_dir = tmp_path / "repo", tmp_path / "bin"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "bootstrap.sh", repo / "scripts" / "bootstrap.sh")
    (repo / "pyproject.toml").write_text("[project]\nname = 'stand-in'\n")
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "python").symlink_to(sys.executable)
    digest = hashlib.sha256((repo / "pyproject.toml").read_bytes()).hexdigest()
    (repo / ".venv" / ".pdmer-installed").write_text(digest + "\n")  # installed already: no pip
    bin_dir.mkdir()
    fakes = {"apt-get": FAKE_APT, "dpkg-query": "#!/bin/sh\nexit 1\n", "id": "#!/bin/sh\necho 0\n",
             "sleep": '#!/bin/sh\necho "$1" >> "$SLEPT"\n'}
    for name, text in fakes.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": sys.executable,
           "LOG": str(tmp_path / "apt.log"), "COUNT": str(tmp_path / "count"), "SLEPT": str(tmp_path / "slept"),
           "LOCKED_FOR": str(locked_for), "MESSAGE": message}
    result = subprocess.run(["bash", str(repo / "scripts" / "bootstrap.sh")], capture_output=True, text=True,
                            env=env, timeout=120)
    return result, tmp_path


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_held_apt_lock_is_waited_for(tmp_path):
    result, logs = run_bootstrap(tmp_path, locked_for=3)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("waiting up to 10 minutes") == 1  # said once, not once per try
    calls = lines(logs / "apt.log")
    assert calls[:4] == ["update -qq"] * 4 and len(calls) == 5
    assert calls[4].startswith("-o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends libportaudio2")
    assert lines(logs / "slept") == ["5"] * 3


@pytest.mark.parametrize("locked_for, message, tries", [
    (10_000, LOCKED, 121),  # held past the 10 minutes: give up and say why
    (1, "E: Failed to fetch http://deb.debian.org/... Temporary failure resolving", 1),  # not the lock: at once
])
def test_apt_failures_other_than_a_short_lock_still_fail(tmp_path, locked_for, message, tries):
    result, logs = run_bootstrap(tmp_path, locked_for=locked_for, message=message)
    assert result.returncode != 0 and message in result.stderr
    assert lines(logs / "apt.log") == ["update -qq"] * tries  # nothing installed
    assert len(lines(logs / "slept")) == tries - 1
