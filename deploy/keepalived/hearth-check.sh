#!/bin/sh
# keepalived's health check for a Hearth gateway: exit 0 when the local Hearth answers DNS, 1 when not.
# A reply of any kind counts (NXDOMAIN, SERVFAIL when the upstreams are away): the engine is alive and the
# clients are better served here than by a gateway whose engine is gone.
#   HEARTH_CHECK_ADDRESS (default 127.0.0.1), HEARTH_CHECK_PORT (default 53), HEARTH_CHECK_NAME
set -u
addr="${HEARTH_CHECK_ADDRESS:-127.0.0.1}"
port="${HEARTH_CHECK_PORT:-53}"
name="${HEARTH_CHECK_NAME:-hearth-health-check.invalid}"
dig +time=1 +tries=2 +noall -p "$port" "@$addr" "$name" A >/dev/null 2>&1 || exit 1
exit 0
