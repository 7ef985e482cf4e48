#!/bin/sh
# Try Hearth from a checkout on its embedded defaults (DNS on 127.0.0.1:5300, web UI on 127.0.0.1:8080):
# installs python3-venv when missing (as root, or with sudo as a user), makes .venv, installs Hearth, runs it.
#   sh deploy/quickstart.sh [hearth run options]
set -eu
cd "$(dirname "$0")/.."
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""
  elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"
  else echo "quickstart: python3-venv is missing; install it as root: apt-get install -y python3-venv" >&2; exit 1
  fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -e '.[fast]'
exec .venv/bin/hearth run "$@"
