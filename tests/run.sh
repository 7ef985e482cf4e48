#!/usr/bin/env bash
# Install what the tests need (Debian packages, a venv with Hearth and test tools), then lint and test.
# Usage: bash tests/run.sh [pytest args]   — runs as root or with sudo for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi   # as root (a container, a fresh Pi) no sudo is needed
need=()
command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)
command -v dnsperf >/dev/null 2>&1 || need+=(dnsperf)
command -v dig >/dev/null 2>&1 || need+=(bind9-dnsutils)
command -v kdig >/dev/null 2>&1 || need+=(knot-dnsutils)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
python3 -c "import ensurepip, venv" 2>/dev/null || need+=(python3-venv)
# the optional UDP accelerator (resolver/engine/_fastpath.c) is built by pip when a compiler and Python's
# headers are there; the tests then run both it and the pure-Python path (which alone needs neither)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
python3 -c "import os, sysconfig; assert os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h'))" \
  2>/dev/null || need+=(python3-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; then
    echo "tests/run.sh: sudo is not installed: run this as root, or install: ${need[*]}" >&2
    exit 1
  fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/python -c "from resolver.engine import accel; print('UDP accelerator:', 'built' if accel.fastpath else 'not built (pure Python)')"

.venv/bin/ruff check .
set +e
.venv/bin/python -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi
exit "$code"
