#!/usr/bin/env bash
# Set up everything the tests need and run them. As root on Debian it installs and starts the
# services (Docker engine with host networking only, fuse3, chromium: scripts/services.sh);
# otherwise it says what is missing, and the tests that need it are skipped (under CI=true they
# fail instead). Then .venv with the test tools, then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    bash scripts/services.sh
else
    missing=()
    docker info >/dev/null 2>&1 || missing+=("a Docker engine (integration tests)")
    command -v fusermount3 >/dev/null 2>&1 || missing+=("fuse3 (rclone-mount tests)")
    command -v chromium >/dev/null 2>&1 || missing+=("chromium (report page tests)")
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "test: not root on Debian, so not installing: ${missing[*]}; those tests will be skipped" \
             "(as root: bash scripts/services.sh)" >&2
    fi
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt

# pytest exits 5 when it collected nothing: that is a failure too
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "test: pytest collected no tests" >&2
fi
exit "$status"
