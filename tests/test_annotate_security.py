"""SAMBOX is safe on localhost: every attack of a web page on the local server, sent as raw
HTTP to the real server (uvicorn on 127.0.0.1), is refused and changes nothing."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sambox_helpers import make_images

from samic_vos.annotate.access import MAX_BODY_BYTES, cookie_name
from samic_vos.annotate.browser import live_server
from samic_vos.annotate.server import create_app

A = {"type": "point", "x": 20.0, "y": 20.0, "positive": True, "refine": False}


class Server:
    """A running SAMBOX server and raw requests to it."""

    def __init__(self, url: str, annotations: Path) -> None:
        parts = urlsplit(url)
        self.port = parts.port
        self.token = parts.query.removeprefix("token=")
        self.annotations = annotations
        self.origin = f"http://127.0.0.1:{self.port}"
        self.cookie = f"{cookie_name(self.port)}={self.token}"

    def request(self, method: str, path: str, body: bytes | None = None, **headers: str):
        """Send exactly these headers (Host included); returns (status, headers, body)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            headers.setdefault("Host", f"127.0.0.1:{self.port}")
            if body is not None:
                headers.setdefault("Content-Length", str(len(body)))
            for name, value in headers.items():
                connection.putheader(name.replace("_", "-"), value)
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def page_post(self, path: str, payload: object, **headers: str):
        """A POST as the page sends it (cookie, its Origin, JSON), headers overridable."""
        headers = {
            "Cookie": self.cookie,
            "Origin": self.origin,
            "Content-Type": "application/json",
            **headers,
        }
        return self.request("POST", path, json.dumps(payload).encode(), **headers)

    def state(self) -> dict:
        status, _, body = self.request("GET", "/api/state?name=a.png", X_SAMBOX_Token=self.token)
        assert status == 200, body
        return json.loads(body)

    def files(self) -> dict[str, bytes]:
        """Every file of the annotations folder but the embeddings: what an attack may not
        change."""
        return {
            str(p.relative_to(self.annotations)): p.read_bytes()
            for p in sorted(self.annotations.rglob("*"))
            if p.is_file() and "embeddings" not in p.parts
        }


@pytest.fixture()
def server(tmp_path, segmenter):
    images, annotations = make_images(tmp_path / "images"), tmp_path / "annotations"
    with live_server(create_app(images, annotations, segmenter)) as url:
        yield Server(url, annotations)


def saved_work(server: Server) -> dict[str, bytes]:
    """Click, save, click again: the files an attacker wants to destroy."""
    for payload in (
        {"image": "a.png", "action": A},
        {"image": "a.png"},
        {"image": "a.png", "action": {**A, "x": 60.0, "y": 40.0}},
    ):
        path = "/api/save" if "action" not in payload else "/api/action"
        status, _, body = server.page_post(path, payload)
        assert status == 200, body
    files = server.files()
    assert "a.sambox.json" in files and any(f.startswith("masks/a.") for f in files)
    return files


def attack(server: Server, **headers: str) -> list[int]:
    """The issue's attack: undo x 20, reset, save, export; the statuses it got."""
    statuses = []
    for _ in range(20):
        status, _, _ = server.page_post(
            "/api/action", {"image": "a.png", "action": {"type": "undo"}}, **headers
        )
        statuses.append(status)
    for path, payload in (
        ("/api/action", {"image": "a.png", "action": {"type": "reset"}}),
        ("/api/save", {"image": "a.png"}),
        ("/api/export", {"format": "coco"}),
    ):
        statuses.append(server.page_post(path, payload, **headers)[0])
    return statuses


def test_a_forged_host_gets_nothing_and_changes_nothing(server):
    """DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1 sends its
    own Host. It gets neither the image nor the state, and cannot undo/reset/save."""
    before = saved_work(server)
    forged = f"evil.example:{server.port}"
    for token_by in ({"X_SAMBOX_Token": server.token}, {"Cookie": server.cookie}):
        for path in ("/api/image?name=a.png", "/api/state?name=a.png", "/", "/api/images"):
            status, headers, body = server.request("GET", path, Host=forged, **token_by)
            assert status == 403 and b"\x89PNG" not in body and b"mask_png" not in body
            assert "is not this server" in json.loads(body)["detail"]
    for host in (forged, f"127.0.0.1:{server.port + 1}", "127.0.0.1", f"LOCALHOST.:{server.port}"):
        assert set(attack(server, Host=host, Origin=f"http://{host}")) == {403}
    assert server.files() == before
    # The names the server was started with are served.
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
        status, headers, body = server.request(
            "GET", "/api/image?name=a.png", Host=host, X_SAMBOX_Token=server.token
        )
        assert status == 200 and body.startswith(b"\x89PNG")


def test_without_the_token_nothing_is_served(server):
    before = saved_work(server)
    wrong = server.token[:-1] + ("A" if server.token[-1] != "A" else "B")
    for token_by in (
        {},
        {"X_SAMBOX_Token": wrong},
        {"Cookie": f"{cookie_name(server.port)}={wrong}"},
    ):
        for path in ("/", "/?token=" + wrong, "/?token=%C3%A9" + server.token[2:],
                     "/api/images", "/api/image?name=a.png", "/static/app.js"):  # fmt: skip
            status, _, body = server.request("GET", path, **token_by)
            assert status == 403, (path, token_by)
            assert "no valid SAMBOX token" in json.loads(body)["detail"]
        assert set(attack(server, Cookie=token_by.get("Cookie", ""))) == {403}
    # A token of another port's server (cookies are shared by the ports of a host) is not it.
    other = f"{cookie_name(server.port + 1)}={server.token}"
    assert server.request("GET", "/api/images", Cookie=other)[0] == 403
    assert server.files() == before


def test_the_printed_url_hands_the_page_its_token_in_a_strict_cookie(server):
    """The printed URL answers a page that moves on to / by itself (a navigation of the
    server's own page: the strict cookie goes with it, however the URL was opened), kept
    nowhere (no-store) and sending no Referer."""
    status, headers, body = server.request("GET", f"/?token={server.token}")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert b'<meta http-equiv="refresh" content="0; url=/">' in body
    assert server.token.encode() not in body and headers["cache-control"] == "no-store"
    assert headers["referrer-policy"] == "no-referrer"
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"{server.cookie};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    status, headers, body = server.request("GET", "/", Cookie=server.cookie)
    assert status == 200 and b"<title>SAMBOX</title>" in body
    assert server.request("GET", "/static/app.js", Cookie=server.cookie)[0] == 200


GET_ROUTES = ("/", "/api/images", "/api/image?name=d.tif", "/api/state?name=d.tif",
              "/api/suggest", "/static/app.js")  # fmt: skip


@pytest.mark.parametrize("site", ["same-site", "cross-site"])
def test_a_page_of_another_origin_gets_nothing_even_with_the_cookie(server, site):
    """A page on another port of 127.0.0.1 is the same site as SAMBOX (SameSite knows no
    ports): its <img>, <script>, fetch(no-cors) and form requests come with the strict cookie.
    The browser marks them (Fetch Metadata): each is refused before any work, as a
    cross-site one is, and only a link that opens a page in a tab gets through."""
    before = saved_work(server)
    for path in GET_ROUTES:
        for mode, dest in (("no-cors", "image"), ("no-cors", "script"), ("cors", "empty"),
                           ("navigate", "iframe")):  # fmt: skip
            status, headers, body = server.request(
                "GET", path, Cookie=server.cookie, Sec_Fetch_Site=site, Sec_Fetch_Mode=mode,
                Sec_Fetch_Dest=dest,
            )  # fmt: skip
            assert status == 403 and b"\x89PNG" not in body and b"images" not in body, path
            detail = json.loads(body)["detail"]
            assert f"a page of another origin (Sec-Fetch-Site: {site})" in detail
    for path, payload in (("/api/action", {"image": "a.png", "action": {"type": "reset"}}),
                          ("/api/save", {"image": "a.png"})):  # fmt: skip
        for mode, dest in (("no-cors", "empty"), ("navigate", "document")):  # beacon, form
            status, _, _ = server.page_post(
                path, payload, Sec_Fetch_Site=site, Sec_Fetch_Mode=mode, Sec_Fetch_Dest=dest
            )
            assert status == 403
    assert server.files() == before
    d_tif = hashlib.sha256((server.annotations.parent / "images/d.tif").read_bytes())
    assert not list(server.annotations.rglob(f"{d_tif.hexdigest()}.pt"))  # never encoded
    # A link of that page opening SAMBOX in a tab: the user's own tab, which it cannot read.
    status, _, body = server.request(
        "GET", "/", Cookie=server.cookie, Sec_Fetch_Site=site, Sec_Fetch_Mode="navigate",
        Sec_Fetch_Dest="document",
    )  # fmt: skip
    assert status == 200 and b"<title>SAMBOX</title>" in body
    # The page's own requests and the user's.
    for site_of_own in ("same-origin", "none"):
        status, _, _ = server.request(
            "GET", "/api/images", Cookie=server.cookie, Sec_Fetch_Site=site_of_own
        )
        assert status == 200


def test_no_answer_is_cached_or_usable_by_another_origin(server):
    """The images, masks and annotations are private: no answer is kept in a cache or may be
    embedded by a page of another origin (Cross-Origin-Resource-Policy, the browser's own
    guard where Fetch Metadata is not sent), and the page holds no handle on its opener."""
    answers = [server.request("GET", path, Cookie=server.cookie) for path in GET_ROUTES] + [
        server.request("GET", "/api/images"),
        server.request("GET", f"/?token={server.token}"),
    ]
    for status, headers, _ in answers:
        assert headers["cache-control"] == "no-store", status
        assert headers["cross-origin-resource-policy"] == "same-origin"
        assert headers["cross-origin-opener-policy"] == "same-origin"
    assert [a[0] for a in answers] == [200] * 6 + [403, 200]


def test_writes_from_another_origin_are_refused(server):
    before = saved_work(server)
    revision = server.state()["revision"]
    for origin in (
        "http://evil.example",
        f"http://localhost:{server.port + 1}",  # another local server: same site, not us
        f"https://127.0.0.1:{server.port}",
        "null",  # a sandboxed frame or a file:// page
    ):
        status, _, body = server.page_post("/api/action", {"image": "a.png", "action": A},
                                           Origin=origin)  # fmt: skip
        assert status == 403 and "another site" in json.loads(body)["detail"]
        assert set(attack(server, Origin=origin)) == {403}
    # The cookie alone (a browser attaches it by itself) is not enough: the Origin must come.
    status, _, body = server.request(
        "POST",
        "/api/action",
        json.dumps({"image": "a.png", "action": A}).encode(),
        Cookie=server.cookie,
        Content_Type="application/json",
    )
    assert status == 403 and "without an Origin" in json.loads(body)["detail"]
    assert server.state()["revision"] == revision and server.files() == before
    # The page itself, from either name the server was started with.
    for host in ("127.0.0.1", "localhost"):
        status, _, body = server.page_post(
            "/api/action",
            {"image": "a.png", "action": A},
            Host=f"{host}:{server.port}",
            Origin=f"http://{host}:{server.port}",
        )
        assert status == 200, body


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8", None,
                                          "application/x-www-form-urlencoded"])  # fmt: skip
def test_a_no_cors_text_post_writes_no_click(server, content_type):
    """fetch(url, {method: "POST", mode: "no-cors", body: "{...}"}) from any page sends a
    text body without a preflight (even with this server's own Origin, e.g. from a frame of a
    rebound name): it must not become a click."""
    headers = {"Cookie": server.cookie, "Origin": server.origin}
    if content_type is not None:
        headers["Content_Type"] = content_type
    body = json.dumps({"image": "a.png", "action": A}).encode()
    status, _, answer = server.request("POST", "/api/action", body, **headers)
    assert status == 415 and "must be JSON" in json.loads(answer)["detail"]
    state = server.state()
    assert state["objects"] == [] and state["revision"] == 0
    assert not (server.annotations / ".sambox/sessions").exists()


def read_answer(sock: socket.socket) -> str:
    """One whole HTTP answer (head and Content-Length body) read from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return (head + b"\r\n\r\n" + body).decode("latin-1")


def test_oversized_bodies_are_refused_unread(server):
    """A 300 MiB save body: refused on its Content-Length, before a byte of it is read (the
    answer comes while the client has sent 1 MiB); a chunked one as soon as it passes the
    limit. Neither is kept anywhere."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        head = (
            f"POST /api/save HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Cookie: {server.cookie}\r\nOrigin: {server.origin}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {300 << 20}\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"image": "a.png", "pad": "' + b"x" * (1 << 20))
        started = time.perf_counter()
        answer = read_answer(sock)
        assert answer.startswith("HTTP/1.1 413"), answer[:200]
        assert f"over {MAX_BODY_BYTES} bytes" in answer and time.perf_counter() - started < 10

    padding = "x" * (MAX_BODY_BYTES + 1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        head = (
            f"POST /api/action HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Cookie: {server.cookie}\r\nOrigin: {server.origin}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        body = json.dumps({"image": "a.png", "action": {**A, "note": padding}}).encode()
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 4096]), body[i : i + 4096])
            for i in range(0, len(body), 4096)
        )
        sock.sendall(head.encode() + chunks + b"0\r\n\r\n")
        answer = read_answer(sock)
        assert answer.startswith("HTTP/1.1 413"), answer[:200]
    state = server.state()
    assert state["objects"] == [] and state["revision"] == 0
    assert not (server.annotations / ".sambox/sessions").exists()


def test_unknown_keys_are_refused_and_never_stored(server):
    """The issue's 50 MiB field inside an action (now also over the body limit), and small
    unknown keys anywhere: refused, the session file holds only the actions' own keys."""
    status, _, body = server.page_post("/api/action", {"image": "a.png", "action": A})
    assert status == 200
    session = server.annotations / ".sambox/sessions/a.png.json"
    before = session.read_bytes()
    for path, payload, message in (
        ("/api/action", {"image": "a.png", "action": {**A, "note": "hi"}}, "unknown key 'note'"),
        ("/api/action", {"image": "a.png", "action": {"type": "reset", "x": 1}}, "unknown key"),
        ("/api/action", {"image": "a.png", "action": A, "extra": 1}, "unknown key 'extra'"),
        ("/api/save", {"image": "a.png", "extra": 1}, "unknown key 'extra'"),
        ("/api/action", {"image": "a.png", "action": {**A, "x": 1e9}}, "outside"),
        (
            "/api/action",
            {"image": "a.png", "action": {"type": "label", "object": 1, "label": "x" * 201}},
            "200 characters",
        ),  # fmt: skip
        ("/api/action", {"image": "a.png", "action": A, "revision": "0"}, "'revision'"),
        ("/api/save", {"image": "a.png", "nothing_here": "yes"}, "'nothing_here'"),
        ("/api/export", {"format": "coco", "extra": 1}, "unknown key 'extra'"),
        ("/api/export", {"format": "csv"}, "'format' must be one of coco, yolo"),
        ("/api/export", {"format": "coco", "coco_masks": "png"}, "'coco_masks' must be"),
    ):
        status, _, body = server.page_post(path, payload)
        assert status == 400 and message in json.loads(body)["detail"], (payload, body)
    big = {"image": "a.png", "action": {**A, "note": "x" * (50 << 20)}}
    assert server.page_post("/api/action", big)[0] == 413
    assert session.read_bytes() == before and len(before) < 2000
    (action,) = json.loads(before)["actions"]
    assert action == A


def test_no_answer_can_be_framed(server):
    """Every answer (the page, the API, a static file, a refusal) forbids framing."""
    answers = [
        server.request("GET", "/", Cookie=server.cookie),
        server.request("GET", "/api/images", Cookie=server.cookie),
        server.request("GET", "/static/style.css", Cookie=server.cookie),
        server.request("GET", "/api/state?name=../x", Cookie=server.cookie),
        server.request("GET", "/api/images"),
        server.request("GET", "/", Host="evil.example"),
        server.request("GET", f"/?token={server.token}"),
    ]
    for status, headers, _ in answers:
        assert "frame-ancestors 'none'" in headers["content-security-policy"], status
        assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"
    assert [a[0] for a in answers] == [200, 200, 200, 403, 403, 403, 200]


def test_a_websocket_is_closed_unserved():
    """SAMBOX has no websocket; the guard closes one at once, the app never sees it (uvicorn
    serves websockets only with a websocket library installed, so this is checked at the
    ASGI level)."""
    import asyncio

    from samic_vos.annotate.access import LocalAccess

    seen, sent = [], []

    async def app(scope, receive, send):
        seen.append(scope)

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "websocket", "path": "/", "headers": [], "server": ("127.0.0.1", 8765)}
    asyncio.run(LocalAccess(app, "secret")(scope, receive, send))
    assert seen == [] and sent == [{"type": "websocket.close", "code": 1008}]
