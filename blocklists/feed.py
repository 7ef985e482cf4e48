"""Signed provider feeds: the publishing side (keygen, build) and the checks both sides share.

An administrator keeps a source folder with ``feed.yaml`` and the list files it names, and runs
``hearth feed build`` to turn it into plain static files any web server can publish::

    OUT_DIR/manifest.json          the manifest (JSON, see docs/feed-format.md)
    OUT_DIR/manifest.json.sig      base64 Ed25519 signature over the exact bytes of manifest.json
    OUT_DIR/lists/ID.SHA16.txt     the lists, named after their id and the start of their sha256

List files are content-addressed: a new build adds new files beside the old ones and never
rewrites a file that a published manifest names, and the previous build's files are kept. So a
client holding the previous manifest (or a half-uploaded folder) still finds every list that its
manifest names, with the checksum that manifest promises. The signature is written before the
manifest and the manifest last of all.

Appliances fetch and check feeds with :class:`blocklists.feed_client.FeedClient`.
"""
from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import json
import os
import re
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .feed_files import FeedError, _write_new, atomic_write, file_digest, raw_public_key  # noqa: F401 - re-exported

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.json.sig"
LISTS_DIR = "lists"
PRIVATE_KEY_NAME = "feed.key"
PUBLIC_KEY_NAME = "feed.pub"
FEED_YAML = "feed.yaml"
FORMATS = ("hosts", "domains", "wildcard", "adblock", "regex", "dnsmasq", "auto")
MAX_LIST_BYTES = 64 * 1024 * 1024  # appliances refuse bigger lists by default (FetchLimits.max_bytes)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_SIGNATURE_BYTES = 4096

ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_LIST_FILE_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*\.[0-9a-f]{16}\.txt$")

_YAML_TOP_KEYS = {"title": str, "lists": list}
_YAML_LIST_KEYS = {"id": str, "file": str, "title": str, "category": str, "format": str, "mandatory": bool,
                   "authority": str, "reference": str}
_YAML_LIST_REQUIRED = ("id", "file", "category")
_MANIFEST_LIST_KEYS = {"id": str, "title": str, "category": str, "format": str, "url": str, "sha256": str,
                       "size": int, "updated": str, "entries": int, "mandatory": bool}


# -- keys ---------------------------------------------------------------------------------------------------

def keygen(out_dir: str) -> tuple[str, str]:
    """Make ``OUT_DIR/feed.key`` (PEM PKCS#8, mode 0600) and ``OUT_DIR/feed.pub`` (one base64 line).

    Refuses to overwrite an existing key: losing the private key means every appliance needs a
    new public key."""
    private_path = os.path.join(out_dir, PRIVATE_KEY_NAME)
    public_path = os.path.join(out_dir, PUBLIC_KEY_NAME)
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise FeedError(f"{path} already exists: refusing to overwrite a key (move it away first)")
    try:
        os.makedirs(out_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise FeedError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    _write_new(private_path, pem, 0o600)
    try:
        _write_new(public_path, (public_key_text(key.public_key()) + "\n").encode("ascii"), 0o644)
    except FeedError:
        os.unlink(private_path)
        raise
    return private_path, public_path


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """The one-line base64 form of a public key (what feed.pub holds and appliances configure)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def load_public_key(text_or_path: Union[str, Ed25519PublicKey]) -> Ed25519PublicKey:
    """A public key from its base64 text (32 raw bytes), a PEM block, or a path to a file holding either."""
    if isinstance(text_or_path, Ed25519PublicKey):
        return text_or_path
    if not isinstance(text_or_path, str) or not text_or_path.strip():
        raise FeedError("public key: empty (give the base64 text of feed.pub or a path to it)")
    text, where = text_or_path.strip(), "public key"
    if os.path.isfile(os.path.expanduser(text)):
        where = os.path.expanduser(text)
        try:
            with open(where, encoding="ascii") as fh:
                text = fh.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise FeedError(f"{where}: cannot read the public key: {exc}") from None
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except ValueError as exc:
            raise FeedError(f"{where}: not a PEM public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise FeedError(f"{where}: not an Ed25519 public key")
        return key
    raw = raw_public_key(text)
    if not raw:
        if where == "public key":
            raise FeedError(f"public key: {text[:60]!r} is neither an existing file nor the base64 of a 32-byte "
                            "Ed25519 public key (as in feed.pub)")
        raise FeedError(f"{where}: not an Ed25519 public key (expected the base64 of 32 bytes, as in feed.pub)")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_private_key(path: str) -> Ed25519PrivateKey:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise FeedError(f"{path}: cannot read the private key: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise FeedError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise FeedError(f"{path}: not an Ed25519 private key (make one with `hearth feed keygen`)")
    return key


def sign_manifest(manifest_bytes: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """The content of manifest.json.sig: base64 of the 64-byte signature, and a newline."""
    return base64.b64encode(private_key.sign(manifest_bytes)) + b"\n"


# -- feed.yaml ----------------------------------------------------------------------------------------------

def load_feed_yaml(src_dir: str) -> dict:
    """Read and strictly check ``SRC_DIR/feed.yaml``; list ``file`` values become paths below SRC_DIR.

    Problems raise FeedError as ``FILE:LINE: key: problem`` (the first one found)."""
    path = os.path.join(src_dir, FEED_YAML)
    if not os.path.isfile(path):
        raise FeedError(f"{path}: not found (the source folder needs a {FEED_YAML})")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        data = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text, Loader=yaml.SafeLoader))
    except (OSError, UnicodeDecodeError) as exc:
        raise FeedError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FeedError(f"{path}{line}: invalid YAML: {problem}") from None

    def fail(where: tuple, message: str) -> FeedError:
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where).lstrip(".")
        line = next((lines[where[:n]] for n in range(len(where), -1, -1) if where[:n] in lines), None)
        return FeedError(f"{path}{f':{line}' if line else ''}: {key + ': ' if key else ''}{message}")

    if not isinstance(data, dict):
        raise fail((), "expected a mapping with 'title' and 'lists'")
    _check_keys(fail, (), data, _YAML_TOP_KEYS, ("title", "lists"))
    title = data["title"].strip()
    if not title:
        raise fail(("title",), "must not be empty")
    if not data["lists"]:
        raise fail(("lists",), "must name at least one list")
    lists, seen = [], {}
    for i, item in enumerate(data["lists"]):
        where = ("lists", i)
        if not isinstance(item, dict):
            raise fail(where, "expected a mapping with id, file, category (and title, format, mandatory)")
        _check_keys(fail, where, item, _YAML_LIST_KEYS, _YAML_LIST_REQUIRED)
        list_id = item["id"]
        if not ID_RE.match(list_id):
            raise fail(where + ("id",), f"{list_id!r} is not a valid id (use a-z, 0-9, '-', '_', '.', start with "
                                        "a letter or digit, at most 64 characters)")
        if list_id in seen:
            raise fail(where + ("id",), f"duplicate id {list_id!r} (also lists[{seen[list_id]}])")
        seen[list_id] = i
        category = item["category"]
        if not ID_RE.match(category):
            raise fail(where + ("category",), f"{category!r} is not a valid category (use a-z, 0-9, '-', '_', '.')")
        fmt = item.get("format", "auto")
        if fmt not in FORMATS:
            raise fail(where + ("format",), f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
        file_path = os.path.join(src_dir, item["file"])
        if not item["file"].strip() or not os.path.isfile(file_path):
            raise fail(where + ("file",), f"{file_path}: no such file")
        list_title = item.get("title", list_id).strip() or list_id
        entry = {"id": list_id, "file": file_path, "title": list_title, "category": category,
                 "format": fmt, "mandatory": item.get("mandatory", False)}
        if item.get("authority") or item.get("reference"):   # an authority's order: both, on a mandatory list
            if not (item.get("authority", "").strip() and item.get("reference", "").strip() and entry["mandatory"]):
                raise fail(where + ("authority",), "an order needs authority, reference and mandatory: true")
            entry["authority"], entry["reference"] = item["authority"].strip(), item["reference"].strip()
        lists.append(entry)
    return {"title": title, "lists": lists}


def _key_lines(node: Any) -> dict:
    """Line numbers (1-based) of every key and list item in a composed YAML document, by key path."""
    lines: dict = {}

    def walk(n: Any, where: tuple) -> None:
        if isinstance(n, yaml.MappingNode):
            for key_node, value_node in n.value:
                if isinstance(key_node, yaml.ScalarNode):
                    lines[where + (key_node.value,)] = key_node.start_mark.line + 1
                    walk(value_node, where + (key_node.value,))
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                lines[where + (i,)] = item.start_mark.line + 1
                walk(item, where + (i,))

    if node is not None:
        lines[()] = node.start_mark.line + 1
        walk(node, ())
    return lines


def _check_keys(fail: Callable[[tuple, str], FeedError], where: tuple, data: dict, allowed: dict,
                required: tuple) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
            raise fail(where + (key,), f"unknown key; {hint}")
    for key in required:
        if key not in data or data[key] is None:
            raise fail(where + (key,), "missing (required)")
    for key, value in data.items():
        want = allowed[key]
        if not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
            raise fail(where + (key,), f"expected {_type_name(want)}, got {_type_name(type(value))}")


def _type_name(t: type) -> str:
    return {str: "a string", list: "a list", bool: "true or false", int: "an integer", dict: "a mapping",
            float: "a number", type(None): "nothing"}.get(t, t.__name__)


# -- list files -------------------------------------------------------------------------------------------

def count_entries(data: bytes, fmt: str = "auto") -> int:
    """Non-blank lines that are not comments: ``#`` and ``!`` lines, and ``[...]`` Adblock headers
    (except in regex lists, where ``[`` can start an expression)."""
    prefixes = (b"#", b"!") if fmt == "regex" else (b"#", b"!", b"[")
    count = 0
    for line in data.splitlines():
        line = line.strip()
        if line and not line.startswith(prefixes):
            count += 1
    return count


def looks_like_html(head: bytes) -> bool:
    """True when the first bytes of a body are an HTML page (an error or login page, not a list)."""
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:64].lower()
    return head.startswith((b"<!doctype", b"<html", b"<head", b"<body"))


def _check_list_bytes(data: bytes, where: str) -> None:
    if not data:
        raise FeedError(f"{where}: the file is empty")
    if len(data) > MAX_LIST_BYTES:
        raise FeedError(f"{where}: {len(data)} bytes, over the {MAX_LIST_BYTES} bytes appliances accept")
    if looks_like_html(data[:1024]):
        raise FeedError(f"{where}: looks like an HTML page, not a blocklist")
    if b"\x00" in data:
        raise FeedError(f"{where}: binary data (NUL bytes); lists must be plain text, not compressed")


# -- build --------------------------------------------------------------------------------------------------

def build_feed(src_dir: str, key_path: str, out_dir: str, version: Optional[int] = None) -> dict:
    """Sign the feed described by ``SRC_DIR/feed.yaml`` into ``OUT_DIR``; returns the manifest.

    ``version`` defaults to the version of the manifest already in OUT_DIR + 1 (or 1); an explicit
    version must be higher than that one, since appliances refuse to go back."""
    spec = load_feed_yaml(src_dir)
    key = load_private_key(key_path)
    out_real = os.path.realpath(out_dir)
    if os.path.realpath(key_path).startswith(out_real + os.sep):
        raise FeedError(f"{key_path}: the private key is inside the output folder {out_dir}, which gets published")
    previous = _read_previous_manifest(out_dir)
    prev_version = previous["version"] if previous else 0
    if version is None:
        version = prev_version + 1
    elif isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise FeedError(f"version: must be a positive integer, got {version!r}")
    elif version <= prev_version:
        raise FeedError(f"version {version} is not higher than {prev_version} in "
                        f"{os.path.join(out_dir, MANIFEST_NAME)}: appliances would refuse it as a rollback")
    prev_lists = {e.get("id"): e for e in (previous or {}).get("lists", []) if isinstance(e, dict)}

    now = utc_now()
    lists_dir = os.path.join(out_dir, LISTS_DIR)
    try:
        os.makedirs(lists_dir, exist_ok=True)
    except OSError as exc:
        raise FeedError(f"cannot create {lists_dir}: {exc.strerror or exc}") from None
    entries = []
    for item in spec["lists"]:
        where = f"{os.path.join(src_dir, FEED_YAML)}: list {item['id']} ({item['file']})"
        try:
            with open(item["file"], "rb") as fh:
                data = fh.read(MAX_LIST_BYTES + 1)
        except OSError as exc:
            raise FeedError(f"{where}: cannot read: {exc.strerror or exc}") from None
        _check_list_bytes(data, where)
        digest = hashlib.sha256(data).hexdigest()
        url = f"{LISTS_DIR}/{item['id']}.{digest[:16]}.txt"
        target = os.path.join(out_dir, url)
        if not _same_file(target, digest):
            atomic_write(target, data)
        old = prev_lists.get(item["id"])
        updated = old["updated"] if old and old.get("sha256") == digest and isinstance(old.get("updated"), str) \
            else now
        entries.append({"id": item["id"], "title": item["title"], "category": item["category"],
                        "format": item["format"], "url": url, "sha256": digest, "size": len(data),
                        "updated": updated, "entries": count_entries(data, item["format"]),
                        "mandatory": item["mandatory"],
                        **{k: item[k] for k in ("authority", "reference") if k in item}})
    manifest = {"schema": SCHEMA_VERSION, "version": version, "generated": now, "title": spec["title"],
                "lists": entries}
    manifest_bytes = encode_manifest(manifest)
    # Lists first (done), then the signature, then the manifest: a client that reads the new manifest
    # finds its lists and its signature already in place.
    atomic_write(os.path.join(out_dir, SIGNATURE_NAME), sign_manifest(manifest_bytes, key))
    atomic_write(os.path.join(out_dir, MANIFEST_NAME), manifest_bytes)
    keep = {e["url"].split("/", 1)[1] for e in entries}
    keep |= {str(e.get("url", "")).split("/", 1)[-1] for e in prev_lists.values()}
    _prune(lists_dir, keep)
    return manifest


def encode_manifest(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _read_previous_manifest(out_dir: str) -> Optional[dict]:
    path = os.path.join(out_dir, MANIFEST_NAME)
    if not os.path.exists(path):
        return None
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise FeedError(f"{path}: cannot read the previous manifest ({exc}); fix or remove it, "
                        "and give --version higher than the last published one") from None
    if not isinstance(data, dict) or not _is_int(data.get("version")) or data["version"] < 1:
        raise FeedError(f"{path}: the previous manifest has no valid version; fix or remove it, "
                        "and give --version higher than the last published one")
    return data


def _same_file(path: str, digest: str) -> bool:
    try:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest() == digest
    except OSError:
        return False


def _prune(lists_dir: str, keep: set) -> None:
    """Remove list files that neither the new nor the previous manifest names."""
    try:
        names = os.listdir(lists_dir)
    except OSError:
        return
    for name in names:
        if _LIST_FILE_RE.match(name) and name not in keep:
            try:
                os.unlink(os.path.join(lists_dir, name))
            except OSError:
                pass


# -- verification -------------------------------------------------------------------------------------------

def verify_manifest(manifest_bytes: bytes, signature_text: Union[bytes, str], public_key: Any) -> dict:
    """Check the signature over the exact manifest bytes, then parse and check the manifest."""
    key = load_public_key(public_key)
    if isinstance(signature_text, str):
        signature_text = signature_text.encode("ascii", "replace")
    try:
        signature = base64.b64decode(signature_text.strip(), validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if len(signature) != 64:
        raise FeedError("manifest signature: not the base64 of a 64-byte Ed25519 signature")
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise FeedError("signature does not match the configured public key "
                        "(the manifest was altered, or signed with another key)") from None
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FeedError(f"manifest: not valid JSON ({exc})") from None
    check_manifest(manifest)
    return manifest


def check_manifest(manifest: Any) -> None:
    """Schema checks. Unknown fields are ignored (a change old clients must not misread bumps ``schema``)."""
    if not isinstance(manifest, dict):
        raise FeedError("manifest: expected a JSON object")
    schema = manifest.get("schema")
    if schema != SCHEMA_VERSION:
        raise FeedError(f"manifest: schema {schema!r} is not supported (this Hearth reads schema {SCHEMA_VERSION})")
    if not _is_int(manifest.get("version")) or manifest["version"] < 1:
        raise FeedError(f"manifest: version: expected a positive integer, got {manifest.get('version')!r}")
    _check_time(manifest.get("generated"), "manifest: generated")
    if not isinstance(manifest.get("title"), str):
        raise FeedError("manifest: title: expected a string")
    lists = manifest.get("lists")
    if not isinstance(lists, list):
        raise FeedError("manifest: lists: expected a list")
    seen = set()
    for i, entry in enumerate(lists):
        where = f"manifest: lists[{i}]"
        if not isinstance(entry, dict):
            raise FeedError(f"{where}: expected an object")
        for key, want in _MANIFEST_LIST_KEYS.items():
            value = entry.get(key)
            ok = _is_int(value) if want is int else isinstance(value, want)
            if not ok:
                raise FeedError(f"{where}.{key}: expected {_type_name(want)}, got {value!r}")
        where = f"manifest: list {entry['id']}"
        if not ID_RE.match(entry["id"]):
            raise FeedError(f"{where}: invalid id")
        if entry["id"] in seen:
            raise FeedError(f"{where}: duplicate id")
        seen.add(entry["id"])
        if entry["format"] not in FORMATS:
            raise FeedError(f"{where}: unknown format {entry['format']!r}")
        if not SHA256_RE.match(entry["sha256"]):
            raise FeedError(f"{where}: sha256: expected 64 lowercase hex digits")
        if entry["size"] < 1 or entry["entries"] < 0:
            raise FeedError(f"{where}: size must be positive and entries not negative")
        if not is_safe_relative_url(entry["url"]):
            raise FeedError(f"{where}: url {entry['url']!r} must be a relative path below the manifest")
        _check_time(entry["updated"], f"{where}: updated")


def is_safe_relative_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or parts.query or parts.fragment or not parts.path:
        return False
    if parts.path.startswith("/") or "\\" in parts.path:
        return False
    return all(seg not in ("", ".", "..") for seg in parts.path.split("/"))


def entry_mismatch(entry: dict, size: int, digest: str) -> Optional[str]:
    """Why a file of ``size`` bytes and ``digest`` is not the one the manifest entry names, or None."""
    if size != entry["size"]:
        return f"size {size} bytes, the manifest says {entry['size']}"
    if digest != entry["sha256"]:
        return f"sha256 {digest[:16]}... does not match the manifest's {entry['sha256'][:16]}..."
    return None


# -- small helpers ------------------------------------------------------------------------------------------

def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _check_time(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise FeedError(f"{where}: expected an ISO 8601 time, got {value!r}")
    try:
        parse_time(value)
    except ValueError:
        raise FeedError(f"{where}: expected an ISO 8601 time, got {value!r}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


