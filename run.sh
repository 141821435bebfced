#!/usr/bin/env bash
# The main job: set up if needed, then stream valence/arousal over OSC (127.0.0.1:9000) from the default input
# device with the embedded default model; without an input device, a bundled excerpt of real music. Arguments go to
# `pdmer-stream` (e.g. --profile alice, --source song.ogg, --osc HOST:PORT). Ctrl-C ends it.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/pdmer-stream "$@"
