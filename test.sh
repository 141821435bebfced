#!/usr/bin/env bash
# The tests: set up if needed, then run the whole suite. Arguments go to pytest (e.g. ./test.sh -k metrics).
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" = 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure here" >&2
    exit 1
fi
exit "$status"
