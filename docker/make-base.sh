#!/usr/bin/env bash
# Build the local base image vmafx-base:bookworm from Debian's packages, without any container
# registry: debootstrap a minimal Debian bookworm into a temporary folder, bring it up to date from
# bookworm-updates and bookworm-security, strip it, and `docker import` it.
#
# The Debian mirrors are the ones this machine's apt already uses (read from /etc/apt/sources.list
# and /etc/apt/sources.list.d/*); override with DEBIAN_MIRROR / DEBIAN_SECURITY_MIRROR (an empty
# DEBIAN_SECURITY_MIRROR skips bookworm-security).
#
# Usage: sudo bash docker/make-base.sh [--force] [--tag IMAGE:TAG]
#   --force   rebuild even when the image exists already (default: keep it, exit 0)
# Needs root (debootstrap, chroot) and a running Docker engine; installs debootstrap if missing.
set -euo pipefail

SUITE=bookworm
TAG=${VMAFX_BASE_TAG:-vmafx-base:bookworm}
FORCE=0
# What the scoring node needs at run time, beyond Debian's minbase (which has bash, coreutils,
# passwd for useradd): python3 3.11 (+ venv to build the virtual environment), CA certificates
# for TLS to object storage, fuse3 (fusermount3) for rclone mount, tini as PID 1.
PACKAGES=python3,python3-venv,ca-certificates,fuse3,tini

while [[ $# -gt 0 ]]; do
    case "$1" in
        --force) FORCE=1 ;;
        --tag) TAG=${2:?--tag needs IMAGE:TAG}; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "make-base.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "make-base.sh: $*" >&2; }
die() { log "$*"; exit 1; }

docker info >/dev/null 2>&1 || die "no Docker engine answers 'docker info'"
if [[ $FORCE -eq 0 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    log "$TAG exists already (--force rebuilds it)"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then die "needs root (debootstrap and chroot)"; fi
# One build at a time on this machine; a second caller waits, then finds the image made.
exec 9>"${TMPDIR:-/tmp}/vmafx-make-base.lock"
flock 9
if [[ $FORCE -eq 0 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    log "$TAG was made meanwhile"
    exit 0
fi

# The mirror URI apt uses for SUITE (deb822 .sources files and one-line .list files; only the
# files apt itself reads, i.e. *.list and *.sources).
apt_mirror_for() {
    local suite=$1 f
    local files=()
    [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] && files+=("$f")
    done
    [[ ${#files[@]} -gt 0 ]] || return 0
    for f in "${files[@]}"; do
        if [[ $f == *.sources ]]; then
            # deb822: blank-line separated stanzas with Types:, URIs:, Suites:, maybe Enabled: no
            awk -v suite="$suite" 'BEGIN { RS = ""; FS = "\n" }
                {
                    types = ""; uris = ""; suites = ""; enabled = "yes"
                    for (i = 1; i <= NF; i++) {
                        line = $i
                        if (line ~ /^[ \t]*#/) continue
                        key = tolower(line); sub(/:.*/, "", key)
                        val = line; sub(/^[^:]*:[ \t]*/, "", val)
                        if (key == "types") types = val
                        else if (key == "uris") uris = val
                        else if (key == "suites") suites = val
                        else if (key == "enabled") enabled = tolower(val)
                    }
                    if (enabled == "no" || (" " types " ") !~ / deb /) next
                    if ((" " suites " ") !~ (" " suite " ")) next
                    split(uris, u, /[ \t]+/); if (u[1] != "") { print u[1]; exit }
                }' "$f"
        else
            # one line: deb [options] URI SUITE COMPONENT...
            awk -v suite="$suite" '$1 == "deb" {
                    i = 2
                    if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == suite) { print $i; exit }
                }' "$f"
        fi
    done | head -n 1
}

MIRROR=${DEBIAN_MIRROR:-$(apt_mirror_for "$SUITE")}
[[ -n $MIRROR ]] || die "no apt source for '$SUITE' found in /etc/apt; set DEBIAN_MIRROR"
if [[ -v DEBIAN_SECURITY_MIRROR ]]; then
    SECURITY=$DEBIAN_SECURITY_MIRROR
else
    SECURITY=$(apt_mirror_for "$SUITE-security")
fi
log "mirror $MIRROR${SECURITY:+, security $SECURITY}"

if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >/dev/null \
        || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y --no-install-recommends debootstrap >/dev/null; }
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmafx-base.XXXXXX")
ROOTFS=$WORK/rootfs
cleanup() {
    local rc=$? m
    # debootstrap or the chroot steps may leave proc/sys/dev mounts behind on failure: unmount
    # everything below the work folder (deepest first) before removing it, never crossing into a
    # mounted file system.
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(awk -v w="$WORK" 'index($2, w "/") == 1 { print $2 }' /proc/mounts | sort -r)
    rm -rf --one-file-system "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "debootstrap --variant=minbase $SUITE (+ $PACKAGES)"
debootstrap --variant=minbase --components=main --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }

# Sources for later `apt-get install` in derived images, and the stable updates + security fixes.
{
    echo "deb $MIRROR $SUITE main"
    echo "deb $MIRROR $SUITE-updates main"
    [[ -n $SECURITY ]] && echo "deb $SECURITY $SUITE-security main"
} >"$ROOTFS/etc/apt/sources.list"

# Keep docs, man pages and locales out of packages installed later (as Debian's own images do).
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/vmafx-excludes" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
cat >"$ROOTFS/etc/apt/apt.conf.d/vmafx-slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
# No service may start inside the chroot while packages are upgraded.
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"

log "upgrading from $SUITE-updates${SECURITY:+ and $SUITE-security}"
mount -t proc proc "$ROOTFS/proc"
chroot "$ROOTFS" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
    sh -c 'apt-get update -qq && apt-get -qq -y -o Dpkg::Options::=--force-confold dist-upgrade && apt-get clean' \
    >"$WORK/upgrade.log" 2>&1 || { tail -n 30 "$WORK/upgrade.log" >&2; die "apt-get dist-upgrade in the chroot failed"; }
umount "$ROOTFS/proc"
rm -f "$ROOTFS/usr/sbin/policy-rc.d"

# Strip what a container never needs. The copyright files stay.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/cache/debconf/*-old \
       "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
       "$ROOTFS"/usr/share/lintian "$ROOTFS"/usr/share/locale/* "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/*
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
# Docker bind-mounts these at run time; do not ship the build host's.
: >"$ROOTFS/etc/resolv.conf"
: >"$ROOTFS/etc/hostname"
rm -f "$ROOTFS/etc/machine-id" && : >"$ROOTFS/etc/machine-id"

PYVER=$(chroot "$ROOTFS" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
log "python $PYVER; importing as $TAG"
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'CMD ["/bin/bash"]' \
    -c "LABEL org.opencontainers.image.title=vmafx-base org.opencontainers.image.description=\"Debian $SUITE minbase with python $PYVER, fuse3, tini (docker/make-base.sh)\"" \
    -m "docker/make-base.sh: debootstrap $SUITE from $MIRROR" \
    - "$TAG" >/dev/null
log "$TAG: $(docker image inspect --format '{{.Size}}' "$TAG" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
