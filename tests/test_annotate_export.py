"""SAMBOX's export button: `samic-vos export`'s writers on the annotations folder, read back by
pycocotools and the YOLO-seg and LabelMe readers of tests/test_exports.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from sambox_helpers import make_images, near, saved_mask
from scipy import ndimage
from test_exports import draw_labelme, read_yolo_seg

from samic_vos.annotate.browser import script_client
from samic_vos.annotate.server import create_app
from samic_vos.commands.cli import main

DISC = [(8.0, 50.0)]  # the painted-only object: a disc of radius 4


def annotate(client) -> None:
    """a.png: object 1 "red" from a click, object 2 "paint" painted only; b.jpg: one click."""
    for image, actions in (
        (
            "a.png",
            [
                {"type": "point", "x": 20.0, "y": 20.0},
                {"type": "label", "object": 1, "label": "red"},
                {"type": "new_object", "label": "paint"},
                {"type": "paint", "object": 2, "strokes": [[list(DISC[0])]], "radius": 4},
            ],
        ),
        ("b.jpg", [{"type": "point", "x": 60.0, "y": 40.0}]),
    ):
        for action in actions:
            response = client.post("/api/action", json={"image": image, "action": action})
            assert response.status_code == 200, response.text
        assert client.post("/api/save", json={"image": image}).status_code == 200


def export(client, format: str, coco_masks: str = "rle") -> dict:
    response = client.post("/api/export", json={"format": format, "coco_masks": coco_masks})
    assert response.status_code == 200, response.text
    return response.json()


def parts(mask: np.ndarray) -> np.ndarray:
    """``mask`` with its holes filled: what outline polygons can hold."""
    return ndimage.binary_fill_holes(mask)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_the_page_exports_with_the_cli_writers_into_the_folder(tmp_path: Path, segmenter) -> None:
    images, annotations = make_images(tmp_path / "images"), tmp_path / "annotations"
    with script_client(create_app(images, annotations, segmenter)) as client:
        refused = client.post("/api/export", json={"format": "coco"})
        assert refused.status_code == 400 and "nothing is saved yet" in refused.json()["detail"]
        annotate(client)
        answers = {f: export(client, f) for f in ("coco", "yolo", "labelme", "voc")}
        rle_export = (annotations / "exports/coco/coco.json").read_bytes()
        polygons = export(client, "coco", "polygons")
    saved = {stem: saved_mask(annotations, stem) for stem in ("a", "b")}
    assert (saved["a"] == 2).sum() == near(DISC, 4).sum() == 49
    out = annotations / "exports"
    assert answers["coco"] == {
        "format": "coco",
        "folder": str(out / "coco"),
        "written": str(out / "coco/coco.json"),
        "images": 2,
    }
    assert answers["yolo"]["written"] == str(out / "yolo")

    # COCO (RLE): pycocotools gives the saved masks back exactly; the same file as the CLI's.
    (tmp_path / "rle").mkdir()
    (tmp_path / "rle/coco.json").write_bytes(rle_export)
    coco = COCO(str(tmp_path / "rle/coco.json"))
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {"red", "paint", "object 1"}
    found = 0
    for image in coco.loadImgs(coco.getImgIds()):
        ids = saved[Path(image["file_name"]).stem]
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            name = coco.loadCats(ann["category_id"])[0]["name"]
            object_id = 2 if name == "paint" else 1
            assert np.array_equal(coco.annToMask(ann).astype(bool), ids == object_id)
            found += 1
    assert found == 3
    assert main(["export", "--format", "coco", str(annotations), "-o", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli/coco.json").read_bytes() == rle_export

    # COCO (polygons), in place of the RLE export: pycocotools draws the parts back.
    assert polygons["written"] == str(out / "coco/coco.json")
    coco = COCO(str(out / "coco/coco.json"))
    for image in coco.loadImgs(coco.getImgIds()):
        ids = saved[Path(image["file_name"]).stem]
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            assert isinstance(ann["segmentation"], list)
            object_id = 2 if coco.loadCats(ann["category_id"])[0]["name"] == "paint" else 1
            drawn = coco.annToMask(ann).astype(bool)
            assert np.array_equal(drawn, parts(ids == object_id))  # exact, holes filled

    # YOLO-seg and LabelMe: the painted disc exactly; SAM's masks as their outlines hold them.
    names = {1: "red", 2: "paint"}
    for stem, ids in saved.items():
        classes = read_yolo_seg(out / "yolo/labels" / f"{stem}.txt", ids.shape)
        document = json.loads((out / "labelme" / f"{stem}.json").read_text())
        image_file = {"a": "a.png", "b": "b.jpg"}[stem]
        assert (out / "labelme" / document["imagePath"]).resolve() == images / image_file
        shapes: dict[int, list[np.ndarray]] = {}
        for shape in document["shapes"]:
            shapes.setdefault(shape["group_id"], []).append(np.array(shape["points"]))
            assert shape["label"] == (names[shape["group_id"]] if stem == "a" else "object 1")
        assert sorted(shapes) == sorted(set(np.unique(ids).tolist()) - {0})
        for object_id, polygons_ in shapes.items():
            drawn = draw_labelme(polygons_, ids.shape)
            if object_id == 2:
                assert np.array_equal(drawn, ids == 2)
            assert iou(drawn, parts(ids == object_id)) >= 0.95
        assert len(classes) == len(shapes)
    voc = out / "voc/ImageSets/Segmentation/trainval.txt"
    assert voc.read_text().split() == ["a", "b"]
    assert not list(out.glob(".*"))  # no temporary folder left
    # What an export killed midway leaves is removed when the next server starts.
    (out / ".yolo.abcd1234.part/labels").mkdir(parents=True)
    (out / ".coco.abcd1234/coco").mkdir(parents=True)
    (out / ".notes").mkdir()
    # Killed between its two renames: the earlier VOC export aside, the new one not in place.
    earlier = {p.relative_to(out / "voc"): p.read_bytes() for p in out.glob("voc/**/*.*")}
    (out / ".voc.wxyz5678").mkdir()
    (out / "voc").rename(out / ".voc.wxyz5678/voc")
    (out / ".voc.efgh9012.part/ImageSets").mkdir(parents=True)
    with script_client(create_app(images, annotations, segmenter)):
        assert sorted(p.name for p in out.iterdir()) == [".notes", "coco", "labelme", "voc", "yolo"]
    assert {p.relative_to(out / "voc"): p.read_bytes() for p in out.glob("voc/**/*.*")} == earlier
