"""A local HTTP server on 127.0.0.1 serving one file, with Range support and a cut connection."""

from __future__ import annotations

import contextlib
import http.server
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class ServerState:
    """What the test server serves (``payload`` at URL path ``path``) and what it saw."""

    payload: bytes
    path: str
    requests: list[dict[str, str]] = field(default_factory=list)
    ignore_range: bool = False
    cut_at: int | None = None  # send only this many body bytes, then drop the connection

    def ranges(self) -> list[str | None]:
        """The ``Range`` header of every request so far (``None``: none)."""
        return [r.get("Range") for r in self.requests]


def _handler(state: ServerState) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            state.requests.append({"path": self.path, **dict(self.headers.items())})
            if self.path != state.path:
                self.send_error(404)
                return
            size = len(state.payload)
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            start = int(match.group(1)) if match and not state.ignore_range else 0
            if start >= size > 0 and match:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.send_header("Content-Length", str(size - start))
            self.end_headers()
            body = state.payload[start:]
            self.wfile.write(body if state.cut_at is None else body[: state.cut_at])

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def local_server(state: ServerState) -> Iterator[str]:
    """Serve ``state`` on 127.0.0.1 (ephemeral port); yields the base URL; stopped afterwards."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def isolate(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """The samic-vos home at ``home``; no proxy between us and 127.0.0.1."""
    monkeypatch.setenv("SAMIC_VOS_HOME", str(home))
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
