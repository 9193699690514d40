#!/usr/bin/env bash
# Installs every Debian 12 package Treaty's build, tests and demo need.
# Idempotent: safe to run again. Must run as root (or with sudo available).
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates curl
  libssl-dev openssl
  thrift-compiler libthrift-dev libevent-dev python3-thrift python3
  libpqxx-dev libpq-dev
  libboost-dev libboost-system-dev
  libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev googletest
  libsqlite3-dev sqlite3
  nlohmann-json3-dev libcli11-dev
  postgresql-15 postgresql-client-15
  patroni etcd-server etcd-client
  libsystemd-dev dpkg-dev file
  procps psmisc
  clang clang-format
  chromium
)
# Node.js + npm drive the dashboard's browser test (playwright-core, which
# needs Node >= 18: Debian's nodejs 18 is enough). A machine that already has
# node and npm (e.g. from another repository) keeps them: Debian's npm package
# conflicts with some of those builds.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${packages[@]}"
