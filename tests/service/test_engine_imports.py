"""The DNS engine's process imports only what answering queries needs.

Each library the engine imports stays in its memory for the life of the process: ``requests`` and the feed's
signature code (``cryptography``) cost about 15 MB of RSS together, which is most of what a 256 MB router can
spare. They are loaded only where they are used: the list updater's own process, the web UI, and the provider
link when a provider is configured.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("requests", "cryptography", "nacl", "flask", "sqlalchemy", "psycopg", "apscheduler")


def test_engine_entry_point_leaves_heavy_libraries_out():
    code = ("import json, sys\n"
            "import resolver.service.process, resolver.service.config\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
