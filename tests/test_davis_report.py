"""The DAVIS HTML report on real data: STM's DAVIS-2016 val masks and a perturbed copy."""

from __future__ import annotations

import base64
import html.parser
import io
import json
from pathlib import Path

import numpy as np
import pytest
from davis_roots import make_davis_root, write_masks
from PIL import Image

from samic_vos.data.davis import DavisDataset
from samic_vos.data.indexed_png import read_ids
from samic_vos.data.mask_io import DAVIS_PALETTE, write_mask
from samic_vos.eval.davis_eval import evaluate_davis
from samic_vos.reports.davis_report import TABLE_COLUMNS, TILE_PX, ResultSet, _tile, davis_report
from samic_vos.reports.html import Report

PUBLISHED = {
    "SAMIC (paper)": {"J&F-Mean": 87.2},
    "XMem (paper)": {"J&F-Mean": 92.0, "J-Mean": 90.7},
}
CONFIG = "prompter: samic\nnote: <b>not markup</b>\n"


class _Page(html.parser.HTMLParser):
    """Collects the page's tables (cells as (text, data-value)), images and tags."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.images: list[str] = []
        self.tags: set[str] = set()
        self.pre: list[str] = []
        self.captions: list[str] = []
        self._table: str | None = None
        self._cell: list | None = None
        self._in_pre = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "table":
            self._table = a.get("id") or f"table{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = ["", a.get("data-value")]
        elif tag == "img":
            self.images.append(a["src"] or "")
        elif tag == "pre":
            self._in_pre = True
        elif tag == "figcaption":
            self.captions.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append((self._cell[0], self._cell[1]))
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "pre":
            self._in_pre = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[0] += data
        if self._in_pre:
            self.pre.append(data)
        if self.lasttag == "figcaption":
            self.captions[-1] += data


def _perturb(source: Path, out: Path) -> None:
    """STM's masks shifted 25 px right; every second frame of car-shadow left empty."""
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        (out / folder.name).mkdir(parents=True)
        for t, path in enumerate(sorted(folder.glob("*.png"))):
            ids = np.roll(read_ids(path), 25, axis=1)
            if folder.name == "car-shadow" and t % 2:
                ids[:] = 0
            write_mask(out / folder.name / path.name, ids)


def _prompts(results: Path, out: Path) -> None:
    """A prompts.jsonl per sequence: the centroid of each frame's object as its one point."""
    out.mkdir()
    for folder in sorted(p for p in results.iterdir() if p.is_dir()):
        lines = []
        for path in sorted(folder.glob("*.png")):
            ys, xs = np.nonzero(read_ids(path))
            points = [[float(xs.mean()), float(ys.mean())]] if xs.size else []
            lines.append(json.dumps({"frame": path.stem, "objects": {"1": {"points": points}}}))
        (out / f"{folder.name}.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def built(shared_data: Path, davis_root: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("report")
    dataset = DavisDataset(davis_root, year="2016", split="val")
    stm = shared_data / "results" / "STM_DAVIS16_val"
    shifted = tmp / "shifted"
    _perturb(stm, shifted)
    _prompts(shifted, tmp / "prompts")
    sets = [
        ResultSet("STM", evaluate_davis(stm, dataset, workers=1), stm),
        ResultSet("shifted", evaluate_davis(shifted, dataset, workers=1), shifted, tmp / "prompts"),
    ]
    report = davis_report(sets, dataset, published=PUBLISHED, config_yaml=CONFIG)
    path = report.write(tmp / "report.html")
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return sets, path, page


def test_every_embedded_image_decodes(built) -> None:
    _, path, page = built
    # 1 bar chart, 3 time plots (worst 3 of 4 sequences), 4 strips (best 2 and worst 2)
    assert len(page.images) == 8
    for src in page.images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        with Image.open(io.BytesIO(base64.b64decode(src[len(prefix) :], validate=True))) as im:
            assert im.format == "PNG"
            im.load()
            assert im.width >= 400 and im.height >= 150
    text = path.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert {"link", "script"}.isdisjoint(page.tags)  # one self-contained file


def test_scores_table_equals_the_json_scores(built) -> None:
    sets, _, page = built
    rows = page.tables["scores"]
    assert [text for text, _ in rows[0]] == ["Method", *TABLE_COLUMNS]
    assert [row[0][0] for row in rows[1:]] == ["STM", "shifted", *PUBLISHED]
    for row, result in zip(rows[1:3], sets, strict=True):
        scores = json.loads(json.dumps(result.evaluation.to_json()))["global"]
        for (text, value), column in zip(row[1:], TABLE_COLUMNS, strict=True):
            assert float(value) == scores[column]
            assert text == f"{100 * scores[column]:.1f}"
    stm_jf = float(rows[1][1][1])
    assert stm_jf > float(rows[2][1][1]) + 0.1  # the shifted copy scores clearly lower
    for row, (method, figures) in zip(rows[3:], PUBLISHED.items(), strict=True):
        for (text, value), column in zip(row[1:], TABLE_COLUMNS, strict=True):
            if column in figures:
                assert text == f"{figures[column]:.1f}" and float(value) * 100 == pytest.approx(
                    figures[column]
                ), method
            else:
                assert (text, value) == ("–", None)


def test_per_sequence_table_equals_the_json_scores(built) -> None:
    sets, _, page = built
    rows = page.tables["per-object"]
    assert [t for t, _ in rows[0]] == [
        "Sequence",
        *(f"{r.label} {m}" for r in sets for m in ("J&F", "J", "F")),
    ]
    per_object = [json.loads(json.dumps(r.evaluation.to_json()))["per_object"] for r in sets]
    assert [row[0][0] for row in rows[1:]] == [n.removesuffix("_1") for n in per_object[0]]
    for row in rows[1:]:
        values = [float(v) for _, v in row[1:]]
        expected = []
        for objects in per_object:
            j, f = objects[f"{row[0][0]}_1"]["J"], objects[f"{row[0][0]}_1"]["F"]
            expected += [(j + f) / 2, j, f]
        assert values == pytest.approx(expected, abs=1e-12)
        assert [t for t, _ in row[1:]] == [f"{100 * v:.1f}" for v in values]


def test_configuration_is_shown_as_text(built) -> None:
    _, path, page = built
    assert "".join(page.pre) == CONFIG
    assert "<b>not markup</b>" not in path.read_text(encoding="utf-8")


def test_overlay_tile_draws_mask_colour_and_prompt_points(tmp_path: Path, davis_root: Path) -> None:
    dataset = DavisDataset(davis_root, year="2016", split="val")
    frame = dataset.frame_paths("blackswan")[3]
    ids = np.zeros((480, 854), np.uint8)
    ids[100:300, 200:500] = 1
    (tmp_path / "blackswan").mkdir()
    write_mask(tmp_path / "blackswan" / f"{frame.stem}.png", ids)
    tile = _tile(
        frame, ResultSet("x", None, tmp_path), "blackswan", {1: np.array([[700.0, 400.0]])}, "2016"
    )  # type: ignore[arg-type]
    scale = TILE_PX / 854
    assert tile.shape == (round(480 * scale), TILE_PX, 3)
    x, y = round(700 * scale), round(400 * scale)
    assert tuple(tile[y, x]) == tuple(DAVIS_PALETTE[1])  # the point, outside the mask
    inside = tile[round(200 * scale), round(350 * scale)].astype(int)
    assert inside[0] > inside[1] + 30  # blended red interior


def test_generic_table_rejects_ragged_rows_and_shows_missing_values(tmp_path: Path) -> None:
    report = Report("t")
    report.table(["a", "b", "c"], [["x", None, float("nan")]])
    page = _Page()
    page.feed(report.write(tmp_path / "t.html").read_text(encoding="utf-8"))
    assert page.tables["table0"][1] == [("x", None), ("–", None), ("–", None)]
    with pytest.raises(ValueError, match="row 0 has 2 cells for 3 columns"):
        report.table(["a", "b", "c"], [["x", 1.0]])


def test_davis_2017_report_is_per_object(tmp_path: Path) -> None:
    def masks(shift: int) -> list[np.ndarray]:
        out = []
        for t in range(5):
            ids = np.zeros((48, 64), np.uint8)
            ids[5:20, 5 + t + shift : 25 + t + shift] = 1
            ids[25:45, 30:50] = 2
            out.append(ids)
        return out

    root = make_davis_root(tmp_path / "davis", {"cats": masks(0), "dogs": masks(3)})
    dataset = DavisDataset(root, year="2017", split="val")
    results = tmp_path / "results"
    for sequence in dataset.sequences:
        lost = [np.where(ids == 2, 0, ids) for ids in masks(0 if sequence == "cats" else 3)]
        write_masks(results / sequence, lost if sequence == "dogs" else masks(0))
    evaluation = evaluate_davis(results, dataset, workers=1)
    page = _Page()
    page.feed(davis_report([ResultSet("mine", evaluation, results)], dataset).html())
    rows = page.tables["per-object"]
    assert [t for t, _ in rows[0]] == ["Object", "mine J&F", "mine J", "mine F"]
    assert [row[0][0] for row in rows[1:]] == ["cats_1", "cats_2", "dogs_1", "dogs_2"]
    values = {row[0][0]: [float(v) for _, v in row[1:]] for row in rows[1:]}
    assert values["cats_1"] == values["cats_2"] == values["dogs_1"] == [1.0, 1.0, 1.0]
    assert values["dogs_2"] == [0.0, 0.0, 0.0]  # object 2 lost in every frame of dogs
    assert len(page.images) == 1 + 2 + 2  # bars, 2 time plots, 2 strips (best and worst)
    strips = [c for c in page.captions if "prompt points" in c]
    assert [c.split(";")[0] for c in strips] == ["cats (best", "dogs (worst"]
