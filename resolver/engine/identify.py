"""Who is asking: each query's view (device → profile → the profile's policy and cache tag).

Identity is decided per query. A client's own address is memoised on its access state (``st.view``),
which only ever holds the sender's own identity. A trusted forwarder (``clients.trusted_forwarders``:
a router's dnsmasq with ``--add-mac``) may name another device in the query's EDNS0 MAC option: then
that MAC's device is the one asking, memoised per (forwarder, MAC), never on the forwarder's address.
"""
from __future__ import annotations

from typing import Iterable, Optional

from resolver.policy.access import ClientState
from resolver.policy.clients import AddressMatcher, edns_client_mac
from resolver.policy.views import PolicySet, View, ViewRegistry

# Clients noted for the "seen" list between two flushes: a flood of spoofed sources must not grow it
# (or the next flush's writes) without bound.
SEEN_MAX = 4096
MAC_VIEWS_MAX = 65536
_MAC_OPTION_TAIL = b"\xfd\xe9\x00\x06"   # EDNS0 option 65001, 6 bytes: dnsmasq --add-mac, appended last
_MAC_OPTION_CODES = (b"\xfd\xe9", b"\xfe\x31")   # 65001 and 65073 (--add-mac=base64/text): no MAC without one


class Identities:
    """The current policy snapshot and who is who under it."""

    def __init__(self, policies: Optional[PolicySet] = None, mac_forwarders: Optional[AddressMatcher] = None):
        self.registry = ViewRegistry()
        self.open_view = self.registry.get("-")   # no policy loaded: everything allowed
        self.policies = policies
        self.mac_forwarders = mac_forwarders       # whose EDNS0 MAC option is believed (None: nobody's)
        self._mac_views: dict[tuple[str, bytes], tuple[View, str]] = {}
        self.seen: dict[str, str] = {}             # address (or MAC behind a forwarder) -> MAC, since last flush

    def identify(self, st: ClientState, client: str, data: bytes) -> tuple[View, str]:
        """(view, who) for a query from ``client``: ``who`` is what the query log calls the client, its
        address, or the MAC a trusted forwarder named. Decided per query: a MAC in a trusted forwarder's
        query names the device; without one, the sender is itself (memoised on the address's state, which
        is only ever the sender's own identity, never a MAC's)."""
        ps = self.policies
        if ps is None:
            st.view = self.open_view
            return self.open_view, client
        if st.via is None:
            st.via = self.mac_forwarders is not None and client.split("%", 1)[0] in self.mac_forwarders
        if st.via:
            found = self._view_by_mac(ps, client, data)
            if found is not None:
                return found
            if st.view is not None:
                return st.view, client
        view, _device = ps.view_for(client)
        st.view = view
        if len(self.seen) < SEEN_MAX:
            self.seen.setdefault(client, "")
        return view, client

    def view_of(self, st: ClientState, client: str, data: bytes) -> tuple[View, str]:
        """:meth:`identify`, using the memo when the sender cannot name another device."""
        view = st.view
        return (view, client) if view is not None and not st.via else self.identify(st, client, data)

    def _view_by_mac(self, ps: PolicySet, client: str, data: bytes) -> Optional[tuple[View, str]]:
        """(view, MAC) for the MAC a trusted forwarder put in the query's EDNS0 (None: no MAC in it),
        memoised per (forwarder, MAC): a MAC no device has falls back to the forwarder's own identity."""
        if data[-10:-6] == _MAC_OPTION_TAIL:
            raw = (client, data[-6:])
            found = self._mac_views.get(raw)
            if found is not None:
                return found
        elif _MAC_OPTION_CODES[0] not in data and _MAC_OPTION_CODES[1] not in data:
            return None   # the forwarder asking for itself (EDNS, no MAC): no parse
        else:
            raw = None
        mac = edns_client_mac(data)
        if mac is None:
            return None
        view, _device = ps.view_for(client, mac)
        found = (view, mac)
        if raw is not None:
            if len(self._mac_views) > MAC_VIEWS_MAX:
                self._mac_views.clear()
            self._mac_views[raw] = found
        if len(self.seen) < SEEN_MAX:
            self.seen[mac] = mac
        return found

    def forget(self, states: Iterable[ClientState]) -> None:
        """Every client is identified again on its next query."""
        for st in states:
            st.view = None
        self._mac_views.clear()
