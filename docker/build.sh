#!/usr/bin/env bash
# Build the vmafx scoring-node image (docker/Dockerfile.node) from this work tree.
#
# Usage: bash docker/build.sh [--tag IMAGE:TAG] [--force-base]
#   BASE=python:3.11-slim-bookworm bash docker/build.sh   use a registry base instead of making one
#
# 1. the base image: BASE if given, else vmafx-base:bookworm made by docker/make-base.sh from
#    Debian's packages (once; needs root the first time; --force-base remakes it);
# 2. the wheels, on this host: the core and every plugins/*/ folder with a pyproject.toml, built
#    from a copy of the work tree, plus all their dependencies from PyPI for the base's Python
#    version, glibc and architecture (asked from the base image itself), into a temporary build
#    context (own per run, so concurrent builds do not trip over each other);
# 3. `docker build` of that context (only wheels: no network needed inside the build);
# 4. prints the image size.
#
# Environment: BASE, VMAFX_IMAGE (default vmafx-node:dev), PYTHON (a Python with pip for step 2;
# default: the project's .venv, then python3, then a venv made once in docker/.build/tools).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BUILD=$HERE/.build
TAG=${VMAFX_IMAGE:-vmafx-node:dev}
DEFAULT_BASE=vmafx-base:bookworm
FORCE_BASE=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        --tag) TAG=${2:?--tag needs IMAGE:TAG}; shift ;;
        --force-base) FORCE_BASE=(--force) ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "build.sh: $*" >&2; }
die() { log "$*"; exit 1; }
START=$SECONDS

docker info >/dev/null 2>&1 || die "no Docker engine answers 'docker info' (see docker/README.md)"

# ---- 1. base image ---------------------------------------------------------------------------
if [[ -n ${BASE:-} ]]; then
    log "base $BASE (given)"
else
    BASE=$DEFAULT_BASE
    bash "$HERE/make-base.sh" --tag "$BASE" "${FORCE_BASE[@]}"
fi
# What the wheels must fit: Python X.Y, glibc, machine, as the base itself reports them.
read -r PYVER GLIBC ARCH < <(docker run --rm --network none --entrypoint python3 "$BASE" -c \
    'import platform, sys; print("%d.%d" % sys.version_info[:2], platform.libc_ver()[1], platform.machine())') \
    || die "could not run python3 in $BASE"
[[ -n ${ARCH:-} && $GLIBC == 2.* ]] || die "$BASE: no glibc python3 found (got '$PYVER $GLIBC $ARCH')"
log "base python $PYVER, glibc $GLIBC, $ARCH"

# ---- 2. wheels --------------------------------------------------------------------------------
pick_python() {
    if [[ -n ${PYTHON:-} ]]; then echo "$PYTHON"; return; fi
    if [[ -x $REPO/.venv/bin/python ]] && "$REPO/.venv/bin/python" -m pip --version >/dev/null 2>&1; then
        echo "$REPO/.venv/bin/python"; return
    fi
    if python3 -m pip --version >/dev/null 2>&1; then echo python3; return; fi
    if [[ ! -x $BUILD/tools/bin/python ]]; then
        log "no Python with pip found: making $BUILD/tools"
        python3 -m venv "$BUILD/tools" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    fi
    echo "$BUILD/tools/bin/python"
}
PY=$(pick_python)
PIP=("$PY" -m pip --disable-pip-version-check --no-input)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmafx-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# Build from a copy, so that nothing (build/, *.egg-info) is written into the work tree, and no
# stale build/ folder of the work tree ends up in a wheel.
tar -C "$REPO" -c \
    --exclude=./.git --exclude=./.venv --exclude=./docker/.build --exclude=./samples \
    --exclude=./build --exclude=./dist --exclude='./plugins/*/build' --exclude='./plugins/*/dist' \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache --exclude=.mypy_cache \
    --exclude=.ruff_cache . | tar -C "$WORK" -x
PROJECTS=("$WORK") NAMES=(.)
for p in "$WORK"/plugins/*/; do
    if [[ -f $p/pyproject.toml ]]; then
        PROJECTS+=("${p%/}") NAMES+=("plugins/$(basename "$p")")
    fi
done
log "packages: ${NAMES[*]}"

CONTEXT=$WORK/context
mkdir -p "$CONTEXT/wheels" "$WORK/own"
# Fixed timestamps inside the wheels: identical sources give identical wheels, so Docker's layer
# cache hits when nothing changed.
SOURCE_DATE_EPOCH=315532800 "${PIP[@]}" wheel --quiet --no-deps --wheel-dir "$WORK/own" "${PROJECTS[@]}"
OWN=("$WORK"/own/*.whl)
cp "${OWN[@]}" "$CONTEXT/wheels/"

# Dependencies as wheels for the base's interpreter, whatever this host's Python is.
PLATFORMS=()
for ((minor = ${GLIBC#2.}; minor >= 5; minor--)); do PLATFORMS+=(--platform "manylinux_2_${minor}_$ARCH"); done
PLATFORMS+=(--platform "manylinux2014_$ARCH")
# The core with its `dask` extra: the node is a Dask worker out of the box (docs/CLUSTER.md).
WANT=()
for w in "${OWN[@]}"; do
    if [[ $(basename "$w") == vmafx-[0-9]* ]]; then WANT+=("$w[dask]"); else WANT+=("$w"); fi
done
"${PIP[@]}" download --quiet --dest "$CONTEXT/wheels" --only-binary=:all: \
    --python-version "$PYVER" --implementation cp --abi "cp${PYVER/./}" "${PLATFORMS[@]}" \
    "${WANT[@]}"

# What the Dockerfile installs: this repository's packages, pinned to the wheels just built.
for w in "${OWN[@]}"; do
    f=$(basename "$w")
    IFS=- read -r name version _ <<<"$f"
    if [[ $name == vmafx ]]; then echo "vmafx[dask]==$version"; else echo "$name==$version"; fi
done >"$CONTEXT/wheels/requirements.txt"
WHEELS=("$CONTEXT"/wheels/*.whl)
log "wheels ($(du -sh "$CONTEXT/wheels" | cut -f1)): ${WHEELS[*]##*/}"

# ---- 3. image ---------------------------------------------------------------------------------
# Without the buildx plugin, the Docker CLI falls back to the classic builder; say so explicitly.
if [[ -z ${DOCKER_BUILDKIT:-} ]] && ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi
OLD=$(docker image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)
docker build --network host -f "$HERE/Dockerfile.node" --build-arg "BASE=$BASE" -t "$TAG" "$CONTEXT"
# Do not pile up old builds: the image this tag named before, if nothing else names it, and all
# but the newest untagged build stage (the newest is the layer cache of the next build). Images in
# use by a container (or by a concurrent build) are refused by `docker rmi` and stay.
NEW=$(docker image inspect --format '{{.Id}}' "$TAG")
STALE=()
if [[ -n $OLD && $OLD != "$NEW" && $(docker image inspect --format '{{len .RepoTags}}' "$OLD" 2>/dev/null) == 0 ]]; then
    STALE+=("$OLD")
fi
mapfile -t STAGES < <(docker images --quiet --no-trunc --filter dangling=true --filter label=org.vmafx.stage=build)
STALE+=("${STAGES[@]:1}")
if [[ ${#STALE[@]} -gt 0 ]]; then
    docker rmi "${STALE[@]}" >/dev/null 2>&1 || true
fi

# ---- 4. size ----------------------------------------------------------------------------------
SIZE=$(docker image inspect --format '{{.Size}}' "$TAG")
log "built $TAG from $BASE in $((SECONDS - START)) s: $(awk -v s="$SIZE" 'BEGIN { printf "%.0f MB", s / 1e6 }')"
