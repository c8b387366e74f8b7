#!/usr/bin/env bash
# Installs and starts what the integration tests need on a Debian machine, as root:
# the Docker engine (host networking only: no bridge, no iptables), fuse3, and chromium for the
# report's page tests.
# Idempotent: skips what is already installed or running.
set -euo pipefail

need_apt=()
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v fusermount3 >/dev/null 2>&1 || need_apt+=(fuse3)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)  # headless page tests of `vmafx report`
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "services: installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
    echo "services: Docker engine already answers"
    exit 0
fi
if ! pgrep -x dockerd >/dev/null; then
    echo "services: starting dockerd (log: /var/log/vmafx-dockerd.log)"
    nohup dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
        >/var/log/vmafx-dockerd.log 2>&1 &
fi
for _ in $(seq 1 120); do
    if docker info >/dev/null 2>&1; then
        echo "services: Docker engine ready"
        exit 0
    fi
    sleep 0.5
done
echo "services: dockerd did not answer within 60 s; last log lines:" >&2
tail -n 20 /var/log/vmafx-dockerd.log >&2 || true
exit 1
