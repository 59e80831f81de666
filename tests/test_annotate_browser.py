"""SAMBOX in a real browser: Debian's headless Chromium driven by Playwright, against the real
server (uvicorn on 127.0.0.1) with a tiny random-weight SAM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sambox_helpers import make_images, saved_mask, tiny_segmenter

from samic_vos.annotate.browser import SamboxPage, chromium_page, chromium_path, live_server
from samic_vos.annotate.server import create_app
from samic_vos.data.sambox_format import read_annotation

pytestmark = pytest.mark.skipif(
    chromium_path() is None,
    reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does it)",
)


@pytest.mark.slow
def test_click_undo_instance_object_save_in_chromium(tmp_path: Path) -> None:
    images, annotations = make_images(tmp_path / "images"), tmp_path / "annotations"
    app = create_app(images, annotations, tiny_segmenter())
    with live_server(app) as url, chromium_page() as page:
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
