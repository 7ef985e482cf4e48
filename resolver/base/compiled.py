"""The one switch for Hearth's optional compiled parts (``resolver/engine/_fastpath.c``,
``blocklists/_indexscan.c``): each is used when pip built it and HEARTH_NO_ACCEL is unset or "0"; otherwise
the pure-Python code runs the same paths."""
from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Optional


def load_compiled(name: str) -> Optional[ModuleType]:
    """The compiled module ``name`` (dotted), or None: not built here, or switched off by HEARTH_NO_ACCEL."""
    if os.environ.get("HEARTH_NO_ACCEL", "") not in ("", "0"):
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
