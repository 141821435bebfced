#!/usr/bin/env bash
# The tests: set up if needed, then run the whole suite. Arguments go to pytest (e.g. ./test.sh -k metrics).
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh --tests
# The converter tests read the musicnn wheel (29 MB, from PyPI); without it they skip and say why.
wheel_dir=.cache/wheels
if [ ! -f "$wheel_dir/musicnn-0.1.0-py3-none-any.whl" ]; then
    .venv/bin/python -m pip download --quiet --no-deps --disable-pip-version-check musicnn==0.1.0 -d "$wheel_dir" \
        || echo "test.sh: could not download the musicnn wheel; its converter tests will skip"
fi
export PDMER_MUSICNN_WHEEL=${PDMER_MUSICNN_WHEEL:-$PWD/$wheel_dir/musicnn-0.1.0-py3-none-any.whl}
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" = 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure here" >&2
    exit 1
fi
exit "$status"
