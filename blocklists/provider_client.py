"""The appliance's link to a list provider (``provider:`` in the config): enrolment, check-ins, the feed's
address and key, and forwarding harmful-site reports.

* **Enrolment**, once: the appliance makes a random id (kept in ``DATA_DIR/provider/state.json``; no
  hardware id, no MAC, no serial number) and presents the organisation's enrolment token; the provider
  answers with the appliance's own token and the feed's public key. That key is pinned (unless
  ``provider.public_key`` is configured): a provider that later shows another key is refused.
* **Polling**: every ``poll_interval`` (with jitter) the engine asks for ``{url}/feed/manifest.json`` with a
  conditional GET (a 304 costs the provider almost nothing); only a new version starts a list update, which
  fetches and verifies the feed with the same :class:`blocklists.fetch.FeedClient` as any feed. Each poll
  also checks in: Hearth version, installed feed version, number of entries, last update error.
* **Reports** go through an outbox: the store's reports not yet forwarded (``forwarded_ts`` NULL) are sent in
  batches; a failure backs off (5 s doubling to 10 min) and they are sent again later, also after a restart.
  The provider counts an (appliance, report number) once, so a retry never doubles a report. What leaves the
  appliance: the domain, the suggested category, the note (at most 500 characters), the UI language and
  the time. Never the reporter's address, device name, contact details or anything else about the family.
* **Several nodes on one store** (a campus) each enrol as an appliance of their own (their check-ins show in the
  fleet), but forward as one: only the node holding the store's forwarding lease (:data:`LEASE_TTL`, renewed
  before every send; another node takes over when it lapses) sends reports and unblock requests, so each is
  sent once. Each node's check-ins fetch the decisions on what its own appliance sent, into the store, where
  every node's pages read them.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import time
from typing import Any, Optional
from urllib.parse import urljoin, urlsplit

import requests

from resolver import __version__
from resolver.base.names import normalise_name

from . import provider_unblocks
from .feed_files import atomic_write
from .provider_config import ProviderLinkConfig, check_key

log = logging.getLogger("hearth.provider")

TIMEOUT = 20.0
LEASE_TTL = 90.0    # the forwarding lease: renewed (to 90 s when under 45 s are left) before each send, which
                    # takes at most 2 x TIMEOUT (connect, then read): no other node sends meanwhile
NOT_SENT = "-"               # the "forwarder" of a report that was not sent (its address is no site name)
DECISIONS_WINDOW = 30 * 86400   # reports forwarded this long ago still wait for a decision
NOTE_MAX = 500
BATCH = 50
# the report form's kinds of harm → the category suggested to the provider
KIND_CATEGORY = {"sexual": "adult", "violence": "violence", "bullying": "other", "scam": "scam",
                 "gambling": "gambling", "drugs": "drugs", "other": "other"}


class ProviderError(Exception):
    """The provider could not be reached or refused us; one line for the log and the UI."""


# -- state ----------------------------------------------------------------------------------------------------

def state_path(data_dir: str) -> str:
    return os.path.join(data_dir, "provider", "state.json")


def load_state(data_dir: str) -> dict:
    try:
        with open(state_path(data_dir), encoding="utf-8") as fh:
            state = json.load(fh)
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def save_state(data_dir: str, state: dict) -> None:
    os.makedirs(os.path.dirname(state_path(data_dir)), exist_ok=True)
    atomic_write(state_path(data_dir), (json.dumps(state, indent=1, sort_keys=True) + "\n").encode("utf-8"),
                 mode=0o600)


def _post(url: str, body: dict, token: str = "") -> dict:
    headers = {"User-Agent": f"Hearth/{__version__}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        r = requests.post(url, json=body, headers=headers, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise ProviderError(f"cannot reach the provider at {urlsplit(url).netloc}: {type(exc).__name__}") from None
    if r.status_code >= 400:
        try:
            message = r.json().get("error", "")
        except ValueError:
            message = r.text[:200]
        raise ProviderError(f"the provider answered {r.status_code}: {message}")
    try:
        return r.json()
    except ValueError:
        raise ProviderError("the provider's answer is not JSON") from None


# -- enrolment ----------------------------------------------------------------------------------------------

def enrolled(link: ProviderLinkConfig, data_dir: str) -> dict:
    """The enrolment state, enrolling now if this appliance has not (or enrolled with another provider).

    A file lock makes the engine and an update process that both start at once enrol once, as one appliance."""
    state = load_state(data_dir)
    if state.get("url") == link.url and state.get("token") and state.get("public_key") and not link.public_key:
        return state
    os.makedirs(os.path.dirname(state_path(data_dir)), exist_ok=True)
    with open(os.path.join(os.path.dirname(state_path(data_dir)), ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _enrolled_locked(link, data_dir)


def _enrolled_locked(link: ProviderLinkConfig, data_dir: str) -> dict:
    state = load_state(data_dir)
    if state.get("url") == link.url and state.get("token") and state.get("public_key"):
        if link.public_key and state["public_key"] != link.public_key:
            raise ProviderError("provider.public_key differs from the key pinned at enrolment: refusing the feed "
                                f"(remove {state_path(data_dir)} to enrol again)")
        return state
    appliance_id = state.get("appliance_id") or secrets.token_urlsafe(24)
    answer = _post(urljoin(link.url, "api/v1/enrol"), {"token": link.token, "appliance_id": appliance_id,
                                                       "hearth_version": __version__})
    key = str(answer.get("public_key", ""))
    try:
        check_key(key)
    except ValueError:
        raise ProviderError("the provider gave no valid feed key at enrolment") from None
    pinned = link.public_key or (state.get("public_key") if state.get("url") == link.url else "")
    if pinned and key != pinned:
        raise ProviderError("the provider's feed key changed since it was pinned: refusing it")
    state = {"url": link.url, "appliance_id": appliance_id, "token": str(answer.get("token", "")),
             "public_key": link.public_key or key, "enrolled": time.time(), "etag": None}
    save_state(data_dir, state)
    log.info("enrolled with the provider %s as appliance %s", link.url, appliance_id)
    return state


def feed_url(link: ProviderLinkConfig) -> str:
    return urljoin(link.url, "feed/manifest.json")


# -- polling ------------------------------------------------------------------------------------------------

def poll(link: ProviderLinkConfig, data_dir: str, installed: dict, store: Any = None) -> bool:
    """Check in (``installed``: feed_version, entries, last_error) and ask for the manifest with a conditional
    GET; True when it changed since the last poll (a list update should fetch and verify it). With the
    ``store``, the check-in also asks for the decisions on the requests and reports this appliance sent (when
    some wait for one) and records them there."""
    state = enrolled(link, data_dir)
    me = state.get("appliance_id", "")
    body = {"hearth_version": __version__, **installed}
    try:
        if store is not None and provider_unblocks.open_requests(store, me, time.time() - DECISIONS_WINDOW):
            body["unblocks"] = True      # ask for the decisions (a check-in without open requests costs less)
        if store is not None and store.reports_awaiting_decisions(me, time.time() - DECISIONS_WINDOW):
            body["report_decisions"] = True
    except Exception:                    # the store away: the decisions come with a later check-in
        log.debug("provider: cannot read the outbox", exc_info=True)
        store = None
    try:
        answer = _post(urljoin(link.url, "api/v1/checkin"), body, state["token"])
        if store is not None and store.apply_provider_unblock_decisions(me, answer.get("unblocks")):
            log.info("provider: decisions on unblock requests received")
        if store is not None and "reports" in answer and store.save_provider_report_decisions(
                me, answer.get("reports")):
            log.info("provider: decisions on forwarded reports received")
    except ProviderError as exc:
        log.warning("provider check-in failed: %s", exc)
    headers = {"User-Agent": f"Hearth/{__version__}"}
    if state.get("etag"):
        headers["If-None-Match"] = state["etag"]
    try:
        r = requests.get(feed_url(link), headers=headers, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise ProviderError(f"cannot reach the provider's feed: {type(exc).__name__}") from None
    if r.status_code == 304:
        return False
    if r.status_code == 404:
        return False                     # nothing published yet
    if r.status_code != 200:
        raise ProviderError(f"the provider's feed answered {r.status_code}")
    etag = r.headers.get("ETag")
    changed = etag is None or etag != state.get("etag")
    if etag != state.get("etag"):
        state = load_state(data_dir)
        state["etag"] = etag
        save_state(data_dir, state)
    return changed


def forget_etag(data_dir: str) -> None:
    """After a failed update: the next poll fetches the manifest again rather than trusting a 304."""
    state = load_state(data_dir)
    if state.get("etag"):
        state["etag"] = None
        save_state(data_dir, state)


# -- reports ------------------------------------------------------------------------------------------------

def report_payload(report: Any) -> Optional[dict]:
    """What leaves the appliance for one report (see the module docstring), or None when its address is no
    site name (it is then not forwarded, only shown locally)."""
    text = str(report.url).strip()
    host = urlsplit(text if "//" in text else "//" + text).hostname or ""
    try:
        domain = normalise_name(host)
    except ValueError:
        return None
    if "." not in domain:
        return None
    return {"id": int(report.id), "domain": domain, "category": KIND_CATEGORY.get(report.kind, "other"),
            "note": str(report.message or "")[:NOTE_MAX], "lang": str(getattr(report, "lang", "") or "")[:16],
            "time": float(report.ts)}


def holds_lease(store: Any, state: dict, node: str = "") -> bool:
    """Whether this appliance may forward now: it holds (or just took) the store's forwarding lease."""
    return bool(store.provider_lease(state["appliance_id"], LEASE_TTL, node=node))


def forward_reports(link: ProviderLinkConfig, data_dir: str, store: Any, node: str = "") -> int:
    """Send the reports not forwarded yet, while this appliance holds the forwarding lease; marks those the
    provider acknowledged. Raises ProviderError."""
    state = enrolled(link, data_dir)
    sent = 0
    while True:
        pending = store.reports_to_forward(BATCH)
        if not pending or not holds_lease(store, state, node):
            return sent
        payloads, skipped = [], []
        for rep in pending:
            p = report_payload(rep)
            (payloads.append(p) if p is not None else skipped.append(rep.id))
        if skipped:                      # no site name: kept locally, no decision to wait for
            store.mark_reports_forwarded(skipped, by=NOT_SENT)
        if payloads:
            answer = _post(urljoin(link.url, "api/v1/reports"), {"reports": payloads}, state["token"])
            accepted = [i for i in answer.get("accepted", []) if isinstance(i, int)]
            store.mark_reports_forwarded(accepted, by=state["appliance_id"])
            sent += len(accepted)
            if not accepted:
                return sent
        if len(pending) < BATCH:
            return sent


def forward_unblocks(link: ProviderLinkConfig, data_dir: str, store: Any, node: str = "") -> int:
    """Send the queued unblock requests (:mod:`blocklists.provider_unblocks`), while this appliance holds the
    forwarding lease; marks those the provider acknowledged. Raises ProviderError."""
    state = enrolled(link, data_dir)
    if not any(not i.get("sent") for i in provider_unblocks.load(store)) or not holds_lease(store, state, node):
        return 0
    me = state["appliance_id"]
    pending = store.provider_unblocks_to_send(me)
    if not pending:
        return 0
    by_remote = {p.get("remote", p["id"]): p["id"] for p in pending}
    answer = _post(urljoin(link.url, "api/v1/unblocks"),
                   {"requests": [provider_unblocks.payload(p) for p in pending]}, state["token"])
    accepted = [by_remote[i] for i in answer.get("accepted", []) if isinstance(i, int) and i in by_remote]
    store.mark_provider_unblocks_sent(accepted, me)
    return len(accepted)


# -- older appliances' files ------------------------------------------------------------------------------------

def report_decisions_path(data_dir: str) -> str:
    """Where older appliances kept the decisions on forwarded reports (moved into the store at the first start)."""
    return os.path.join(data_dir, "provider", "report_decisions.json")


def migrate_files(data_dir: str, store: Any) -> int:
    """Move an older appliance's unblock outbox and report decisions (files under ``DATA_DIR/provider/``) into the
    store, renaming each ``….migrated``; returns how many entries moved. A no-op when there are none."""
    me = load_state(data_dir).get("appliance_id", "")
    moved = provider_unblocks.migrate_file(data_dir, store, me)
    path = report_decisions_path(data_dir)
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as fh:
                raw = json.load(fh)
        except (OSError, ValueError) as exc:
            log.warning("provider: cannot read %s (%s): its decisions come with the next check-ins", path, exc)
            raw = {}
        decisions = [{**v, "id": int(k)} for k, v in (raw.items() if isinstance(raw, dict) else ())
                     if str(k).isdigit() and isinstance(v, dict)]
        n = store.save_provider_report_decisions(me, decisions)
        try:
            os.replace(path, path + ".migrated")
        except FileNotFoundError:
            pass                               # another process moved it meanwhile
        if n:
            log.info("provider: %d decision(s) on reports moved from %s into the store", n, path)
        moved += n
    return moved
