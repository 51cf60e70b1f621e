#!/usr/bin/env bash
# Builds the container images with Podman from binaries already built on this Debian 12
# host (nothing is compiled in a container):
#   localhost/mailpoold:TAG            deploy/mailpoold/Dockerfile (bin/ from $BUILD_DIR)
#   localhost/mailpool-mailserver:TAG  deploy/mailserver/Dockerfile (Dovecot + Postfix)
#   localhost/mailpool-gateway:TAG     deploy/nginx/Dockerfile (nginx gRPC gateway)
# TAG is the project version and the commit (e.g. 0.1.0-caac842); both are also tagged :dev.
# No registry is needed: the base image debian:bookworm(-slim) is made with debootstrap from
# Debian's archive once and cached in $MAILPOOL_IMAGE_CACHE (default /var/cache/mailpool) as
# debian-bookworm-minbase.tar; later runs import the tarball (or find the image) instead.
# Usage: scripts/build-images.sh          prints "images: ..." and "times: ..." lines
# Env: BUILD_DIR (default build/), MAILPOOL_DEBIAN_MIRROR, MAILPOOL_IMAGE_CACHE.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
cache=${MAILPOOL_IMAGE_CACHE:-/var/cache/mailpool}
release=bookworm
mirror=${MAILPOOL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
log() { echo "images: $*" >&2; }
die() { log "$*"; exit 1; }

command -v podman >/dev/null || die "podman is not installed (scripts/install-deps.sh --containers)"
for b in daemon/mailpoold client/cli/mailpool; do
  [ -x "$build_dir/$b" ] || die "no $build_dir/$b: build first (scripts/build.sh)"
done
version=$(sed -nE 's/^project\(mailpool VERSION ([0-9.]+).*/\1/p' "$root/CMakeLists.txt")
commit=$(git -C "$root" rev-parse --short=7 HEAD 2>/dev/null || echo local)
tag=${MAILPOOL_IMAGE_TAG:-$version-$commit}

# 1. Base image, cached.
t0=$SECONDS
if ! podman image exists localhost/debian:$release; then
  tarball=$cache/debian-$release-minbase.tar
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || die "debootstrap is not installed"
    mkdir -p "$cache"
    rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
    log "debootstrap $release (once; cached in $tarball)"
    debootstrap --variant=minbase "$release" "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
      { tail -20 "$cache/debootstrap.log" >&2; rm -rf "$rootfs"; die "debootstrap failed"; }
    # Slim like Debian's -slim images: no manuals, docs or translations, now or in the
    # packages the images install later.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log \
      "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
    find "$rootfs"/usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
    printf '%s\n' 'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
      'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/doc/*' \
      'path-include /usr/share/doc/*/copyright' >"$rootfs"/etc/dpkg/dpkg.cfg.d/slim
    tar -C "$rootfs" -c . >"$tarball.tmp" && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  podman import -q "$tarball" localhost/debian:$release >/dev/null
fi
for t in docker.io/library/debian:$release docker.io/library/debian:$release-slim; do
  podman tag localhost/debian:$release "$t"
done
t_base=$((SECONDS - t0))

# 2. Daemon image: a context with only the stripped binaries and the entrypoint.
t0=$SECONDS
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/daemon/bin" "$ctx/mailserver"
strip -o "$ctx/daemon/bin/mailpoold" "$build_dir/daemon/mailpoold"
strip -o "$ctx/daemon/bin/mailpool" "$build_dir/client/cli/mailpool"
cp "$root/deploy/mailpoold/entrypoint.sh" "$ctx/daemon/entrypoint.sh"
podman build -q --format docker --pull=never -f "$root/deploy/mailpoold/Dockerfile" \
  -t localhost/mailpoold:"$tag" -t localhost/mailpoold:dev "$ctx/daemon" >/dev/null
t_daemon=$((SECONDS - t0))

# 3. Mail server image: the test servers' script and templates.
t0=$SECONDS
cp "$root/scripts/testservers.sh" "$root/deploy/mailserver/healthcheck.sh" "$ctx/mailserver/"
cp -r "$root/deploy/testservers" "$ctx/mailserver/testservers"
podman build -q --format docker --pull=never -f "$root/deploy/mailserver/Dockerfile" \
  -t localhost/mailpool-mailserver:"$tag" -t localhost/mailpool-mailserver:dev "$ctx/mailserver" >/dev/null
t_mail=$((SECONDS - t0))

# 4. Gateway image (Debian's nginx, non-root; deploy/nginx).
t0=$SECONDS
mkdir -p "$ctx/gateway"
cp "$root/deploy/nginx/mailpool-gateway.conf" "$ctx/gateway/"
podman build -q --format docker --pull=never -f "$root/deploy/nginx/Dockerfile" \
  -t localhost/mailpool-gateway:"$tag" -t localhost/mailpool-gateway:dev "$ctx/gateway" >/dev/null
t_gateway=$((SECONDS - t0))

size() { podman image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'; }
echo "images: localhost/mailpoold:$tag $(size localhost/mailpoold:"$tag"), localhost/mailpool-mailserver:$tag $(size localhost/mailpool-mailserver:"$tag"), localhost/mailpool-gateway:$tag $(size localhost/mailpool-gateway:"$tag")"
echo "times: base image ${t_base}s, daemon image ${t_daemon}s, mail server image ${t_mail}s, gateway image ${t_gateway}s"
echo "tag: $tag"
