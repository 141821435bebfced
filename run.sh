#!/usr/bin/env bash
# The main job: set up if needed, then run pdmer's demo (model on a clip, V-A every 0.5 s). Arguments go to `pdmer demo`.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/pdmer demo "$@"
