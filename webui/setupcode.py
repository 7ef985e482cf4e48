"""The one-time setup code: before the first admin exists, ``/setup`` asks for it, so that whoever
reaches the wizard first on the LAN (a child's tablet) cannot take the box.

The code lives in ``data_dir/setup-code`` (mode 0600), made at the first start of the web UI, which
writes it to its log; ``deploy/install.sh`` prints it at the end, and ``hearth admin setup-code``
prints it on the machine. It is deleted when setup is done (wizard or ``hearth admin create``).
"""
from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Optional

FILE_NAME = "setup-code"
# no 0/O, 1/I/L: read off a screen and typed on a phone
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
GROUPS, GROUP_LEN = 3, 4


def code_path(data_dir: str) -> Path:
    return Path(data_dir) / FILE_NAME


def normalise(text: str) -> str:
    """What the user typed, compared without case, spaces and dashes."""
    return "".join(ch for ch in str(text or "").upper() if ch.isalnum())


def read_code(data_dir: str) -> Optional[str]:
    try:
        text = code_path(data_dir).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def ensure_code(data_dir: str) -> str:
    """The setup code, made (random, about 59 bits) when there is none. When root makes it (the
    installer), the file is given to the owner of the data folder (the service's user)."""
    existing = read_code(data_dir)
    if existing:
        return existing
    path = code_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    code = "-".join("".join(secrets.choice(ALPHABET) for _ in range(GROUP_LEN)) for _ in range(GROUPS))
    tmp = path.with_name(f"{FILE_NAME}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(code + "\n")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        st = path.parent.stat()
        if st.st_uid != 0:
            os.chown(tmp, st.st_uid, st.st_gid)
    try:
        os.link(tmp, path)              # first writer wins when the installer and the service race
    except FileExistsError:
        os.unlink(tmp)
        return read_code(data_dir) or ensure_code(data_dir)
    os.unlink(tmp)
    return code


def check_code(data_dir: str, given: str) -> bool:
    code = read_code(data_dir)
    if not code:
        return False
    return hmac.compare_digest(normalise(given).encode(), normalise(code).encode())


def retire(data_dir: str) -> None:
    """Setup is done: the code is no longer needed (nor accepted)."""
    try:
        code_path(data_dir).unlink()
    except FileNotFoundError:
        pass
