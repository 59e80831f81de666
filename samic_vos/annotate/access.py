"""Who may talk to SAMBOX's server: only this user's browser tab, as local servers must.

A server on 127.0.0.1 is reachable by every web page the user visits (DNS rebinding,
cross-site requests), so, as Jupyter does, :class:`LocalAccess` (an ASGI middleware in front of
the app) lets a request through only when all of these hold:

- **Host** is a name the server was started with: ``127.0.0.1:PORT`` or ``localhost:PORT``
  (a rebinding page's requests carry its own name);
- it carries the **per-launch token** (a secret made at start): the URL the server prints and
  opens is ``http://127.0.0.1:PORT/?token=T``; that first request sets a cookie
  ``sambox-token-PORT`` (HttpOnly, SameSite=Strict) and answers a page that moves on to ``/``
  (:data:`ENTRY_PAGE`), and the page's requests then carry the cookie. Scripts send the
  header ``X-SAMBOX-Token: T`` instead;
- it is not made by a **page of another origin**: a browser says who made a request
  (``Sec-Fetch-Site``, Fetch Metadata), and only the page's own (``same-origin``) and the
  user's (``none``: typed, a bookmark, opened by a program) pass, plus any site's link that
  opens a page of the server in a tab (a top-level navigation, GET). A page on another port
  of 127.0.0.1 is the *same site* (cookies and SameSite know no ports), so the strict cookie
  goes with its ``<img>``, ``<script>`` and ``no-cors`` requests: this check keeps it from
  showing the user's images in its own page or making the server work. Clients that send no
  such header (scripts, older browsers) get the other checks;
- a **write** (any method but GET/HEAD) carries an **Origin** of the server itself (checked
  when present; required when the token came in the cookie, which a browser attaches on its
  own), a JSON **Content-Type** (a cross-site "simple" request, e.g. ``fetch(..., {mode:
  "no-cors"})`` with a text body, cannot have one) and a body of at most
  :data:`MAX_BODY_BYTES` (read no further).

Every answer forbids framing (CSP ``frame-ancestors 'none'``, ``X-Frame-Options: DENY``),
sniffing, referrers, use by a page of another origin (``Cross-Origin-Resource-Policy``), a
handle on the page to the page that opened it (``Cross-Origin-Opener-Policy``) and keeping it
in a cache (``Cache-Control: no-store``: the images and annotations are private). A refusal
is a JSON ``{"detail": ...}`` saying what to do, and one warning line in the log. The checks
are a few comparisons per request.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A request body is one small JSON object (an action: a click, a box, a label of at most 200
# characters, a brush stroke of at most 2000 points, ~40 kB); anything longer is refused unread.
MAX_BODY_BYTES = 64 * 1024
TOKEN_HEADER = "x-sambox-token"
HOST_NAMES = ("127.0.0.1", "localhost")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; "
        b"form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)
_READS = frozenset({"GET", "HEAD"})
# Sec-Fetch-Site values of requests made by the server's own page or by the user.
_OWN_SITES = frozenset({"same-origin", "none"})


def new_token() -> str:
    """A fresh per-launch secret (URL-safe, 256 bits)."""
    return secrets.token_urlsafe(32)


def cookie_name(port: int) -> str:
    """The token's cookie on ``port`` (cookies are shared by every port of a host)."""
    return f"sambox-token-{port}"


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class LocalAccess:
    """The ASGI middleware of the module's checks around ``app``, for the secret ``token``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # startup and shutdown
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # websockets: SAMBOX has none
            await send({"type": "websocket.close", "code": 1008})
            return
        try:
            port, headers = self._check_host(scope)
            _check_fetch_site(headers, scope["method"])
            if self._entry_with_token(scope):
                await _enter(send, port, self.token)
                return
            from_cookie = self._check_token(headers, port)
            if scope["method"] not in _READS:
                self._check_write(headers, port, from_cookie)
                receive = await _bounded_body(receive, headers)
        except _Refused as refused:
            logger.warning("refused %s %s: %s", scope["method"], scope.get("path"), refused.detail)
            await _answer(send, refused.status, {"detail": f"refused: {refused.detail}"})
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_secured)

    def _check_host(self, scope: Scope) -> tuple[int, dict[str, str]]:
        server = scope.get("server")
        if not server:
            raise _Refused(403, "SAMBOX answers on 127.0.0.1 only")
        port = int(server[1])
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            if name in headers and name in ("host", "origin", "cookie", TOKEN_HEADER):
                raise _Refused(400, f"the request repeats its '{name}' header")
            headers[name] = raw_value.decode("latin-1")
        host = headers.get("host", "")
        if host not in {f"{name}:{port}" for name in HOST_NAMES}:
            raise _Refused(
                403,
                f"Host '{host[:100]}' is not this server; open http://127.0.0.1:{port}/ "
                "with the token samic-vos printed",
            )
        return port, headers

    def _entry_with_token(self, scope: Scope) -> bool:
        """Whether this is the printed URL ``/?token=T`` (right token): the page's entry."""
        if scope["path"] != "/" or scope["method"] not in _READS:
            return False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        tokens = query.get("token", [])
        return len(tokens) == 1 and self._is_token(tokens[0])

    def _is_token(self, sent: str) -> bool:
        """Whether ``sent`` is the token, compared in constant time (as bytes: any text a
        request holds, non-ASCII too, is simply not the token)."""
        return hmac.compare_digest(sent.encode("utf-8", "surrogatepass"), self.token.encode())

    def _check_token(self, headers: dict[str, str], port: int) -> bool:
        """Check the token (header or cookie); whether it came in the cookie."""
        sent = headers.get(TOKEN_HEADER)
        from_cookie = sent is None
        if from_cookie:
            try:
                morsel = SimpleCookie(headers.get("cookie", "")).get(cookie_name(port))
            except CookieError:
                morsel = None
            sent = None if morsel is None else morsel.value
        if sent is None or not self._is_token(sent):
            raise _Refused(
                403,
                "no valid SAMBOX token; open the URL with ?token= that `samic-vos annotate` "
                "printed when it started (a restarted server has a new token)",
            )
        return from_cookie

    def _check_write(self, headers: dict[str, str], port: int, from_cookie: bool) -> None:
        origin = headers.get("origin")
        allowed = {f"http://{name}:{port}" for name in HOST_NAMES}
        if origin is not None and origin not in allowed:
            raise _Refused(403, f"a write from another site (Origin '{origin[:100]}')")
        if origin is None and from_cookie:
            raise _Refused(403, "a write without an Origin header (send the token header)")
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise _Refused(415, "a write must be JSON (Content-Type: application/json)")


def _check_fetch_site(headers: dict[str, str], method: str) -> None:
    """Refuse a request that a page of another origin made (``Sec-Fetch-Site`` is neither
    ``same-origin`` nor ``none``), unless it opens a page of the server in a tab."""
    site = headers.get("sec-fetch-site")
    if site is None or site in _OWN_SITES:
        return
    opens_a_tab = (
        method in _READS
        and headers.get("sec-fetch-mode") == "navigate"
        and headers.get("sec-fetch-dest") == "document"
    )
    if not opens_a_tab:
        raise _Refused(403, f"a request of a page of another origin (Sec-Fetch-Site: {site[:20]})")


async def _bounded_body(receive: Receive, headers: dict[str, str]) -> Receive:
    """Read the whole body (at most :data:`MAX_BODY_BYTES`); a ``receive`` that replays it."""
    too_long = _Refused(413, f"the request body is over {MAX_BODY_BYTES} bytes")
    length = headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        raise too_long
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Refused(400, "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_long
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()  # after the body: only the disconnect can come
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _answer(send: Send, status: int, payload: dict[str, str]) -> None:
    body = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# The answer to the printed URL: a page that moves on to ``/`` itself. A 303 would not do: when
# the URL is opened from a page of another site (a link in a web terminal, a file:// page),
# the browser keeps that site as the initiator across the redirect, so the SameSite=Strict
# cookie it just got is not sent with ``/``, nor with any reload of it. A navigation this
# page makes is the server's own (same-origin): the cookie goes with it.
ENTRY_PAGE = (
    b'<!doctype html>\n<meta charset="utf-8">\n<meta http-equiv="refresh" content="0; url=/">\n'
    b'<title>SAMBOX</title>\n<p><a href="/">Open SAMBOX</a></p>\n'
)


async def _enter(send: Send, port: int, token: str) -> None:
    """The entry page (:data:`ENTRY_PAGE`) with the token's cookie: the token leaves the
    address bar, and goes to no other page (``Referrer-Policy: no-referrer``)."""
    cookie = f"{cookie_name(port)}={token}; Path=/; HttpOnly; SameSite=Strict"
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"set-cookie", cookie.encode()),
        (b"content-length", str(len(ENTRY_PAGE)).encode()),
        *SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ENTRY_PAGE})
