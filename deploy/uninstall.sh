#!/bin/sh
# Remove Hearth installed by deploy/install.sh. Keeps the configuration and the data (the store with
# devices, profiles, query log; the lists) unless --purge is given, so a later install picks them up.
#
#   sudo deploy/uninstall.sh            # remove the program and the service, keep /etc/hearth and /var/lib/hearth
#   sudo deploy/uninstall.sh --purge    # also delete them and the hearth user (make a `hearth backup` first)
set -eu

ROOT="${DESTDIR:-}"
PREFIX=/opt/hearth
CONFIG_DIR=/etc/hearth
DATA_DIR=/var/lib/hearth
UNIT_DIR=/etc/systemd/system
BIN_DIR=/usr/local/bin
HEARTH_USER=hearth
DO_SYSTEMCTL=1
DO_USERDEL=1
PURGE=0

while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=$2; shift ;;
    --prefix) PREFIX=$2; shift ;;
    --config-dir) CONFIG_DIR=$2; shift ;;
    --data-dir) DATA_DIR=$2; shift ;;
    --unit-dir) UNIT_DIR=$2; shift ;;
    --bin-dir) BIN_DIR=$2; shift ;;
    --user) HEARTH_USER=$2; shift ;;
    --no-systemctl) DO_SYSTEMCTL=0 ;;
    --no-userdel) DO_USERDEL=0 ;;
    --purge) PURGE=1 ;;
    -h|--help) sed -n '2,7p' "$0"; echo "options: --root DIR --prefix DIR --config-dir DIR --data-dir DIR --unit-dir DIR --bin-dir DIR --user NAME --no-systemctl --no-userdel --purge"; exit 0 ;;
    *) echo "uninstall.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
say() { printf '%s\n' "hearth uninstall: $*"; }

if [ -n "$ROOT" ]; then
  ROOT=$(cd "$ROOT" && pwd)
  DO_SYSTEMCTL=0
  DO_USERDEL=0
fi
if [ "$(id -u)" -ne 0 ] && { [ "$DO_SYSTEMCTL" = 1 ] || [ "$DO_USERDEL" = 1 ]; }; then
  echo "hearth uninstall: run as root (sudo $0), or use --root DIR" >&2
  exit 1
fi

if [ "$DO_SYSTEMCTL" = 1 ] && command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now hearth.service 2>/dev/null || true
fi
rm -f "$ROOT$UNIT_DIR/hearth.service"
rm -rf "$ROOT$UNIT_DIR/hearth.service.d"
if [ -f "$ROOT/etc/systemd/resolved.conf.d/hearth.conf" ]; then
  rm -f "$ROOT/etc/systemd/resolved.conf.d/hearth.conf"
  say "systemd-resolved's stub listener is back on 127.0.0.53:53"
  [ "$DO_SYSTEMCTL" = 1 ] && systemctl restart systemd-resolved 2>/dev/null || true
fi
[ "$DO_SYSTEMCTL" = 1 ] && systemctl daemon-reload 2>/dev/null || true
if [ "$(readlink "$ROOT$BIN_DIR/hearth" 2>/dev/null || true)" = "$PREFIX/bin/hearth" ]; then
  rm -f "$ROOT$BIN_DIR/hearth"
fi
rm -rf "$ROOT$PREFIX"
say "removed the program ($PREFIX) and the service"

if [ "$PURGE" = 1 ]; then
  rm -rf "$ROOT$CONFIG_DIR" "$ROOT$DATA_DIR"
  say "deleted $CONFIG_DIR and $DATA_DIR"
  if [ "$DO_USERDEL" = 1 ] && id -u "$HEARTH_USER" >/dev/null 2>&1; then
    userdel "$HEARTH_USER" 2>/dev/null || true
    say "deleted the user $HEARTH_USER"
  fi
else
  say "kept $CONFIG_DIR and $DATA_DIR (a new install uses them; delete them with --purge)"
fi
