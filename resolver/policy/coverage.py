"""How many names each category has in the compiled index, and which ticked categories have none.

A category a profile ticks blocks nothing when no list (bundled, subscribed or from the feed) brings
it names: a custom category, a removed list, starter lists turned off. The profile page, the setup
wizard and `hearth doctor` say so next to the tick box, from :func:`category_names`.

The counts come from the files the list update writes beside the index: ``index.json`` (which lists
went into each category) and ``status.json`` (each list's entry count), so reading them costs two
small JSON files, not a pass over the index.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from resolver.policy.profiles import ALL_CATEGORIES

NO_NAMES = "0 names: add a list or a feed"


def lists_wanted(config: Any) -> bool:
    """Whether the configuration has any list source at all (the engine ignores the index otherwise)."""
    return bool(config.blocking.starter_lists or any(c.enabled for c in config.lists) or config.feed.url)


def category_names(config: Any) -> dict[str, int]:
    """Names (list entries) per category in the compiled index; a category that has none is absent.

    Mandatory lists count for their category too (they block whatever the profile ticks). No index
    yet, or no list source configured, gives ``{}``: nothing is blocked by any category.
    """
    if not lists_wanted(config):
        return {}
    base = Path(config.data_dir) / "lists"
    try:
        meta = json.loads((base / "index.json").read_text(encoding="utf-8")).get("categories", {})
    except (OSError, ValueError, AttributeError):
        return {}
    try:
        status = json.loads((base / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        status = {}
    counts: dict[str, int] = {}
    for key, entry in meta.items():
        if not isinstance(entry, dict):
            continue
        category = str(entry.get("category") or key)
        for list_id in entry.get("lists", ()):
            row = status.get(list_id) if isinstance(status, dict) else None
            # a list in the index but missing from status.json: compiled, count unknown, so not "empty"
            entries = int(row.get("entries") or 0) if isinstance(row, dict) else 1
            counts[category] = counts.get(category, 0) + entries
    return {c: n for c, n in counts.items() if n > 0}


def empty_categories(categories: Iterable[str], names: dict[str, int]) -> list[str]:
    """The categories of ``categories`` with no names (``*``, every category, is never one)."""
    return [c for c in categories if c != ALL_CATEGORIES and names.get(c, 0) == 0]
