#!/usr/bin/env bash
# Set up everything pdmer needs, once: Debian packages (as root, or the exact apt line to run), the virtual
# environment in .venv, and the package (with --tests, its test extras too). Re-running is cheap: each step checks
# first.
# Used by ./run.sh, and by ./test.sh with --tests (the test tools too); PYTHON picks the interpreter (default python3,
# which must be >= 3.10).
set -euo pipefail
cd "$(dirname "$0")/.."
tests=false
[ "${1:-}" = "--tests" ] && tests=true

PYTHON=${PYTHON:-python3}
VENV=.venv
# libportaudio2: sounddevice's PortAudio (live audio input). For the tests only: liblo-tools (oscdump, the real OSC
# receiver), pulseaudio, pulseaudio-utils, libasound2-plugins (a null sink as the real input device), chromium (the
# live view in a real browser), puredata-core (the Pd example, headless), fluidsynth and timgm6mb-soundfont (MIDI
# datasets rendered to audio; users rendering VGMIDI or EMOPIA want fluid-soundfont-gm, see pdmer/data/render.py).
SYSTEM_PACKAGES=(libportaudio2)
if $tests; then
    SYSTEM_PACKAGES+=(liblo-tools pulseaudio pulseaudio-utils libasound2-plugins chromium puredata-core fluidsynth timgm6mb-soundfont)
fi

# Another apt or dpkg (unattended-upgrades after boot, another shell) may hold apt's locks for minutes: wait for it
# instead of failing with apt's exit 100. apt-get install waits by itself (DPkg::Lock::Timeout); apt-get update does
# not wait for its lists lock (apt 2.6), so it is retried while the lock is the reason it failed.
APT_LOCK_WAIT=600
apt_update() {
    local waited=0 output
    until output=$(apt-get update -qq 2>&1); do
        if ! grep -q "Could not get lock" <<<"$output" || ((waited >= APT_LOCK_WAIT)); then
            echo "$output" >&2
            return 1
        fi
        if ((waited == 0)); then
            echo "bootstrap: another apt or dpkg holds its lock; waiting up to $((APT_LOCK_WAIT / 60)) minutes" >&2
        fi
        sleep 5
        waited=$((waited + 5))
    done
}

missing=()
for package in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    missing+=("python3-venv")
fi
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ]; then
        echo "bootstrap: installing Debian packages: ${missing[*]}"
        apt_update
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=$APT_LOCK_WAIT install -y -qq \
            --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "bootstrap: missing Debian packages. Run this once, then try again:" >&2
        echo "    sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "bootstrap: $PYTHON is $("$PYTHON" --version 2>&1); pdmer needs Python >= 3.10 (set PYTHON=python3.11)" >&2
    exit 1
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"

# Reinstall only when the dependencies changed: the stamp holds the hash of pyproject.toml and what was installed
# (an install with the test extras serves ./run.sh too).
stamp="$VENV/.pdmer-installed"
hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
installed=$(cat "$stamp" 2>/dev/null || true)
if $tests; then target='.[test]'; wanted="$hash test"; else target='.'; wanted="$hash"; fi
if [ "$installed" != "$wanted" ] && [ "$installed" != "$hash test" ]; then
    echo "bootstrap: installing pdmer and its dependencies into $VENV (torch is large: a few minutes the first time)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$target"
    echo "$wanted" >"$stamp"
fi
