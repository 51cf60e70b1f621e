#!/usr/bin/env bash
# Installs everything mailpool needs to build, run and test on Debian 12 (bookworm).
# Usage: scripts/install-deps.sh [--build-only|--runtime-only]
#   (no flag)       build + test dependencies, including the local test mail servers
#   --build-only    compiler toolchain and libraries only (used by the Dockerfile)
# Safe to run repeatedly; it only installs what is missing.
set -euo pipefail

mode=${1:-all}
sudo_cmd=""
if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi

build_pkgs=(build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libgmime-3.0-dev
  libssl-dev libasio-dev libabsl-dev libgtest-dev libgmock-dev grpc-proto ca-certificates
  libsqlite3-dev
  # oauth2/: the refresh_token grant over a kept HTTP client (libcurl, verified TLS) and the
  # token response parsed by a kept JSON library (header-only)
  libcurl4-openssl-dev nlohmann-json3-dev)
test_pkgs=(curl dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd postfix openssl
  python3 python3-grpcio python3-protobuf python3-venv procps
  clang-14 libclang-rt-14-dev mailutils-imap4d python3-aiosmtpd
  podman runc uidmap slirp4netns fuse-overlayfs debootstrap nginx python3-yaml
  # the Go example client (client/go): Debian's Go packages, no module proxy
  golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-google-genproto-dev
  golang-github-golang-protobuf-1-5-dev protoc-gen-go protoc-gen-go-grpc
  # the CLI's completion scripts are loaded by these shells in tests/cli/cli_test.sh
  zsh fish)
# Node.js (for buf, the proto linter) may already come from another source; only install
# Debian's when there is none, or the two conflict.
if ! command -v npm >/dev/null 2>&1; then test_pkgs+=(nodejs npm); fi

pkgs=("${build_pkgs[@]}")
if [ "$mode" = all ]; then pkgs+=("${test_pkgs[@]}"); fi

# Podman on these machines: runc (crun refuses hybrid cgroups), cgroupfs, no journald, and
# default ulimits it may set (at most this shell's hard limit). Only when none is configured.
containers_conf() {
  [ "$mode" = all ] && [ ! -e /etc/containers/containers.conf ] || return 0
  local nofile
  nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=65536
  ((nofile > 65536)) && nofile=65536
  $sudo_cmd mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=1000:1000"]\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' \
    "$nofile" "$nofile" | $sudo_cmd tee /etc/containers/containers.conf >/dev/null
}
trap containers_conf EXIT

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi

# Never let package installs start system mail daemons on the real ports.
if [ ! -x /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee /usr/sbin/policy-rc.d >/dev/null
  $sudo_cmd chmod +x /usr/sbin/policy-rc.d
fi
echo "postfix postfix/main_mailer_type select No configuration" | $sudo_cmd debconf-set-selections
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
