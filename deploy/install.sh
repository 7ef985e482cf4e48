#!/bin/sh
# Install or upgrade Hearth on Debian / Raspberry Pi OS as a systemd service.
#
#   sudo deploy/install.sh                 # from a checkout: installs that source
#   sudo deploy/install.sh --package hearth-dns==0.2.0
#
# Idempotent: running it again upgrades Hearth in its venv, refreshes the unit and the example
# config, keeps /etc/hearth/hearth.yaml and the data, and restarts the service.
# Every path can be moved (for packaging and tests): see --help.
set -eu

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
SOURCE=$(dirname "$SCRIPT_DIR")
PACKAGE=""
ROOT="${DESTDIR:-}"
PREFIX=/opt/hearth
CONFIG_DIR=/etc/hearth
DATA_DIR=/var/lib/hearth
UNIT_DIR=/etc/systemd/system
BIN_DIR=/usr/local/bin
HEARTH_USER=hearth
PYTHON=${PYTHON:-python3}
DNS_LISTEN=""
WEB_LISTEN="0.0.0.0:80"
TIMEZONE=""
DO_SYSTEMCTL=1
DO_USERADD=1
DO_PIP=1
SYSTEM_PACKAGES=0
START=1
CHECK_PORTS=""
FIX_RESOLVED=0

usage() {
  cat <<USAGE
Usage: sudo $0 [options]

  --package SPEC           install SPEC from PyPI (e.g. hearth-dns==0.2.0) instead of this checkout
  --source DIR             install the Hearth source in DIR (default: $SOURCE)
  --root DIR               lay every file down under DIR (like DESTDIR; implies --no-systemctl --no-useradd)
  --prefix DIR             the venv (default $PREFIX)
  --config-dir DIR         default $CONFIG_DIR (hearth.yaml is created once, never overwritten)
  --data-dir DIR           default $DATA_DIR
  --unit-dir DIR           default $UNIT_DIR
  --bin-dir DIR            where the \`hearth\` command is linked (default $BIN_DIR)
  --user NAME              system user the service runs as (default $HEARTH_USER)
  --python PATH            the Python (3.9 or later) for the venv (default $PYTHON)
  --dns-listen LIST        first install: dns.listen, e.g. '["127.0.0.1:5353"]' (default every interface, :53)
  --web-listen ADDR        first install: web.listen (default $WEB_LISTEN)
  --timezone ZONE          first install: timezone (default: the system's)
  --system-packages        use the dependencies already installed for --python (Debian python3-* packages):
                           no downloads, Hearth alone is installed into the venv
  --disable-resolved-stub  if systemd-resolved's stub listener holds port 53, turn the stub off
  --no-systemctl           do not run systemctl (no enable, no start)
  --no-useradd             do not create the user or change owners
  --no-pip                 do not create or update the venv (files and unit only)
  --no-start               enable the service but do not start it
  --check-ports            check the DNS port even with --root/--no-systemctl
USAGE
}

while [ $# -gt 0 ]; do
  case "$1" in
    --package) PACKAGE=$2; shift ;;
    --source) SOURCE=$2; shift ;;
    --root) ROOT=$2; shift ;;
    --prefix) PREFIX=$2; shift ;;
    --config-dir) CONFIG_DIR=$2; shift ;;
    --data-dir) DATA_DIR=$2; shift ;;
    --unit-dir) UNIT_DIR=$2; shift ;;
    --bin-dir) BIN_DIR=$2; shift ;;
    --user) HEARTH_USER=$2; shift ;;
    --python) PYTHON=$2; shift ;;
    --dns-listen) DNS_LISTEN=$2; shift ;;
    --web-listen) WEB_LISTEN=$2; shift ;;
    --timezone) TIMEZONE=$2; shift ;;
    --system-packages) SYSTEM_PACKAGES=1 ;;
    --disable-resolved-stub) FIX_RESOLVED=1 ;;
    --no-systemctl) DO_SYSTEMCTL=0 ;;
    --no-useradd) DO_USERADD=0 ;;
    --no-pip) DO_PIP=0 ;;
    --no-start) START=0 ;;
    --check-ports) CHECK_PORTS=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '%s\n' "hearth install: $*"; }
die() { printf '%s\n' "hearth install: $*" >&2; exit 1; }

if [ -n "$ROOT" ]; then
  ROOT=$(mkdir -p "$ROOT" && cd "$ROOT" && pwd)
  DO_SYSTEMCTL=0
  DO_USERADD=0
fi
[ -n "$CHECK_PORTS" ] || CHECK_PORTS=$DO_SYSTEMCTL
if [ "$(id -u)" -ne 0 ] && { [ "$DO_USERADD" = 1 ] || [ "$DO_SYSTEMCTL" = 1 ]; }; then
  die "run as root (sudo $0), or use --root DIR / --no-useradd --no-systemctl"
fi
[ "$DO_SYSTEMCTL" = 0 ] || command -v systemctl >/dev/null 2>&1 || die "systemctl not found: this installer is for systemd systems (OpenWrt: see docs/openwrt.md; Docker: docs/deploy.md)"

VENV="$ROOT$PREFIX"
CONFIG="$CONFIG_DIR/hearth.yaml"
HEARTH="$VENV/bin/hearth"

# --- Python ------------------------------------------------------------------------------------
if [ "$DO_PIP" = 1 ]; then
  command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: sudo apt-get install -y python3 python3-venv"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "Hearth needs Python 3.9 or later ($PYTHON is $("$PYTHON" -V 2>&1))"
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "the venv module is missing: sudo apt-get install -y python3-venv"
fi

# --- user ----------------------------------------------------------------------------------------
if [ "$DO_USERADD" = 1 ] && ! id -u "$HEARTH_USER" >/dev/null 2>&1; then
  say "creating system user $HEARTH_USER"
  NOLOGIN=$(command -v nologin || echo /usr/sbin/nologin)
  useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home --shell "$NOLOGIN" \
    --comment "Hearth DNS filter" "$HEARTH_USER"
fi
HEARTH_GROUP=$HEARTH_USER
if [ "$DO_USERADD" = 1 ]; then HEARTH_GROUP=$(id -gn "$HEARTH_USER"); fi

# --- folders -------------------------------------------------------------------------------------
install -d -m 0755 "$VENV" "$ROOT$BIN_DIR" "$ROOT$UNIT_DIR"
install -d -m 0750 "$ROOT$CONFIG_DIR" "$ROOT$DATA_DIR"
if [ "$DO_USERADD" = 1 ]; then
  chown "root:$HEARTH_GROUP" "$ROOT$CONFIG_DIR"
  chown "$HEARTH_USER:$HEARTH_GROUP" "$ROOT$DATA_DIR"
fi

# --- the venv ------------------------------------------------------------------------------------
if [ "$DO_PIP" = 1 ]; then
  VENV_OPTS=""
  [ "$SYSTEM_PACKAGES" = 1 ] && VENV_OPTS="--system-site-packages"
  if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    say "the venv's Python is gone (system upgrade?): rebuilding $VENV"
    rm -rf "$VENV/bin" "$VENV/lib" "$VENV/lib64" "$VENV/include" "$VENV/pyvenv.cfg"
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the venv in $PREFIX"
    "$PYTHON" -m venv $VENV_OPTS "$VENV"
  fi
  if [ -n "$PACKAGE" ]; then
    TARGET=$PACKAGE
  else
    [ -f "$SOURCE/setup.py" ] || die "$SOURCE is not a Hearth source tree (no setup.py): give --source or --package"
    # build from a copy, so the checkout stays clean (and may be read-only)
    BUILD=$(mktemp -d)
    trap 'rm -rf "$BUILD"' EXIT
    (cd "$SOURCE" && tar -cf - --exclude=.git --exclude=.venv --exclude=build --exclude='*.egg-info' \
        --exclude=hearth-data --exclude=__pycache__ --exclude=tests --exclude=bench --exclude=.ci \
        --exclude=.benchmarks --exclude=.pytest_cache --exclude=.ruff_cache .) | (cd "$BUILD" && tar -xf -)
    TARGET=$BUILD
  fi
  PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
  if [ "$SYSTEM_PACKAGES" = 1 ]; then
    say "installing Hearth (dependencies from the system's Python)"
    $PIP install --upgrade --no-deps --no-index --no-build-isolation "$TARGET" \
      || die "pip could not install Hearth from $TARGET"
  else
    say "installing Hearth and its dependencies (uvloop when it builds here)"
    $PIP install --upgrade "$TARGET[fast]" 2>/dev/null || $PIP install --upgrade "$TARGET" \
      || die "pip could not install Hearth: see the messages above (network? sudo apt-get install -y python3-dev)"
  fi
  "$HEARTH" version >/dev/null || die "the installed hearth command does not run"
  if "$VENV/bin/python" -c 'import sys; from resolver.engine import accel; sys.exit(accel.fastpath is None)' 2>/dev/null; then
    say "compiled accelerator: built"
  else
    say "compiled accelerator: not built (no C compiler or Python headers); Hearth runs in pure Python, about 1.8x the CPU per cached answer. To build it: sudo apt-get install -y gcc python3-dev, then run this installer again"
  fi
fi
ln -sf "$PREFIX/bin/hearth" "$ROOT$BIN_DIR/hearth"

# --- configuration -------------------------------------------------------------------------------
if [ -z "$TIMEZONE" ]; then
  if [ -z "$ROOT" ] && command -v timedatectl >/dev/null 2>&1; then
    TIMEZONE=$(timedatectl show -p Timezone --value 2>/dev/null || true)
  fi
  [ -n "$TIMEZONE" ] || TIMEZONE=$(cat /etc/timezone 2>/dev/null || true)
  [ -n "$TIMEZONE" ] && [ "$TIMEZONE" != "Etc/UTC" ] || TIMEZONE=UTC
fi
if [ -z "$DNS_LISTEN" ]; then
  if [ -e /proc/net/if_inet6 ]; then DNS_LISTEN='["0.0.0.0:53", "[::]:53"]'; else DNS_LISTEN='["0.0.0.0:53"]'; fi
fi
render() {  # template -> stdout, with the paths filled in
  sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@CONFIG@|$CONFIG|g" -e "s|@CONFIG_DIR@|$CONFIG_DIR|g" \
      -e "s|@DATA_DIR@|$DATA_DIR|g" -e "s|@USER@|$HEARTH_USER|g" -e "s|@GROUP@|$HEARTH_GROUP|g" \
      -e "s|@TIMEZONE@|$TIMEZONE|g" -e "s|@DNS_LISTEN@|$DNS_LISTEN|g" -e "s|@WEB_LISTEN@|$WEB_LISTEN|g" "$1"
}
if [ -e "$ROOT$CONFIG" ]; then
  say "keeping your configuration $CONFIG"
else
  say "writing $CONFIG (edit it, then: sudo systemctl reload hearth)"
  render "$SCRIPT_DIR/hearth.yaml.in" > "$ROOT$CONFIG.tmp"
  chmod 0640 "$ROOT$CONFIG.tmp"
  [ "$DO_USERADD" = 1 ] && chown "root:$HEARTH_GROUP" "$ROOT$CONFIG.tmp"
  mv "$ROOT$CONFIG.tmp" "$ROOT$CONFIG"
fi
if [ -x "$HEARTH" ]; then
  "$HEARTH" config example > "$ROOT$CONFIG_DIR/hearth.example.yaml.tmp" \
    && chmod 0644 "$ROOT$CONFIG_DIR/hearth.example.yaml.tmp" \
    && mv "$ROOT$CONFIG_DIR/hearth.example.yaml.tmp" "$ROOT$CONFIG_DIR/hearth.example.yaml"
  # the file alone: the ports are checked below, where a taken one does not stop the install
  CHECK=$("$HEARTH" check-config --file-only "$ROOT$CONFIG" 2>&1) || {
    printf '%s\n' "$CHECK" >&2
    die "$CONFIG has errors (above): fix them, then run this installer again"
  }
fi

# --- systemd unit --------------------------------------------------------------------------------
render "$SCRIPT_DIR/systemd/hearth.service" > "$ROOT$UNIT_DIR/hearth.service.tmp"
chmod 0644 "$ROOT$UNIT_DIR/hearth.service.tmp"
mv "$ROOT$UNIT_DIR/hearth.service.tmp" "$ROOT$UNIT_DIR/hearth.service"
say "unit $UNIT_DIR/hearth.service written"

# --- port 53 ---------------------------------------------------------------------------------------
resolved_stub_holds_53() {
  command -v ss >/dev/null 2>&1 && ss -Hlnup 'sport = :53' 2>/dev/null | grep -q 'systemd-resolve'
}
if [ "$FIX_RESOLVED" = 1 ] && resolved_stub_holds_53; then
  say "turning off systemd-resolved's stub listener on 127.0.0.53:53 (the host keeps resolving through it)"
  install -d -m 0755 "$ROOT/etc/systemd/resolved.conf.d"
  printf '# Written by Hearth'"'"'s installer: Hearth answers on port 53.\n[Resolve]\nDNSStubListener=no\n' \
    > "$ROOT/etc/systemd/resolved.conf.d/hearth.conf"
  if [ -z "$ROOT" ]; then
    # /etc/resolv.conf pointing at the stub (127.0.0.53) would stop working: use resolved's direct file
    if readlink /etc/resolv.conf 2>/dev/null | grep -q stub-resolv.conf; then
      ln -sf /run/systemd/resolve/resolv.conf /etc/resolv.conf
    fi
    systemctl restart systemd-resolved || true
  fi
fi
PORTS_OK=1
if [ "$CHECK_PORTS" = 1 ] && [ -x "$HEARTH" ]; then
  if ! REPORT=$("$HEARTH" doctor --config "$ROOT$CONFIG" --only ports 2>&1); then
    PORTS_OK=0
    printf '%s\n' "$REPORT" | sed 's/^/    /' >&2
    say "the DNS port is taken by another program (above): Hearth is installed and enabled but not started." >&2
    say "fix that, then: sudo systemctl restart hearth   (check with: sudo hearth doctor)" >&2
  fi
fi

# --- start -----------------------------------------------------------------------------------------
if [ "$DO_SYSTEMCTL" = 1 ]; then
  systemctl daemon-reload
  systemctl enable hearth.service >/dev/null 2>&1
  if [ "$START" = 1 ] && [ "$PORTS_OK" = 1 ]; then
    say "starting hearth.service"
    if systemctl restart hearth.service; then
      say "running: $(systemctl is-active hearth.service); logs: journalctl -u hearth -f; health: sudo hearth doctor"
    else
      systemctl --no-pager status hearth.service >&2 || true
      die "hearth.service did not start: journalctl -u hearth -n 50"
    fi
  fi
fi
# --- the one-time setup code ---------------------------------------------------------------------------
# Until the first admin exists the web UI's setup wizard asks for this code, so that only whoever
# installed Hearth (and can read this, or the service log) can set it up. Nothing is printed once set up.
if [ -x "$HEARTH" ]; then
  if CODE=$("$HEARTH" admin setup-code --config "$ROOT$CONFIG" --data-dir "$ROOT$DATA_DIR" 2>/dev/null) \
      && [ -n "$CODE" ]; then
    say "first step: open the web UI in a browser and enter the setup code $CODE"
    say "(to see it again: sudo hearth admin setup-code)"
  fi
fi
[ "$PORTS_OK" = 1 ] || exit 3
say "done"
