"""What every area of the UI shares: the store, the signed-in user, CSRF, the audit trail, the engine.

The request cycle: ``load_user`` finds the user (session cookie or ``Authorization: Bearer``
token), checks the CSRF token of every state-changing request that came with a cookie, and sends
every page to the setup wizard until the first admin exists.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import secrets
import time
from functools import wraps
from typing import Any, Callable, Optional

from flask import (Flask, current_app, g, has_request_context, jsonify, redirect, render_template, request, session,
                   url_for)
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect

from resolver.store.protocol import StoreUnavailable, User

log = logging.getLogger("hearth.web")
csrf = CSRFProtect()
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# endpoints reachable before the first admin exists (everything else goes to the wizard)
_BEFORE_SETUP = {"auth.setup", "static", "health.healthz", "api.openapi", "i18n_lang"}
_PUBLIC_AREAS = ("blockpage.", "metrics.")


# -- the secret key -----------------------------------------------------------------------------------

def secret_key(config: Any) -> bytes:
    """The session-signing key: read from ``web.session_secret_file`` (default data_dir/web-secret.key),
    made at first start (random, mode 0600). No built-in key."""
    path = config.web.session_secret_file or os.path.join(config.data_dir, "web-secret.key")
    try:
        with open(path, "rb") as fh:
            key = fh.read().strip()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    key = secrets.token_hex(32).encode()
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    try:
        os.link(tmp, path)             # first writer wins when two processes start together
    except FileExistsError:
        os.unlink(tmp)
        return secret_key(config)
    os.unlink(tmp)
    return key


# -- the store ----------------------------------------------------------------------------------------

STORE_RETRY = 10.0   # a shared store that failed is tried again after this; meanwhile pages say so at once


class StoreStillDown(StoreUnavailable):
    """Raised without trying: the shared store failed less than STORE_RETRY seconds ago."""


def store() -> Any:
    """The app's store (one connection, thread-safe), opened and migrated on first use. A shared store that
    failed a moment ago (could not be opened, or a page's query found it down) is not tried again for
    STORE_RETRY seconds: pages say so at once instead of each waiting out the pool's connection timeout."""
    app = current_app
    down = app.extensions.get("hearth_store_down")
    if down is not None and time.monotonic() - down[0] < STORE_RETRY:
        raise StoreStillDown(down[1])
    s = app.extensions.get("hearth_store")
    if s is None:
        from resolver.store.open import open_store

        try:
            s = app.extensions["hearth_store"] = open_store(app.config["HEARTH"])
        except StoreUnavailable as exc:
            app.extensions["hearth_store_down"] = (time.monotonic(), str(exc))
            raise
    return s


def config() -> Any:
    return current_app.config["HEARTH"]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def new_token() -> str:
    return "hth_" + secrets.token_urlsafe(32)


# -- users ------------------------------------------------------------------------------------------

def _session_stamp(user: User) -> str:
    """Part of the session: changes when the password or the user's session generation does (sign out,
    password change, removal), which ends every session signed with the old one, copied cookies too."""
    gen = store().session_generation(user.id)
    text = f"{user.id}|{user.name}|{user.created}|{user.password_hash}|{gen}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cookies_secure() -> bool:
    """Cookies get ``Secure`` when ``web.secure_cookies`` says so or this request came over HTTPS."""
    return bool(current_app.config.get("SESSION_COOKIE_SECURE")) or (has_request_context() and request.is_secure)


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, with ``Secure`` set per request (HTTPS) as well as by config."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return cookies_secure()


def sign_in(user: User) -> None:
    session.clear()
    session.permanent = True
    session["uid"] = user.id
    session["sid"] = secrets.token_urlsafe(18)       # this browser's session, to sign out alone
    session["stamp"] = _session_stamp(user)
    if user.language:
        session["lang"] = user.language


def sign_out() -> None:
    """Forget the session in this browser (see end_sessions for every copy of it)."""
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def end_sessions(user: User) -> None:
    """End every web session of ``user`` server-side (a copied cookie is refused from now on)."""
    store().bump_session_generation(user.id)


def end_this_session(user: User) -> None:
    """End this browser's session server-side (a copy of its cookie is refused from now on); the user's
    sessions in other browsers go on. A session from before sessions had an id ends them all."""
    sid = session.get("sid")
    if not isinstance(sid, str) or not sid:
        end_sessions(user)
        return
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    store().end_web_session(sid, time.time() + lifetime)


def _session_live(user: User) -> bool:
    if session.get("stamp") != _session_stamp(user):
        return False
    sid = session.get("sid")
    return not (isinstance(sid, str) and sid and store().web_session_ended(sid))


# -- where to go next ---------------------------------------------------------------------------------

def safe_next(target: Optional[str], default: str = "/") -> str:
    """``target`` when it is a path on this site, else ``default``: the one check for every ``next``
    parameter (login, language switch, forms). Refused: anything not starting with one ``/``, ``//``
    (another host), backslashes (browsers read ``/\\`` as ``//``) and control characters anywhere, tabs
    and newlines included: browsers drop those, so ``/%09/evil.example`` would be ``//evil.example``."""
    from urllib.parse import urlsplit

    if not target or not isinstance(target, str) or len(target) > 2000:
        return default
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target) or "\\" in target:
        return default
    if not target.startswith("/") or target.startswith("//"):
        return default
    try:
        parts = urlsplit(target)
    except ValueError:
        return default
    if parts.scheme or parts.netloc:
        return default
    return target


# -- same-origin check ---------------------------------------------------------------------------------

def _netloc(url: str) -> Optional[str]:
    """``host[:port]`` of an http(s) URL, lower case, default port dropped; None when it is not one."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or (parts.scheme, port) in (("http", 80), ("https", 443)):
        return host
    return f"{host}:{port}"


def same_origin() -> bool:
    """A state-changing browser request came from a page of this host: its ``Origin`` (else its
    ``Referer``), when the browser sent one, names the host the request was sent to. No header: true
    (the CSRF token still has to match). Defence in depth beside the token, not instead of it."""
    source = request.headers.get("Origin")
    if source is None:
        source = request.headers.get("Referer")
        if not source:
            return True
    ours = _netloc(f"{request.scheme}://{request.host}")
    theirs = _netloc(source)
    return theirs is not None and theirs == ours


def is_api() -> bool:
    return request.path.startswith("/api/")


def json_error(status: int, message: str, **extra: Any):
    body = {"error": message, "status": status}
    body.update(extra)
    return jsonify(body), status


def load_user() -> Optional[Any]:
    g.user = None
    g.via_token = False
    if (request.endpoint or "").startswith("metrics."):
        return None             # no session, no CSRF; its own token (Authorization: Bearer) in webui.metrics
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        user = store().user_for_token(token_hash(auth[7:].strip()))
        if user is None:
            return json_error(401, "invalid API token")
        g.user, g.via_token = user, True
    else:
        uid = session.get("uid")
        if uid is not None:
            user = store().get_user_by_id(uid)
            if user is not None and _session_live(user):
                g.user = user
            else:
                sign_out()
        if request.method not in SAFE_METHODS:
            if not same_origin():
                return _cross_origin()
            csrf.protect()
    if not current_app.extensions.get("hearth_setup_done") and "auth" in current_app.blueprints:
        if store().count_users():
            current_app.extensions["hearth_setup_done"] = True
        elif request.endpoint not in _BEFORE_SETUP and not (request.endpoint or "").startswith(_PUBLIC_AREAS):
            if is_api():
                return json_error(503, "Hearth is not set up yet: open the web UI to run the setup wizard")
            return redirect(url_for("auth.setup"))
    return None


def require_login() -> Optional[Any]:
    """For a blueprint's before_request: signed in to see, admin to change."""
    if g.user is None:
        if is_api():
            return json_error(401, "sign in or send an API token (Authorization: Bearer …)")
        return redirect(url_for("auth.login", next=request.full_path if request.query_string else request.path))
    if request.method not in SAFE_METHODS and g.user.role != "admin":
        return forbidden()
    return None


def forbidden():
    from flask_babel import gettext as _

    if is_api():
        return json_error(403, "your account may only look (role viewer); an admin can change this")
    return render_template("error.html", code=403,
                           message=_("Your account can look but not change anything. Ask an admin.")), 403


def admin_only(view: Callable) -> Callable:
    """For GET pages that only admins see (users, tokens of others)."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.user is None or g.user.role != "admin":
            return forbidden()
        return view(*args, **kwargs)

    return wrapped


def actor() -> str:
    return g.user.name if getattr(g, "user", None) is not None else "?"


def audit(action: str, target: str, before: Any = None, after: Any = None) -> None:
    try:
        store().add_audit(actor(), action, target, before, after)
    except Exception:       # the audit log must never hide the change that was made
        log.exception("audit log write failed for %s %s", action, target)


# -- the engine ---------------------------------------------------------------------------------------

def engine_call(command: str, timeout: float = 1.0) -> Optional[dict]:
    """One control-socket command; None when the engine does not answer."""
    from resolver.service.control import call

    try:
        return call(config().control_socket, command, timeout=timeout)
    except (OSError, ValueError):
        return None


def nudge() -> None:
    """Tell a running engine the policy changed (it also polls the store, so a miss only delays it)."""
    engine_call("policy-reload", timeout=0.5)


def now() -> float:
    return time.time()


def timezone_name() -> str:
    return store().get_setting("timezone") or config().timezone


def tzinfo() -> Any:
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(timezone_name())
    except (KeyError, ValueError):
        return _dt.timezone.utc


# -- display --------------------------------------------------------------------------------------------

def show_text(text: Any) -> str:
    """Attacker-controlled text (DNS names, host names, messages) made visible: control characters,
    lone surrogates and other unprintables become ``\\xNN`` / ``\\uNNNN`` escapes. HTML escaping is
    Jinja's job (autoescape), not this one's."""
    if text is None:
        return ""
    out = []
    for ch in str(text):
        code = ord(ch)
        if ch.isprintable() and not 0xD800 <= code <= 0xDFFF:
            out.append(ch)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def _csrf_error(exc: CSRFError):
    from flask_babel import gettext as _

    if is_api():
        return json_error(400, f"CSRF check failed: {exc.description} (send the X-CSRFToken header, or use an "
                               "API token)")
    return render_template("error.html", code=400,
                           message=_("This form has expired or did not come from Hearth. Go back, reload the "
                                     "page and try again.")), 400


def _cross_origin():
    from flask_babel import gettext as _

    log.warning("refused %s %s from another site (Origin %r, Referer %r)", request.method, request.path,
                request.headers.get("Origin"), request.headers.get("Referer"))
    if is_api():
        return json_error(403, "cross-site request refused: Origin/Referer does not match this host")
    return render_template("error.html", code=403,
                           message=_("This request came from another site and was refused. Open Hearth's own "
                                     "page and try again.")), 403


def _handle_404(_exc: Any):
    if is_api():
        return json_error(404, "no such resource")
    return render_template("error.html", code=404, message=""), 404


def _handle_405(_exc: Any):
    if is_api():
        return json_error(405, "method not allowed")
    return render_template("error.html", code=405, message=""), 405


def _store_unavailable(exc: Exception):
    """A shared store (PostgreSQL) that is down: nothing can be read or saved; DNS goes on answering."""
    from flask_babel import gettext as _

    if not isinstance(exc, StoreStillDown):    # a real failure: the next pages within STORE_RETRY say it at once
        current_app.extensions["hearth_store_down"] = (time.monotonic(), str(exc))
    if is_api():
        return json_error(503, f"{exc}: DNS keeps answering with the policy it had; changes can't be saved "
                               "until the database is back")
    return render_template("error.html", code=503, message=_(
        "The shared store is unavailable (%(problem)s). DNS keeps answering with the policy it had; nothing can "
        "be changed until the database is back.", problem=str(exc))), 503


def _security_headers(resp: Any) -> Any:
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    resp.headers.setdefault("Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
    return resp


def init_app(app: Flask) -> None:
    app.session_interface = SessionInterface()
    csrf.init_app(app)
    app.before_request(load_user)
    app.after_request(_security_headers)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(404, _handle_404)
    app.register_error_handler(405, _handle_405)
    app.register_error_handler(StoreUnavailable, _store_unavailable)
    app.jinja_env.filters["show"] = show_text

    @app.context_processor
    def _globals() -> dict:
        user = getattr(g, "user", None)
        pending = new_reports = 0
        if user is not None:
            try:
                pending = len(store().list_access_requests("pending"))
                new_reports = store().count_new_reports()
            except Exception:
                pending = new_reports = 0
        return {"can_edit": user is not None and user.role == "admin", "pending_requests": pending,
                "new_reports": new_reports}
