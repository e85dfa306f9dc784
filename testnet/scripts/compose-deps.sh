#!/usr/bin/env bash
# Prepares this machine for the docker compose testnet, idempotently:
#  1. docker.io, a compose tool (docker-compose) and debootstrap from Debian
#     if missing (apt-get; needs root or sudo);
#  2. dockerd started in the background if no daemon answers;
#  3. the base image $SEQNET_BASE_IMAGE (default seqnet-base:bookworm) built
#     locally if missing: `debootstrap --variant=minbase bookworm` + `docker
#     import` (no registry pull needed; only the Debian package mirror).
# Prints the base image name on its last line.
set -euo pipefail

BASE_IMAGE="${SEQNET_BASE_IMAGE:-seqnet-base:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
{ docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; } || need+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  echo "compose-deps: installing ${need[*]}" >&2
  $SUDO apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi

if ! docker info >/dev/null 2>&1; then
  echo "compose-deps: starting dockerd (log: /tmp/seqnet-dockerd.log)" >&2
  $SUDO sh -c 'nohup dockerd >/tmp/seqnet-dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "compose-deps: dockerd did not start; see /tmp/seqnet-dockerd.log" >&2; tail -20 /tmp/seqnet-dockerd.log >&2; exit 1; }
fi

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "compose-deps: building base image $BASE_IMAGE (debootstrap --variant=minbase bookworm)" >&2
  root="$(mktemp -d /tmp/seqnet-rootfs.XXXXXX)"
  trap '$SUDO rm -rf "$root"' EXIT
  $SUDO debootstrap --variant=minbase bookworm "$root" "$MIRROR" >&2
  $SUDO tar -C "$root" -c . | docker import - "$BASE_IMAGE" >&2
fi
echo "$BASE_IMAGE"
