"""The SAMBOX annotation JSON: reading, validation messages, atomic writing, discovery."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samic_vos.data.mask_io import write_mask
from samic_vos.data.sambox_format import (
    SamboxAnnotation,
    SamboxObject,
    annotation_path_for,
    find_annotations,
    read_annotation,
    write_annotation,
)
from samic_vos.runtime.errors import UserError

H, W = 40, 60


def make_image(path: Path, height: int = H, width: int = W) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 120, 30)).save(path)
    return path


def valid_dict() -> dict:
    return {
        "format": "sambox",
        "version": 1,
        "image": "frame_00001.jpg",
        "image_size": [H, W],
        "objects": [
            {
                "id": 1,
                "label": "dog",
                "points": [[10, 5], [59, 38.5]],
                "negative_points": [[0, 0]],
                "mask": "masks/frame_00001.png",
                "sam_confidence": 1.02,
            },
            {"id": 3, "points": [[30.25, 20]]},
        ],
        "meta": {"tool": "test"},
    }


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    make_image(tmp_path / "frame_00001.jpg")
    ids = np.zeros((H, W), dtype=np.uint8)
    ids[2:10, 5:15] = 1
    (tmp_path / "masks").mkdir()
    write_mask(tmp_path / "masks/frame_00001.png", ids)
    return tmp_path


def save(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_read_valid_annotation(folder: Path) -> None:
    path = save(folder / "frame_00001.sambox.json", valid_dict())
    annotation = read_annotation(path)
    assert annotation.image_size == (H, W)
    assert annotation.image_path() == folder / "frame_00001.jpg"
    dog, other = annotation.objects
    assert (dog.id, dog.label, dog.sam_confidence) == (1, "dog", pytest.approx(1.02))
    np.testing.assert_array_equal(dog.points, [[10, 5], [59, 38.5]])
    assert dog.points.dtype == np.float64 and dog.negative_points.shape == (1, 2)
    assert annotation.mask_path(dog) == folder / "masks/frame_00001.png"
    assert other.label is None and other.mask is None and other.negative_points.shape == (0, 2)
    assert annotation.object_by_id(3) is other and annotation.object_by_id(2) is None
    assert annotation.meta == {"tool": "test"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version=4), "unknown 'version' 4"),
        (lambda d: d.pop("version"), "unknown 'version' null"),
        (lambda d: d.update(format="coco"), "not a SAMBOX annotation"),
        (lambda d: d["objects"][0]["points"].append([60, 3]), r"objects\[0\].points\[2\]' = "),
        (lambda d: d["objects"][1]["points"].append([3, -1]), "outside the 60x40 image"),
        (lambda d: d["objects"][0]["negative_points"].append([1, 40]), "negative_points"),
        (lambda d: d["objects"][0]["points"].append([1]), r"points\[2\]' must be an \[x, y\]"),
        (lambda d: d["objects"][1].update(points=[]), "needs a positive click"),
        (lambda d: d["objects"][1].update(id=1), "object id 1 appears twice"),
        (lambda d: d["objects"][1].update(id=255), "1..254"),
        (lambda d: d["objects"][1].update(id=True), "must be an integer"),
        (lambda d: d["objects"][1].update(colour="red"), "unknown key 'colour'"),
        (lambda d: d.update(imgae="x.jpg"), "unknown key 'imgae'"),
        (lambda d: d.pop("image_size"), "missing 'image_size'"),
        (lambda d: d.update(image_size=[H]), r"\[H, W\]"),
        (lambda d: d.update(image="/abs/frame.jpg"), "relative to the JSON"),
        (lambda d: d.update(image="missing.jpg"), "'image' file .*missing.jpg not found"),
        (lambda d: d.update(image_size=[W, H], objects=[]), "is 60x40 but 'image_size' says"),
        (lambda d: d["objects"][0].update(mask="masks/none.png"), r"objects\[0\].mask' file"),
        (lambda d: d["objects"][0].update(sam_confidence="high"), "sam_confidence"),
    ],
)
def test_invalid_annotations_name_file_and_field(folder: Path, change, message: str) -> None:
    data = valid_dict()
    change(data)
    path = save(folder / "frame_00001.sambox.json", data)
    with pytest.raises(UserError, match=message) as info:
        read_annotation(path)
    text = str(info.value)
    assert text.startswith(str(path) + ": ") and "\n" not in text


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        read_annotation(tmp_path / "nothing.sambox.json")
    (tmp_path / "bad.sambox.json").write_text("{not json")
    with pytest.raises(UserError, match="not readable JSON"):
        read_annotation(tmp_path / "bad.sambox.json")


def test_write_then_read_round_trip(folder: Path) -> None:
    annotation = SamboxAnnotation(
        image="frame_00001.jpg",
        image_size=(H, W),
        objects=[
            SamboxObject(id=2, points=np.array([[3.0, 4.0], [5.5, 6.0]]), label="cat"),
            SamboxObject(
                id=7,
                points=np.array([[1, 1]]),
                negative_points=np.array([[2.0, 2.0]]),
                sam_confidence=0.5,
            ),
        ],
    )
    path = annotation_path_for(folder / "frame_00001.jpg")
    assert path == folder / "frame_00001.sambox.json"
    write_annotation(path, annotation)
    data = json.loads(path.read_text())
    assert data["format"] == "sambox" and data["version"] == 1
    assert data["objects"][0]["points"] == [[3, 4], [5.5, 6]]
    back = read_annotation(path)
    assert [o.id for o in back.objects] == [2, 7] and back.objects[0].label == "cat"
    np.testing.assert_array_equal(back.objects[0].points, annotation.objects[0].points)
    np.testing.assert_array_equal(back.objects[1].negative_points, [[2, 2]])
    assert back.objects[1].sam_confidence == 0.5


def test_write_refuses_invalid_and_keeps_old_file(folder: Path) -> None:
    path = folder / "frame_00001.sambox.json"
    save(path, valid_dict())
    before = path.read_bytes()
    bad = SamboxAnnotation("frame_00001.jpg", (H, W), [SamboxObject(1, np.array([[W, 0.0]]))])
    with pytest.raises(UserError, match="outside"):
        write_annotation(path, bad)
    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == [
        "frame_00001.jpg",
        "frame_00001.sambox.json",
        "masks",
    ]


def test_find_annotations_natural_order(tmp_path: Path) -> None:
    for name in ["b/f10", "b/f9", "a/x2", "a/x1", "b/f100"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / f"{name}.sambox.json").write_text("{}")
    (tmp_path / "a/other.json").write_text("{}")
    found = [p.relative_to(tmp_path).as_posix() for p in find_annotations(tmp_path)]
    assert found == [
        "a/x1.sambox.json",
        "a/x2.sambox.json",
        "b/f9.sambox.json",
        "b/f10.sambox.json",
        "b/f100.sambox.json",
    ]
    with pytest.raises(UserError, match="annotation folder not found"):
        find_annotations(tmp_path / "nope")


def v2_dict() -> dict:
    return {
        "format": "sambox",
        "version": 2,
        "image": "frame_00001.jpg",
        "image_size": [H, W],
        "objects": [
            {
                "id": 1,
                "label": "dog",
                "mask": "masks/frame_00001.png",
                "sam_confidence": 0.9,
                "instances": [
                    {"points": [[10, 5]], "negative_points": [[0, 0]], "sam_confidence": 0.8},
                    {"points": [], "box": [20, 10, 50.5, 30]},
                    {"points": [[40, 20], [41, 21]]},
                ],
            }
        ],
    }


def test_read_version_2_instances(folder: Path) -> None:
    annotation = read_annotation(save(folder / "frame_00001.sambox.json", v2_dict()))
    (dog,) = annotation.objects
    assert (dog.id, dog.label, dog.sam_confidence) == (1, "dog", 0.9)
    first, boxed, third = dog.instances
    np.testing.assert_array_equal(first.negative_points, [[0, 0]])
    assert first.sam_confidence == 0.8 and first.box is None
    assert boxed.points.shape == (0, 2) and boxed.box.tolist() == [20, 10, 50.5, 30]
    assert third.negative_points.shape == (0, 2) and third.sam_confidence is None
    # The object's points are its instances' joined: what training reads.
    np.testing.assert_array_equal(dog.points, [[10, 5], [40, 20], [41, 21]])
    np.testing.assert_array_equal(dog.negative_points, [[0, 0]])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: o.update(points=[[1, 1]]), "unknown key 'points'"),
        (lambda o: o.pop("instances"), "needs 'id' and 'instances'"),
        (lambda o: o.update(instances=[]), "non-empty list"),
        (lambda o: o["instances"][1].pop("box"), r"instances\[1\]' has neither"),
        (lambda o: o["instances"][1].update(box=[50, 10, 20, 30]), "x0 <= x1"),
        (lambda o: o["instances"][1].update(box=[1, 2, 3]), r"\[x0, y0, x1, y1\]"),
        (lambda o: o["instances"][1].update(box=[1, 2, 3, 40]), "outside the 60x40 image"),
        (lambda o: o["instances"][2]["points"].append([60, 1]), r"instances\[2\].points\[2\]"),
        (lambda o: o["instances"][0].update(colour=1), "unknown key 'colour'"),
        (lambda o: o["instances"][0].update(sam_confidence="x"), "sam_confidence"),
        (lambda o: o["instances"][0].pop("points"), "needs 'points'"),
    ],
)
def test_invalid_version_2_objects(folder: Path, change, message: str) -> None:
    data = v2_dict()
    change(data["objects"][0])
    path = save(folder / "frame_00001.sambox.json", data)
    with pytest.raises(UserError, match=message) as info:
        read_annotation(path)
    assert str(info.value).startswith(str(path) + ": ")


def test_version_2_round_trip_and_version_1_when_it_suffices(folder: Path) -> None:
    path = save(folder / "frame_00001.sambox.json", v2_dict())
    annotation = read_annotation(path)
    out = folder / "again.sambox.json"
    write_annotation(out, annotation)
    data = json.loads(out.read_text())
    assert data["version"] == 2 and data["objects"] == [
        {
            **v2_dict()["objects"][0],
            "instances": [
                {"points": [[10, 5]], "negative_points": [[0, 0]], "sam_confidence": 0.8},
                {"points": [], "negative_points": [], "box": [20, 10, 50.5, 30]},
                {"points": [[40, 20], [41, 21]], "negative_points": []},
            ],
        }
    ]
    # Objects without instances beside version-2 ones: written as one instance each.
    plain = SamboxObject(2, np.array([[3.0, 3.0]]), negative_points=np.array([[4.0, 4.0]]))
    annotation.objects.append(plain)
    write_annotation(out, annotation)
    back = read_annotation(out)
    (instance,) = back.objects[1].instances
    np.testing.assert_array_equal(instance.negative_points, [[4, 4]])
    # Without instances anywhere, version 1 (what older readers understand).
    write_annotation(out, SamboxAnnotation("frame_00001.jpg", (H, W), [plain]))
    assert json.loads(out.read_text())["version"] == 1


def v3_dict() -> dict:
    data = v2_dict()
    data["version"] = 3
    data["objects"][0]["edits"] = [
        {"strokes": [[[1, 2], [30.5, 2]], [[59, 39]]], "radius": 2, "erase": False},
        {"strokes": [[[10, 5]]], "radius": 0.5, "erase": True},
    ]
    data["objects"].append({"id": 2, "instances": [], "mask": "masks/frame_00001.png"})
    return data


def test_version_3_edits_and_mask_only_objects_read_and_write_back(folder: Path) -> None:
    from samic_vos.data.mask_edits import MaskEdit
    from samic_vos.data.sambox_format import annotation_to_dict

    path = save(folder / "frame_00001.sambox.json", v3_dict())
    annotation = read_annotation(path)
    dog, painted = annotation.objects
    assert dog.edits == [
        MaskEdit((((1.0, 2.0), (30.5, 2.0)), ((59.0, 39.0),)), 2.0, False),
        MaskEdit((((10.0, 5.0),),), 0.5, True),
    ]
    assert len(dog.points) == 3  # the prompts are what training reads, edits aside
    assert painted.mask_only and painted.points.shape == (0, 2) and painted.edits == []
    written = annotation_to_dict(annotation)
    assert written["version"] == 3
    assert written["objects"][0]["edits"] == v3_dict()["objects"][0]["edits"]
    assert written["objects"][1] == v3_dict()["objects"][1]
    # Without edits nor mask-only objects the writer keeps version 2 (older readers read it).
    dog.edits = []
    annotation.objects = [dog]
    assert annotation_to_dict(annotation)["version"] == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: o.update(instances=[], mask=None), r"non-empty list \(or the object needs"),
        (lambda o: o.update(edits={}), r"'objects\[0\].edits' must be a list"),
        (lambda o: o["edits"][0].update(radius=-1), r"edits\[0\]': 'radius' must be"),
        (lambda o: o["edits"][1].update(strokes=[[[60, 1]]]), "outside the 60x40 image"),
        (lambda o: o["edits"][1].update(brush=1), r"unknown key 'brush' in 'objects\[0\].edits"),
        (lambda o: o.update(base="yes"), r"'objects\[0\].base' must be true or false"),
        (lambda o: o.update(base=True, mask=None), r"'objects\[0\].base' is true but .* no 'mask'"),
    ],
)
def test_invalid_version_3_objects(folder: Path, change, message: str) -> None:
    data = v3_dict()
    change(data["objects"][0])
    if data["objects"][0].get("mask", "") is None:
        data["objects"][0].pop("mask")
    path = save(folder / "frame_00001.sambox.json", data)
    with pytest.raises(UserError, match=message) as info:
        read_annotation(path)
    assert str(info.value).startswith(str(path) + ": ")


def test_version_2_refuses_edits(folder: Path) -> None:
    data = v3_dict()
    data["version"] = 2
    data["objects"].pop()
    path = save(folder / "frame_00001.sambox.json", data)
    with pytest.raises(UserError, match="unknown key 'edits'"):
        read_annotation(path)
