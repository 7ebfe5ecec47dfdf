#!/usr/bin/env bash
# Build the local Docker image the docker sandbox backend uses, with no image registry:
# debootstrap a minimal Debian with python3, then `docker import` the tree.
#
#   scripts/build-sandbox-image.sh [TAG]      (default rewardgym-sandbox:latest; needs root)
#
# Re-running is fast: the image is skipped when the tag exists, and the root filesystem
# tarball is cached in $REWARDGYM_CACHE (default /var/cache/rewardgym).
set -euo pipefail
TAG="${1:-rewardgym-sandbox:latest}"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
CACHE="${REWARDGYM_CACHE:-/var/cache/rewardgym}"
TARBALL="$CACHE/sandbox-rootfs-$SUITE.tar"

if docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "build-sandbox-image: $TAG already present"
  exit 0
fi
mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
  command -v debootstrap >/dev/null || { echo "build-sandbox-image: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
  ROOTFS="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
  trap 'rm -rf "$ROOTFS"' EXIT
  echo "build-sandbox-image: debootstrap $SUITE into $ROOTFS (a few minutes the first time)"
  debootstrap --variant=minbase --include=python3 "$SUITE" "$ROOTFS" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  # Nothing the sandbox needs: package caches, docs, locales.
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
         "$ROOTFS"/usr/share/doc "$ROOTFS"/usr/share/man "$ROOTFS"/usr/share/locale
  mkdir -p "$ROOTFS/work"
  chmod 1777 "$ROOTFS/work"
  tar -C "$ROOTFS" --numeric-owner -cf "$TARBALL.partial" .
  mv "$TARBALL.partial" "$TARBALL"
fi
docker import --change 'CMD ["python3"]' --change 'WORKDIR /work' "$TARBALL" "$TAG" >/dev/null
docker run --rm --network none "$TAG" python3 -c "import sys; print('build-sandbox-image: $TAG has Python', sys.version.split()[0])"
