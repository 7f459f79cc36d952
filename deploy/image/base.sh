#!/usr/bin/env bash
# The CPU image's base: python:3.11-slim (what BentoML's Containerfile names) pulled from Docker Hub,
# or, where no container registry answers, an equivalent made here from Debian's own packages:
# debootstrap bookworm (minbase) + its python3.11, imported and tagged with the same name, so that
# `bentoml containerize` finds it locally and pulls nothing.
#
#   deploy/image/base.sh [IMAGE]       IMAGE defaults to docker.io/library/python:3.11-slim
#   VISION_BASE=debian deploy/image/base.sh    skip the pull, always build from Debian packages
#
# Needs: podman; for the fallback, root and debootstrap (apt-get install podman debootstrap).
set -euo pipefail

BASE="${1:-docker.io/library/python:3.11-slim}"
SUITE=bookworm  # Debian 12: python3 is 3.11, as bentofile-cpu.yaml asks

if podman image exists "$BASE"; then
    echo "base: $BASE is already in local storage"
    exit 0
fi
if [ "${VISION_BASE:-}" != debian ]; then
    echo "base: pulling $BASE"
    if timeout 120 podman pull -q "$BASE"; then
        exit 0
    fi
    echo "base: cannot pull $BASE (no registry reachable?): building it from Debian packages instead"
fi

command -v debootstrap >/dev/null || { echo "base: needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "base: debootstrap needs root" >&2; exit 1; }

# The Debian mirror this machine's apt already uses (deb822 or one-line sources), else the CDN.
MIRROR="${DEBIAN_MIRROR:-}"
if [ -z "$MIRROR" ]; then
    MIRROR=$(sed -n 's/^URIs:[[:space:]]*\(\S*\/debian\)\/\?$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
fi
if [ -z "$MIRROR" ]; then
    MIRROR=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

ROOTFS=$(mktemp -d /var/tmp/vision-base.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
start=$(date +%s)
echo "base: debootstrap $SUITE from $MIRROR (about a minute)"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 || { tail -20 "$ROOTFS.log" >&2; exit 1; }
rm -f "$ROOTFS.log"
# BentoML's Containerfile pip-installs uv into the system Python; Debian marks it externally managed.
rm -f "$ROOTFS"/usr/lib/python3.*/EXTERNALLY-MANAGED
ln -sf python3 "$ROOTFS/usr/bin/python"
# Like Debian's -slim images: no documentation, manual pages or translations (copyrights stay).
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
SLIM
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/*
find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/log/*.log
# python:3.11-slim's environment, the parts that matter here. SSL_CERT_FILE (Debian's own bundle)
# makes the build's uv use the system's CAs rather than its compiled-in ones.
tar -C "$ROOTFS" --numeric-owner -c . | podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' \
    --message "debootstrap $SUITE minbase + python3 (stand-in for python:3.11-slim)" \
    - "$BASE" >/dev/null
podman tag "$BASE" localhost/debian-python:3.11
echo "base: $BASE built from Debian $SUITE packages in $(($(date +%s) - start)) s" \
    "($(podman image inspect --format '{{.Size}}' "$BASE" | awk '{printf "%.0f MB", $1 / 1e6}'))"
