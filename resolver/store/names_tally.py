"""The query log's names roll-up (ql_names), counted in memory while its hour is open and written in part.

A closed hour of ql_names keeps only its most asked names, per client (``NAMES_KEPT_CLIENT``) and for all
clients (``NAMES_KEPT_ALL``). Upserting every name of every batch cost the writer two B-tree upserts of a text key
a query (8 of its 18.6 µs a row on a slow core, the commit's pages included), mostly for names asked once that
the hour's pruning then deletes. The tally counts each open hour's names here and hands the store the rows to
add (``ql_names.n`` grows by each row's ``n``):

- at once: a name asked twice or more this hour (its count so far, then each batch's increment), and the first
  names of each (client, hour, blocked) group up to what the group keeps; so the current hour shows what is
  asked again, and every name of a quiet device;
- when the hour is over (rows of a later hour, the writer idle past it, shutdown): the hour's most asked names
  not written yet.

So a closed hour ends with the same rows as when every name was written: each count written is exact, and the
hour's top names are all written before the pruning keeps them. An open hour lacks, until its end, the names
asked once past its group's first ones. Bounded: past ``most`` keys every count not written yet is written and
the tally starts over (the store adds increments, so counts stay exact). With several nodes on one store each
node counts its own share: a name asked once on each of three nodes reaches the store only if it is among one
node's top names when the hour ends.
"""
from __future__ import annotations

from heapq import nsmallest
from typing import Iterable, Mapping

Key = tuple[int, int, int, str]        # (client, hour, blocked, qname): a ql_names key; client 0 = all clients
Row = tuple[int, int, int, str, int]   # the key and the count to add
# keys held at most: about 160 bytes each (the key, the two counts, the name's text), so 16 MB at worst; a home
# asks a few thousand names an hour, a school of hundreds of devices may pass it and then writes as it counts
MOST_KEYS = 100_000
_ORDER = lambda item: (-item[1], item[0][3])   # noqa: E731 - the pruning's order: most asked, then by name


class NamesTally:
    """One writer's counts of the names asked in the open hours (the writer's thread only)."""

    def __init__(self, kept_client: int, kept_all: int, most: int = MOST_KEYS):
        self.kept_client = kept_client
        self.kept_all = kept_all
        self.most = most
        self._counts: dict[Key, int] = {}      # this tally's count of each name of an open hour
        self._written: dict[Key, int] = {}     # of which handed to the store so far
        self._shown: dict[tuple[int, int, int], int] = {}   # names handed to the store, per group
        self._hours: set[int] = set()          # the open hours counted

    def __len__(self) -> int:
        return len(self._counts)

    def add(self, names: Mapping[Key, int], hours: Iterable[int]) -> list[Row]:
        """Count a batch's names (``hours``: the hours they fall in); returns the rows to add now."""
        counts, written, shown = self._counts, self._written, self._shown
        kept_client, kept_all = self.kept_client, self.kept_all
        rows: list[Row] = []
        for key, n in names.items():
            count = counts.get(key, 0) + n
            counts[key] = count
            done = written.get(key)
            if done is None:   # first written now if asked again, or among its group's first names
                group = key[:3]
                seen = shown.get(group, 0)
                if count < 2 and seen >= (kept_all if key[0] == 0 else kept_client):
                    continue
                shown[group] = seen + 1
                done = 0
            rows.append(key + (count - done,))
            written[key] = count
        self._hours.update(hours)
        if len(counts) > self.most:
            rows += self._spill()
        return rows

    def open_before(self, hour: float) -> bool:
        """Whether an hour before ``hour`` is still counted (it has names to write when closed)."""
        return any(h < hour for h in self._hours)

    def close(self, before: float) -> list[Row]:
        """Close the hours before ``before`` (``float('inf')``: all): their top names not written yet, as rows;
        the hours are forgotten."""
        closing = {h for h in self._hours if h < before}
        if not closing:
            return []
        counts, written = self._counts, self._written
        groups: dict[tuple[int, int, int], list[tuple[Key, int]]] = {}
        for key, count in counts.items():
            if key[1] in closing:
                groups.setdefault(key[:3], []).append((key, count))
        rows: list[Row] = []
        for group, items in groups.items():
            for key, count in nsmallest(self.kept_all if group[0] == 0 else self.kept_client, items, key=_ORDER):
                done = written.get(key, 0)
                if count > done:
                    rows.append(key + (count - done,))
            for key, _count in items:
                del counts[key]
                written.pop(key, None)
            self._shown.pop(group, None)
        self._hours -= closing
        return rows

    def clear(self) -> None:
        """Forget every count (the store's transaction failed: what it was told is unknown). The counts after
        this are increments again, so what the store holds stays a lower bound, never a double count."""
        self._counts.clear()
        self._written.clear()
        self._shown.clear()
        self._hours.clear()

    def _spill(self) -> list[Row]:
        """Past ``most`` keys: every count not written yet, as rows; the tally starts over."""
        written = self._written
        rows = [key + (count - written.get(key, 0),) for key, count in self._counts.items()
                if count > written.get(key, 0)]
        self.clear()
        return rows
