"""Drive the SAMBOX page in a real browser: Debian's headless Chromium through Playwright.

Used by the browser and API tests, the latency benchmark (``benchmarks/bench_annotate.py``) and the
README's screenshot, so that all three go through the same code. Playwright (the ``test``
extra) is imported only here; its own browser download is not needed: :func:`launch_chromium`
starts the system's ``chromium``.
"""

from __future__ import annotations

import base64
import io
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI
from PIL import Image

from samic_vos.annotate.server import HOST, page_url
from samic_vos.data.mask_io import DAVIS_PALETTE

CHROMIUM = "/usr/bin/chromium"
# Headless, and nothing that reaches out to the network or needs a GPU or a sandbox.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# How long the page may take for one step; generous: encoding an image can take a while.
STEP_TIMEOUT_MS = 120_000


def chromium_path() -> str | None:
    """The system's Chromium (``/usr/bin/chromium`` or ``chromium`` on the PATH), or None."""
    return CHROMIUM if shutil.which(CHROMIUM) else shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` (of :func:`~samic_vos.annotate.server.create_app`) with uvicorn in a
    thread on a free 127.0.0.1 port; yields the URL that opens its page (with the token)."""
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, name="sambox-server", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the SAMBOX server did not start")
            time.sleep(0.02)
        yield page_url(server.config.port, app.state.token)
    finally:
        server.should_exit = True
        thread.join()


def script_client(app: FastAPI) -> Any:
    """FastAPI's ``TestClient`` on ``app`` (in process) as a script talks to the server: the
    server's own Host (127.0.0.1:8765) and the token header (``X-SAMBOX-Token``)."""
    from fastapi.testclient import TestClient

    return TestClient(
        app, base_url=f"http://{HOST}:8765", headers={"X-SAMBOX-Token": app.state.token}
    )


class SamboxPage:
    """The SAMBOX page in a Playwright ``page``: clicks in image coordinates, waits for the
    mask to be drawn, and reads what the page shows."""

    def __init__(self, page: Any) -> None:
        self.page = page
        page.set_default_timeout(STEP_TIMEOUT_MS)

    def open(self, url: str) -> None:
        """Open the printed ``url``: its entry page moves on to ``/``, where the app starts."""
        self.page.goto(url)
        self.page.wait_for_url(lambda address: "token=" not in address)
        self.settle("window.sambox && window.sambox.ready")

    def settle(self, condition: str = "true") -> None:
        """Wait until ``condition`` holds and no request is outstanding."""
        self.page.wait_for_function(f"() => ({condition}) && window.sambox.pending === 0")

    def _drawn_after(self, action) -> float:
        count = self.page.evaluate("window.sambox.latencies.length")
        action()
        self.settle(f"window.sambox.latencies.length > {count}")
        return float(self.page.evaluate("window.sambox.latencies.at(-1)"))

    def to_client(self, x: float, y: float) -> tuple[float, float]:
        cx, cy = self.page.evaluate(f"window.sambox.imageToClient({x}, {y})")
        return cx, cy

    def click(self, x: float, y: float, positive: bool = True) -> float:
        """Click image pixel (x, y) (negative: right button); returns the click-to-drawn ms."""
        cx, cy = self.to_client(x, y)
        button = "left" if positive else "right"
        return self._drawn_after(lambda: self.page.mouse.click(cx, cy, button=button))

    def drag_box(self, x0: float, y0: float, x1: float, y1: float) -> float:
        """Drag a box from image pixel (x0, y0) to (x1, y1); returns the click-to-drawn ms."""
        (ax, ay), (bx, by) = self.to_client(x0, y0), self.to_client(x1, y1)

        def drag() -> None:
            self.page.mouse.move(ax, ay)
            self.page.mouse.down()
            self.page.mouse.move(bx, by, steps=5)
            self.page.mouse.up()

        return self._drawn_after(drag)

    def drag_stroke(self, points: list[tuple[float, float]], steps: int = 5) -> float:
        """Drag the left button through image pixels ``points`` (x, y), ``steps`` mouse moves
        per segment: with the brush or eraser on (B, X), one stroke; returns the ms from the
        button's release to the mask drawn."""
        client = [self.to_client(x, y) for x, y in points]
        self.page.mouse.move(*client[0])
        self.page.mouse.down()
        for cx, cy in client[1:]:
            self.page.mouse.move(cx, cy, steps=steps)
        return self._drawn_after(self.page.mouse.up)

    def press(self, key: str) -> None:
        """Press ``key`` (Playwright's names: "n", "Control+z", ...) and wait for the page."""
        self.page.keyboard.press(key)
        self.settle()

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    def mask(self) -> np.ndarray:
        """The id map (H, W) uint8 of the server's mask as the page holds it (its whole masks
        and patches drawn): each pixel's palette colour read back as its object id."""
        url = self.page.evaluate("window.sambox.composedPng()")
        data = base64.b64decode(url.split(",", 1)[1])
        with Image.open(io.BytesIO(data)) as image:
            rgba = np.asarray(image.convert("RGBA"))
        codes = (rgba[..., :3].astype(np.int32) << np.array([16, 8, 0])).sum(axis=-1)
        palette = (DAVIS_PALETTE.astype(np.int32) << np.array([16, 8, 0])).sum(axis=-1)
        order = np.argsort(palette)
        found = np.searchsorted(palette[order], codes).clip(0, len(palette) - 1)
        if not (palette[order][found] == codes)[rgba[..., 3] > 0].all():
            raise RuntimeError("the page's mask holds a colour outside the palette")
        return np.where(rgba[..., 3] > 0, order[found], 0).astype(np.uint8)

    def view(self) -> dict[str, Any]:
        return self.page.evaluate("window.sambox.view()")

    def latencies(self) -> list[float]:
        return list(self.page.evaluate("window.sambox.latencies"))


@contextmanager
def chromium_page(
    width: int = 1280, height: int = 720, extra_args: tuple[str, ...] = ()
) -> Iterator[Any]:
    """A page of a headless system Chromium (Playwright), closed afterwards; ``extra_args``:
    more Chromium flags (e.g. ``--host-resolver-rules``). ``page.context.new_page()`` gives
    another tab sharing its cookies."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError("chromium not found: install Debian's 'chromium' package")
    with sync_playwright() as playwright:
        args = [*CHROMIUM_ARGS, *extra_args]
        browser = playwright.chromium.launch(executable_path=path, args=args)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            yield context.new_page()
        finally:
            browser.close()
