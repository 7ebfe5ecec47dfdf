#!/usr/bin/env bash
# System pieces the sandbox tests need, on a fresh machine, as root, non-interactively:
# bubblewrap, the Docker Engine (started in the background) and the local sandbox image.
# Idempotent: each step is skipped when already done. Bounded: every wait has a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ "${#need[@]}" -gt 0 ]; then
  timeout 600 apt-get update -qq
  timeout 900 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! timeout 10 docker info >/dev/null 2>&1; then
  echo "system-setup: starting dockerd"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 60); do
    timeout 5 docker info >/dev/null 2>&1 && break
    sleep 1
  done
  timeout 10 docker info >/dev/null 2>&1 || { tail -30 /var/log/dockerd.log >&2; echo "system-setup: dockerd did not start" >&2; exit 1; }
fi

timeout 1200 bash scripts/build-sandbox-image.sh rewardgym-sandbox:latest
