"""SAMBOX in a real browser: Debian's headless Chromium driven by Playwright, against the real
server (uvicorn on 127.0.0.1) with a tiny random-weight SAM."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from sambox_helpers import decode_png, make_images, near, saved_mask, tiny_segmenter

from samic_vos.annotate.browser import (
    SamboxPage,
    chromium_page,
    chromium_path,
    free_port,
    live_server,
    script_client,
)
from samic_vos.annotate.classes import parse_classes
from samic_vos.annotate.image_folder import content_hash
from samic_vos.annotate.server import create_app, write_opener
from samic_vos.data.sambox_format import read_annotation

pytestmark = pytest.mark.skipif(
    chromium_path() is None,
    reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does it)",
)


@contextmanager
def sambox_in_chromium(
    tmp_path: Path, extra_args: tuple[str, ...] = (), **app_kwargs
) -> Iterator[tuple]:
    """A server on fresh synthetic images (``tmp_path/images``, saving into
    ``tmp_path/annotations``; ``app_kwargs`` to create_app) and a Chromium page: yields
    (app, page URL, page)."""
    images = make_images(tmp_path / "images")
    app = create_app(images, tmp_path / "annotations", tiny_segmenter(), **app_kwargs)
    with live_server(app) as url, chromium_page(extra_args=extra_args) as page:
        yield app, url, page


@pytest.mark.slow
def test_click_undo_instance_object_save_in_chromium(tmp_path: Path) -> None:
    annotations = tmp_path / "annotations"
    with sambox_in_chromium(tmp_path) as (app, url, page):
        sambox = SamboxPage(page)
        sambox.open(url)
        assert sambox.text("#progress") == "0 / 4"
        assert sambox.text("#score") == "–" and not sambox.mask().any()

        sambox.click(20, 20)
        first_mask, first_score = sambox.mask(), sambox.text("#score")
        assert (first_mask == 1).any() and first_score != "–"
        sambox.click(30, 12)
        second_mask, second_score = sambox.mask(), sambox.text("#score")
        assert not np.array_equal(first_mask, second_mask) and second_score != first_score

        sambox.press("Control+z")
        np.testing.assert_array_equal(sambox.mask(), first_mask)
        assert sambox.text("#score") == first_score

        sambox.press("n")  # a new instance of object 1, prompted on its own
        sambox.click(60, 40)
        sambox.click(50, 30, positive=False)
        sambox.drag_box(44, 28, 76, 56)
        view = sambox.view()
        assert [len(i["steps"]) for i in view["objects"][0]["instances"]] == [1, 3]

        page.fill("#label", "blue thing")
        page.click("#new-object")
        sambox.settle()
        sambox.click(70, 50)
        shown = sambox.mask()
        assert set(np.unique(shown).tolist()) <= {0, 1, 2} and (shown == 2).any()

        sambox.press("s")
        assert sambox.text("#progress") == "1 / 4"
        assert "· saved" in sambox.text("#image-name")

        # Zoom in with the wheel and pan with a right drag: clicks still land on their pixel.
        cx, cy = sambox.to_client(60, 20)
        page.mouse.move(cx, cy)
        page.mouse.wheel(0, -400)
        page.mouse.move(cx, cy)
        page.mouse.down(button="right")
        page.mouse.move(cx - 40, cy + 30, steps=4)
        page.mouse.up(button="right")
        sambox.click(65, 15)
        assert sambox.view()["objects"][1]["instances"][0]["steps"][-1]["coords"] == [65, 15]
        after_zoom = sambox.mask()

        sambox.press("?")
        assert page.is_visible("#help") and "negative point" in sambox.text("#help")
        sambox.press("Escape")
        assert not page.is_visible("#help")

        sambox.press("d")  # the next image: the changed one is saved on leaving
        assert sambox.text("#image-name").startswith("b.jpg")
        latencies = sambox.latencies()

    np.testing.assert_array_equal(saved_mask(annotations, "a"), after_zoom)
    assert not np.array_equal(shown, after_zoom)
    data = json.loads((annotations / "a.sambox.json").read_text())
    assert data["version"] == 2
    annotation = read_annotation(annotations / "a.sambox.json")
    red, blue = annotation.objects
    assert (red.id, red.label, blue.id, blue.label) == (1, None, 2, "blue thing")
    first, second = red.instances
    np.testing.assert_allclose(first.points, [[20, 20]], atol=0.02)
    np.testing.assert_allclose(second.points, [[60, 40]], atol=0.02)
    np.testing.assert_allclose(second.negative_points, [[50, 30]], atol=0.02)
    np.testing.assert_allclose(second.box, [44, 28, 76, 56], atol=0.02)
    np.testing.assert_allclose(blue.points, [[70, 50], [65, 15]], atol=0.02)
    print(
        f"\nclick to mask drawn (tiny SAM, {len(latencies)} prompts): "
        f"median {np.median(latencies):.1f} ms, max {max(latencies):.1f} ms"
    )


@pytest.mark.slow
def test_a_rebound_name_gets_no_page_in_chromium(tmp_path: Path) -> None:
    """DNS rebinding: a name of another site resolving to 127.0.0.1 (Chromium's resolver
    rules play the rebound DNS) gets a refusal, not the app, even with the token."""
    annotations = tmp_path / "annotations"
    rebind = ("--host-resolver-rules=MAP evil.example 127.0.0.1",)
    with sambox_in_chromium(tmp_path, rebind) as (_, url, page):
        rebound = url.replace("127.0.0.1", "evil.example")
        response = page.goto(rebound)
        assert response.status == 403 and "is not this server" in page.content()
        assert page.evaluate("typeof window.sambox") == "undefined"
        assert page.goto(url.split("?")[0]).status == 403  # no token: no page either
        sambox = SamboxPage(page)
        sambox.open(url)  # the printed URL: the app
        assert sambox.text("#progress") == "0 / 4"
    assert not annotations.joinpath("a.sambox.json").exists()


@contextmanager
def other_site(pages: dict[str, str]) -> Iterator[int]:
    """A plain HTTP server on another port of 127.0.0.1 serving ``pages`` (path -> HTML, looked
    up when asked: fill it once the URLs are known); yields its port. Its pages are of another
    origin than SAMBOX: as ``localhost:PORT`` of another site, as ``127.0.0.1:PORT`` of the same
    site (cookies and SameSite know no ports)."""

    class Pages(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?")[0], "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        thread.join()


@pytest.mark.slow
def test_the_printed_url_opens_the_app_from_another_sites_page_in_chromium(tmp_path: Path) -> None:
    """The printed URL clicked in a page of another site (a web terminal, a notebook on
    localhost:8888) or reached through the file:// page `annotate` starts the browser on: the
    app opens, and stays open on a reload (with a redirect, the browser kept the other site as
    the initiator and sent no strict cookie: 403 "no valid SAMBOX token", reload or not)."""
    pages: dict[str, str] = {}
    with sambox_in_chromium(tmp_path) as (_, url, page), other_site(pages) as port:
        pages["/terminal.html"] = f'<a id="open" href="{url}">{url}</a>'
        opener = write_opener(tmp_path / "annotations", url)
        home = url.split("?")[0]
        for start in (f"http://localhost:{port}/terminal.html", opener.as_uri()):
            context = page.context.browser.new_context()  # a browser without the cookie
            tab = context.new_page()
            tab.goto(start)
            if start.startswith("http"):
                tab.click("#open")
            tab.wait_for_url(home)
            sambox = SamboxPage(tab)
            sambox.settle("window.sambox && window.sambox.ready")
            assert sambox.text("#progress") == "0 / 4", start
            tab.reload()
            sambox.settle("window.sambox && window.sambox.ready")
            assert sambox.text("#progress") == "0 / 4", start
            context.close()


# A hostile page: everything a page may send to another origin without CORS's consent, each
# outcome as the page sees it in window.results (TARGET: SAMBOX's address).
ATTACK_PAGE = """<!doctype html><body><iframe name="sink"></iframe><script>
const target = new URLSearchParams(location.search).get("target");
const results = window.results = {};
const outcome = (request) => request.then((r) => `${r.type} ${r.status}`, () => "failed");
const load = (tag, src) => new Promise((done) => {
  const element = document.createElement(tag);
  const size = () => `shown ${element.naturalWidth}x${element.naturalHeight}`;
  element.onload = () => done(tag === "img" ? size() : "ran");
  element.onerror = () => done("error");
  element.src = src;
  document.body.append(element);
});
(async () => {
  results.img = await load("img", `${target}/api/image?name=d.tif`);
  results.script = await load("script", `${target}/api/images`);
  results.read = await outcome(fetch(`${target}/api/state?name=d.tif`, {credentials: "include"}));
  results.blind_read = await outcome(fetch(`${target}/api/state?name=d.tif`,
    {mode: "no-cors", credentials: "include"}));
  const reset = JSON.stringify({image: "a.png", action: {type: "reset"}});
  results.blind_write = await outcome(fetch(`${target}/api/action`,
    {method: "POST", mode: "no-cors", credentials: "include", body: reset}));
  results.beacon = navigator.sendBeacon(`${target}/api/action`, reset);
  const form = Object.assign(document.createElement("form"),
    {method: "POST", action: `${target}/api/save`, enctype: "text/plain", target: "sink"});
  const field = {name: '{"image": "a.png", "x": "', value: '"}'};  // text/plain: JSON-like
  form.append(Object.assign(document.createElement("input"), field));
  document.body.append(form);
  form.submit();
  await new Promise((done) => setTimeout(done, 1000));
  results.done = true;
})();
</script>"""


@pytest.mark.slow
def test_a_page_of_another_origin_can_neither_show_read_nor_change_anything_in_chromium(
    tmp_path: Path,
) -> None:
    """A page on another port, in another tab of the browser that has SAMBOX open: as
    127.0.0.1:PORT it is the same site, so its requests carry the strict cookie (before, its
    <img> showed the user's image, 80x60, and its no-cors requests made the server open and
    encode images); as localhost:PORT it is another site. Either way nothing is shown, read or
    changed, and the server does no work for it."""
    annotations = tmp_path / "annotations"
    pages = {"/attack.html": ATTACK_PAGE}
    with sambox_in_chromium(tmp_path) as (app, url, page), other_site(pages) as port:
        sambox = SamboxPage(page)
        sambox.open(url)
        sambox.click(20, 20)
        sambox.press("s")
        app.state.annotator.embeddings.wait()
        before = {p: p.read_bytes() for p in annotations.rglob("*.json")}
        home = url.split("/?")[0]
        for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
            tab = page.context.new_page()  # the same browser: it holds SAMBOX's cookie
            tab.goto(f"{origin}/attack.html?target={home}")
            tab.wait_for_function("() => window.results.done")
            assert tab.evaluate("() => window.results") == {
                "img": "error",
                "script": "error",
                "read": "failed",
                "blind_read": "failed",  # CORP: even the opaque answer is withheld
                "blind_write": "failed",
                "beacon": True,
                "done": True,
            }, origin
            tab.close()
        app.state.annotator.embeddings.wait()
        assert {p: p.read_bytes() for p in annotations.rglob("*.json")} == before
        d_tif = content_hash(tmp_path / "images/d.tif")
        assert not list(annotations.rglob(f"{d_tif}.pt"))  # d.tif was never encoded
        sambox.click(60, 40)  # the user's tab works on
        assert len(sambox.view()["objects"][0]["instances"][0]["steps"]) == 2


@pytest.mark.slow
def test_a_stale_tab_reloads_instead_of_adding_clicks_in_chromium(tmp_path: Path) -> None:
    with sambox_in_chromium(tmp_path) as (app, url, page):
        first = SamboxPage(page)
        first.open(url)
        second = SamboxPage(page.context.new_page())  # another tab, same cookie
        second.open(url)
        first.click(20, 20)
        assert [len(i["steps"]) for i in first.view()["objects"][0]["instances"]] == [1]

        # The second tab still shows the image without a click: its click is refused, and it
        # reloads the image as the first tab left it.
        cx, cy = second.to_client(60, 40)
        second.page.mouse.click(cx, cy)
        second.settle()
        assert "changed in another tab" in second.text("#status")
        assert second.view()["objects"] == first.view()["objects"]
        np.testing.assert_array_equal(second.mask(), first.mask())
        assert app.state.annotator.view("a.png")["revision"] == 1

        second.click(60, 40)  # now up to date: its click adds to the same object
        steps = second.view()["objects"][0]["instances"][0]["steps"]
        assert [s["coords"] for s in steps] == [[20, 20], [60, 40]]


@pytest.mark.slow
def test_passing_saves_nothing_and_a_broken_image_is_passed_in_chromium(tmp_path: Path) -> None:
    """D past untouched images writes nothing; E marks an image done without objects; an
    image that cannot be decoded is named with the reason, and the page moves on."""
    annotations = tmp_path / "annotations"
    with sambox_in_chromium(tmp_path) as (_, url, page):
        (tmp_path / "images/b.jpg").write_bytes(b"not a JPEG")  # before the page opens
        sambox = SamboxPage(page)
        sambox.open(url)
        assert sambox.text("#image-name").startswith("a.png")
        sambox.press("d")  # b.jpg is broken: reported, and c.bmp opens
        assert sambox.text("#image-name").startswith("c.bmp")
        assert sambox.text("#status").startswith("cannot open b.jpg: ")
        assert "cannot decode the image" in sambox.text("#status")
        assert not page.is_visible("#loading")
        sambox.press("e")
        assert sambox.text("#image-name").endswith("· nothing here")
        assert sambox.text("#progress") == "1 / 4"
        sambox.press("d")
        assert sambox.text("#image-name").startswith("d.tif")
        sambox.press("s")  # nothing to save on an untouched image
        assert sambox.text("#status").startswith("nothing to save on d.tif")
        sambox.press("a")
        sambox.press("a")  # back past c.bmp and the broken b.jpg, to a.png
        assert sambox.text("#image-name").startswith("a.png")
    written = sorted(p.name for p in annotations.iterdir() if p.name != ".sambox")
    assert written == ["c.sambox.json"]
    assert read_annotation(annotations / "c.sambox.json").objects == []


@pytest.mark.slow
def test_image_list_jump_hiding_and_deleting_points_and_objects_in_chromium(tmp_path: Path) -> None:
    with sambox_in_chromium(tmp_path) as (app, url, page):
        sambox = SamboxPage(page)
        sambox.open(url)
        items = page.locator("#image-list li")
        assert items.all_inner_texts() == ["· a.png", "· b.jpg", "· c.bmp", "· d.tif"]
        sambox.click(20, 20)
        sambox.click(30, 12)
        one_point = sambox.mask()
        sambox.click(50, 30, positive=False)
        # Alt+click on the negative point deletes it, and only it.
        cx, cy = sambox.to_client(50.4, 30.3)
        page.keyboard.down("Alt")
        sambox._drawn_after(lambda: page.mouse.click(cx, cy))
        page.keyboard.up("Alt")
        steps = sambox.view()["objects"][0]["instances"][0]["steps"]
        assert [s["coords"] for s in steps] == [[20, 20], [30, 12]]
        np.testing.assert_array_equal(sambox.mask(), one_point)
        # Alt+drag moves a point.
        (ax, ay), (bx, by) = sambox.to_client(30, 12), sambox.to_client(35, 15)

        def alt_drag() -> None:
            page.mouse.move(ax, ay)
            page.mouse.down()
            page.mouse.move(bx, by, steps=5)
            page.mouse.up()

        page.keyboard.down("Alt")
        sambox._drawn_after(alt_drag)
        page.keyboard.up("Alt")
        steps = sambox.view()["objects"][0]["instances"][0]["steps"]
        assert [s["coords"] for s in steps] == [[20, 20], [35, 15]]
        page.click("#new-object")
        sambox.settle()
        sambox.click(60, 40)
        # Hiding object 1 (its button; H hides the active one, 2) hides its mask, not 2's.
        ids = sambox.mask()
        (y1, x1), (y2, x2) = np.argwhere(ids == 1)[0], np.argwhere(ids == 2)[0]

        def shown(x: int, y: int) -> bool:
            return page.evaluate(f"window.sambox.overlayAlpha({x}, {y})") > 0

        assert shown(x1, y1) and shown(x2, y2)
        page.locator("#objects li").nth(0).locator(".hide-object").click()
        sambox.settle()
        assert not shown(x1, y1) and shown(x2, y2)
        sambox.press("h")
        assert not shown(x1, y1) and not shown(x2, y2)
        sambox.press("h")
        assert shown(x2, y2)
        page.locator("#objects li").nth(0).locator(".delete-object").click()
        sambox.settle()
        assert [o["id"] for o in sambox.view()["objects"]] == [2]
        assert not (sambox.mask() == 1).any() and (sambox.mask() == 2).any()
        sambox.press("s")
        items.nth(2).click()  # jump to c.bmp
        sambox.settle()
        assert sambox.text("#image-name").startswith("c.bmp")
        assert items.all_inner_texts() == ["✓ a.png", "· b.jpg", "· c.bmp", "· d.tif"]
        assert "current" in items.nth(2).get_attribute("class")
        sambox.press("e")
        items.nth(0).click()
        sambox.settle()
        assert items.all_inner_texts() == ["✓ a.png", "· b.jpg", "∅ c.bmp", "· d.tif"]
        assert sambox.text("#image-name").startswith("a.png")
    (obj,) = read_annotation(tmp_path / "annotations/a.sambox.json").objects
    assert obj.id == 2


@pytest.mark.slow
def test_number_keys_label_objects_with_classes_in_their_colours_in_chromium(
    tmp_path: Path,
) -> None:
    classes = parse_classes(["dog=#10e020", "cat"])
    with sambox_in_chromium(tmp_path, classes=classes) as (_, url, page):
        sambox = SamboxPage(page)
        sambox.open(url)
        assert page.locator("#classes li").all_inner_texts() == ["1 dog", "2 cat"]
        sambox.press("2")  # no object yet: a new one, labelled cat
        sambox.click(20, 20)
        sambox.press("1")  # the active object has a point: a new object, labelled dog
        sambox.click(60, 40)
        sambox.press("c")
        sambox.press("1")  # a fresh object without prompts: labelled, not a new one
        objects = sambox.view()["objects"]
        assert [(o["id"], o["label"]) for o in objects] == [(1, "cat"), (2, "dog"), (3, "dog")]
        ids = sambox.mask()
        for object_id, rgb in ((1, classes[1].color), (2, (0x10, 0xE0, 0x20))):
            y, x = np.argwhere(ids == object_id)[0]
            pixel = page.evaluate(f"window.sambox.overlayPixel({x}, {y})")
            assert tuple(pixel[:3]) == tuple(rgb) and pixel[3] > 0, (object_id, pixel)
        sambox.press("s")
    labels = [o.label for o in read_annotation(tmp_path / "annotations/a.sambox.json").objects]
    assert labels == ["cat", "dog"]  # object 3 has no prompt: not saved


@pytest.mark.slow
def _brush_on(page, url: str, radius: str) -> tuple[SamboxPage, np.ndarray]:
    """The page opened, object 1 clicked at (20, 20), the brush on with ``radius``: the page
    and SAM's mask before any stroke."""
    sambox = SamboxPage(page)
    sambox.open(url)
    sambox.click(20, 20)
    sam = sambox.mask()
    page.fill("#radius", radius)
    sambox.press("Escape")  # leave the radius box: keys go to the page again
    sambox.press("b")
    assert "on" in (page.get_attribute("#brush", "class") or "")
    return sambox, sam


def test_brush_and_eraser_strokes_are_saved_in_the_mask_in_chromium(tmp_path: Path) -> None:
    brush, eraser = [(60.0, 10.0), (75.0, 10.0)], [(15.0, 20.0), (25.0, 20.0)]
    with sambox_in_chromium(tmp_path) as (_, url, page):
        sambox, sam = _brush_on(page, url, "2.5")
        sambox.drag_stroke(brush)
        sambox.press("x")
        sambox.drag_stroke(eraser)
        shown = sambox.mask()
        sambox.press("x")  # back to clicks: a click is a prompt again
        assert sambox.view()["objects"][0]["edits"] == 2
        sambox.press("s")
    added, removed = near(brush, 2.5), near(eraser, 2.5)
    assert not (sam[added] == 1).all() and (sam[removed] == 1).any()  # both change pixels
    expected = np.where(removed, 0, np.where(added, 1, sam))
    np.testing.assert_array_equal(shown, expected)
    np.testing.assert_array_equal(saved_mask(tmp_path / "annotations", "a"), expected)
    data = json.loads((tmp_path / "annotations/a.sambox.json").read_text())
    (obj,) = data["objects"]
    assert obj["instances"][0]["points"] == [[20, 20]]  # the prompts: the click alone
    assert [(e["radius"], e["erase"]) for e in obj["edits"]] == [(2.5, False), (2.5, True)]
    for edit, line in zip(obj["edits"], (brush, eraser), strict=True):
        (stroke,) = edit["strokes"]
        np.testing.assert_allclose([stroke[0], stroke[-1]], line, atol=0.05)


@pytest.mark.slow
def test_a_drag_longer_than_one_request_is_one_undo_step_in_chromium(tmp_path: Path) -> None:
    """Over 2,000 points (the most one request carries) the page sends the drag in parts; the
    server joins them: one edit, which one undo takes back."""
    rows = [3.0 + 3 * k for k in range(19)]  # a zig-zag over the image, 0.6 px between points
    line = [(x, y) for k, y in enumerate(rows) for x in (2.0, 77.0)[:: 1 if k % 2 == 0 else -1]]
    with sambox_in_chromium(tmp_path) as (_, url, page):
        sambox, sam = _brush_on(page, url, "1")
        segments = [np.hypot(bx - ax, by - ay) for (ax, ay), (bx, by) in pairwise(line)]
        steps = [max(1, int(length / 0.6)) for length in segments]
        client = [sambox.to_client(x, y) for x, y in line]
        page.mouse.move(*client[0])
        page.mouse.down()
        for (cx, cy), count in zip(client[1:], steps, strict=True):
            page.mouse.move(cx, cy, steps=count)
        page.mouse.up()
        sambox.settle()
        assert sum(steps) > 2000
        assert sambox.view()["objects"][0]["edits"] == 1
        painted = sambox.mask()
        assert (painted != sam).sum() > 1000
        sambox.press("Control+z")
        np.testing.assert_array_equal(sambox.mask(), sam)
        assert sambox.view()["objects"][0]["edits"] == 0


@pytest.mark.slow
def test_export_button_writes_the_chosen_format_in_chromium(tmp_path: Path) -> None:
    from pycocotools.coco import COCO
    from scipy import ndimage

    with sambox_in_chromium(tmp_path) as (_, url, page):
        sambox = SamboxPage(page)
        sambox.open(url)
        sambox.click(20, 20)  # not saved yet: the export saves the image first
        page.select_option("#export-format", "coco:polygons")
        page.click("#export")
        sambox.settle("window.sambox.lastExport !== null")
        answer = page.evaluate("window.sambox.lastExport")
        shown = sambox.mask()
        assert "· saved" in sambox.text("#image-name")
        assert f"as coco to {answer['folder']}" in sambox.text("#status")
    written = tmp_path / "annotations/exports/coco/coco.json"
    assert answer["written"] == str(written) and answer["images"] == 1
    coco = COCO(str(written))
    (ann,) = coco.loadAnns(coco.getAnnIds())
    assert isinstance(ann["segmentation"], list)  # polygons, as chosen
    drawn = coco.annToMask(ann).astype(bool)
    np.testing.assert_array_equal(drawn, ndimage.binary_fill_holes(shown == 1))  # holes filled
    np.testing.assert_array_equal(saved_mask(tmp_path / "annotations", "a"), shown)


@pytest.mark.slow
def test_masks_imported_as_masks_show_and_take_the_brush_in_chromium(tmp_path: Path) -> None:
    from samic_vos.data.mask_io import write_mask

    (tmp_path / "import").mkdir()
    ids = np.zeros((60, 80), np.uint8)
    ids[10:40, 10:40] = 1
    write_mask(tmp_path / "import/a.png", ids)
    app_kwargs = {"import_masks": tmp_path / "import", "import_as": "masks"}
    with sambox_in_chromium(tmp_path, **app_kwargs) as (_, url, page):
        sambox = SamboxPage(page)
        sambox.open(url)
        np.testing.assert_array_equal(sambox.mask(), ids)  # the mask itself, no prompt
        assert sambox.view()["objects"][0]["instances"] == [{"steps": [], "iou": None}]
        page.fill("#radius", "2.5")  # no pixel centre near 2.5 px from the stroke's points
        sambox.press("Escape")
        sambox.press("b")
        sambox.drag_stroke([(50.0, 20.0), (60.0, 20.0)])
        shown = sambox.mask()
        sambox.press("s")
    expected = np.where(near([(50.0, 20.0), (60.0, 20.0)], 2.5), 1, ids)
    np.testing.assert_array_equal(shown, expected)
    np.testing.assert_array_equal(saved_mask(tmp_path / "annotations", "a"), expected)


@pytest.mark.slow
def test_the_page_draws_patches_into_the_servers_whole_mask_in_chromium(tmp_path: Path) -> None:
    with sambox_in_chromium(tmp_path) as (app, url, page):
        sambox = SamboxPage(page)
        sambox.open(url)
        patches, points = [], iter([(20, 20), (30, 12), (60, 40), (70, 50)])
        for step in ("click", "click", "undo", "object", "click", "hide", "click"):
            if step == "click":
                sambox.click(*next(points))
            elif step == "undo":
                sambox.press("Control+z")
            elif step == "object":
                page.click("#new-object")
                sambox.settle()
            else:
                sambox.press("h")  # hidden on the page only: the mask held is unchanged
            patches.append("mask_patch" in sambox.view())
        shown = sambox.mask()
        # The whole mask, composed by the server for a page that holds none.
        whole = script_client(app).get("/api/state", params={"name": "a.png"}).json()
    assert all(patches)  # after the first whole mask, every answer was a patch
    assert set(np.unique(shown).tolist()) == {0, 1, 2}
    np.testing.assert_array_equal(shown, decode_png(whole["mask_png"]))
