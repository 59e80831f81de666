"""Benchmark of SAMBOX's request guard (:class:`samic_vos.annotate.access.LocalAccess`): what
its checks (Host, token, Origin, Content-Type, body read and replayed, security headers) add
to one click's request, against the click itself.

In process, no network: an ASGI app that answers at once, called directly and through the
guard, with the page's POST /api/action (cookie, Origin, a 120-byte JSON body). The difference
is the guard's cost per request; compare it with a click's server answer
(``bench_annotate.py``: tens of milliseconds with the tests' tiny SAM).

Usage: .venv/bin/python benchmarks/bench_access.py [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from samic_vos.annotate.access import LocalAccess, cookie_name, new_token

PORT = 8765


async def bare(scope, receive, send) -> None:
    message = await receive()
    assert message["body"]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def click_scope(token: str) -> dict:
    headers = {
        b"host": f"127.0.0.1:{PORT}".encode(),
        b"origin": f"http://127.0.0.1:{PORT}".encode(),
        b"cookie": f"{cookie_name(PORT)}={token}".encode(),
        b"content-type": b"application/json",
        b"content-length": b"120",
        b"user-agent": b"Mozilla/5.0 (X11; Linux x86_64) Chrome/120",
        b"accept": b"*/*",
    }
    return {
        "type": "http",
        "method": "POST",
        "path": "/api/action",
        "query_string": b"",
        "headers": list(headers.items()),
        "server": ("127.0.0.1", PORT),
    }


async def run(app, scope: dict, body: bytes, count: int) -> float:
    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        pass

    started = time.perf_counter()
    for _ in range(count):
        await app(dict(scope), receive, send)
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    token = new_token()
    body = json.dumps(
        {
            "image": "00000.jpg",
            "revision": 12,
            "action": {"type": "point", "x": 311.25, "y": 290.5, "positive": True},
        }  # fmt: skip
    ).encode()
    scope = click_scope(token)
    guarded = LocalAccess(bare, token)
    for _ in range(2):  # the second round is the one printed (the first warms up)
        plain_us = asyncio.run(run(bare, scope, body, args.requests))
        guarded_us = asyncio.run(run(guarded, scope, body, args.requests))
    print(f"app alone: {plain_us:.1f} us/request; through the guard: {guarded_us:.1f} us/request")
    print(f"the guard's cost: {guarded_us - plain_us:.1f} us per request")


if __name__ == "__main__":
    main()
