#!/usr/bin/env bash
# Make a listener profile from one song and their own curve for it, then stream with it.
#
#   examples/profile_and_stream.sh NAME SONG [CURVE.csv] [pdmer-stream arguments ...]
#
# Without CURVE.csv it writes the model's own curve for SONG to NAME-curve.csv and stops: edit that file so that it
# says what NAME feels (time_s,valence,arousal on -1..1; any spreadsheet or editor), then run this again with it.
# With it, it makes (or remakes) the profile NAME and runs pdmer-stream --profile NAME with the remaining arguments
# (default: the default input, OSC to 127.0.0.1:9000). pdmer comes from PATH, or from the project's .venv.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
name=$1 song=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$root/.venv/bin/pdmer" ] && PATH="$root/.venv/bin:$PATH"

if [ $# -eq 0 ] || [[ $1 != *.csv ]]; then
    pdmer predict "$song" --csv "$name-curve.csv"
    echo "Now edit $name-curve.csv so that it says how $name hears $song, then run:" >&2
    echo "    $0 $name $song $name-curve.csv" >&2
    exit 0
fi
curve=$1
shift
pdmer profile create "$name" --audio "$song" --curve "$curve" --force
exec pdmer-stream --profile "$name" "$@"
