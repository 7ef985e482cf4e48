"""Durable file writes for feeds and their keys: a file replaced atomically (written beside, fsynced, renamed),
a key file created once and never overwritten, and a file's size and sha256; failures are FeedErrors."""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile


class FeedError(Exception):
    """A feed problem, with a one-line message that says what and where."""


def file_digest(path: str) -> tuple[int, str]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    directory = os.path.dirname(path) or "."
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    except OSError as exc:
        raise FeedError(f"cannot write in {directory}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quiet(tmp)
        raise FeedError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        _unlink_quiet(tmp)
        raise


def _write_new(path: str, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise FeedError(f"{path} already exists: refusing to overwrite a key (move it away first)") from None
    except OSError as exc:
        raise FeedError(f"cannot create {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, mode)  # O_CREAT's mode is narrowed by the umask


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def raw_public_key(text: str) -> bytes:
    """The 32 bytes of an Ed25519 public key written in base64 (the line of a feed.pub), or b"" if it is not one.
    Here, apart from the signature code, so that checking a configured key needs no cryptography library."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""
    return raw if len(raw) == 32 else b""
