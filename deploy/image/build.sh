#!/usr/bin/env bash
# `make image`: the CPU image of the bento, built with `bentoml containerize --backend buildah`.
#
#   deploy/image/build.sh [IMAGE]           the CPU image (bentofile-cpu.yaml), default localhost/vision:cpu
#   VARIANT=gpu deploy/image/build.sh       the CUDA image (bentofile.yaml), localhost/vision:gpu; its base
#                                           (nvidia/cuda) must come from Docker Hub
#
# 1. the base image (deploy/image/base.sh: pulled, or made from Debian packages where no registry answers);
# 2. `bentoml build -f $BENTOFILE` (offline: lock_packages is false);
# 3. `bentoml containerize` with buildah (its pip/uv reach PyPI through the host network), squashed;
# 4. a HEALTHCHECK on /readyz for docker and podman (Kubernetes uses its own probes: deploy/k8s), and
#    BENTOML_HOME on /tmp, so that the image runs with a read-only root filesystem.
# Needs: buildah, podman (and debootstrap for the fallback base), uv on the PATH (.venv/bin).
set -euo pipefail
cd "$(dirname "$0")/../.."

VARIANT="${VARIANT:-cpu}"
case "$VARIANT" in
    cpu) BENTOFILE=bentofile-cpu.yaml ;;
    gpu) BENTOFILE=bentofile.yaml ;;
    *) echo "image: VARIANT=$VARIANT: expected cpu or gpu" >&2; exit 2 ;;
esac
IMAGE="${1:-localhost/vision:$VARIANT}"
BIN="$PWD/.venv/bin"
export PATH="$BIN:$PATH"  # bentoml, and uv for `bentoml build`
# chroot isolation: builds where crun/runc cannot make cgroups (nested containers, hybrid cgroups).
export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"
export BENTOML_DO_NOT_TRACK=true

for tool in bentoml buildah podman; do
    command -v "$tool" >/dev/null || { echo "image: needs $tool (apt-get install buildah podman)" >&2; exit 1; }
done

start=$(date +%s)
previous=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)  # removed at the end if untagged
if [ "$VARIANT" = cpu ]; then
    deploy/image/base.sh docker.io/library/python:3.11-slim
fi
base_done=$(date +%s)

tag=$(bentoml build -f "$BENTOFILE" --output tag . | sed -n 's/^__tag__://p')
[ -n "$tag" ] || { echo "image: bentoml build gave no tag" >&2; exit 1; }
echo "image: built bento $tag from $BENTOFILE"

options=(--opt squash)
# Where the host trusts extra CAs (a TLS-inspecting proxy), the build's pip and uv must too: the
# host's bundle is mounted over the image's during the build only, so the image never holds it.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    options+=(--opt "volume=/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro")
fi
bentoml containerize "$tag" --backend buildah -t "$IMAGE" "${options[@]}"
built=$(date +%s)

# HEALTHCHECK is a Docker-format field: docker and podman then report the container's health.
old=$(podman image inspect --format '{{.Id}}' "$IMAGE")
container=$(buildah from --pull-never "$IMAGE")
trap 'buildah rm "$container" >/dev/null 2>&1 || true' EXIT
# BENTOML_HOME: BentoML makes its folders and metrics files there when it starts. On /tmp, the only
# path that must be writable, the image runs with a read-only root filesystem (`podman run
# --read-only` keeps /tmp writable; Kubernetes mounts an emptyDir there). Set here: BentoML's
# Containerfile sets its own (/home/bentoml/), which a bentofile `envs` entry cannot change (the
# template's ENV wins over the ARG that entry becomes, or comes after it in the CUDA template).
buildah config \
    --env BENTOML_HOME=/tmp/bentoml \
    --healthcheck "CMD python -c 'import os, urllib.request as u; port = os.environ.get(\"PORT\") or os.environ.get(\"BENTOML_PORT\") or 3000; u.urlopen(f\"http://127.0.0.1:{port}/readyz\", timeout=4)'" \
    --healthcheck-interval 15s --healthcheck-timeout 5s --healthcheck-start-period 60s --healthcheck-retries 3 \
    --label "org.opencontainers.image.title=vision" --label "visionserve.bento=$tag" \
    "$container"
buildah commit --quiet --format docker --rm "$container" "$IMAGE" >/dev/null
trap - EXIT
# The untagged leftovers: the image before the HEALTHCHECK, and the one $IMAGE named before this
# build. `podman rmi` by ID refuses an image that is still tagged or used by a container.
for leftover in "$old" "$previous"; do
    if [ -n "$leftover" ] && [ "$leftover" != "$(podman image inspect --format '{{.Id}}' "$IMAGE")" ] &&
        [ -z "$(podman image inspect --format '{{join .RepoTags ","}}' "$leftover" 2>/dev/null)" ]; then
        podman rmi "$leftover" >/dev/null 2>&1 || true
    fi
done

size=$(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')
echo "image: $IMAGE ($size) from $tag in $(($(date +%s) - start)) s" \
    "(base $((base_done - start)) s, bento + containerize $((built - base_done)) s)"
