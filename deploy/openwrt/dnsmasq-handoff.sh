#!/bin/sh
# OpenWrt: keep the router's dnsmasq for DHCP and port 53, and make it forward every query to
# Hearth on 127.0.0.1:5353 with the client's MAC address (EDNS0 option 65001), so Hearth knows
# which device asks even though every query now comes from 127.0.0.1.
#
#   sh dnsmasq-handoff.sh            # apply
#   sh dnsmasq-handoff.sh --undo     # back to dnsmasq's own upstreams
#
# These are the commands docs/openwrt.md lists; run them by hand if you prefer.
set -eu
PORT=${HEARTH_PORT:-5353}
CONF=${DNSMASQ_CONF:-/etc/dnsmasq.conf}        # read by OpenWrt's dnsmasq besides /etc/config/dhcp
INIT=${DNSMASQ_INIT:-/etc/init.d/dnsmasq}

if [ "${1:-}" = "--undo" ]; then
	uci -q del_list dhcp.@dnsmasq[0].server="127.0.0.1#$PORT" || true
	uci -q delete dhcp.@dnsmasq[0].noresolv || true
	uci -q delete dhcp.@dnsmasq[0].cachesize || true
	uci -q delete dhcp.@dnsmasq[0].addmac || true
	uci commit dhcp
	[ -f "$CONF" ] && sed -i '/# hearth-handoff$/d' "$CONF"
	"$INIT" restart
	echo "dnsmasq resolves on its own again"
	exit 0
fi

# forward everything to Hearth, nothing to the ISP's resolvers
uci -q del_list dhcp.@dnsmasq[0].server="127.0.0.1#$PORT" || true
uci add_list dhcp.@dnsmasq[0].server="127.0.0.1#$PORT"
uci set dhcp.@dnsmasq[0].noresolv='1'
# each query carries the asking device's MAC address to Hearth
uci set dhcp.@dnsmasq[0].addmac='1'
# Hearth caches per device; no second cache in front of it (unblocking takes effect at once)
uci set dhcp.@dnsmasq[0].cachesize='0'
uci commit dhcp
# a device must not name another device's MAC itself: drop MAC options clients send (no UCI option)
touch "$CONF"
sed -i '/# hearth-handoff$/d' "$CONF"
echo 'strip-mac # hearth-handoff' >> "$CONF"
"$INIT" restart
echo "dnsmasq now forwards to Hearth on 127.0.0.1#$PORT with each client's MAC address"
