"""Kvasir-SEG, NWPU VHR-10 and LabelMe: the shipped lists, the readers' masks, the episodes
(crafted: empty masks, a class absent from the test list, K = 5 with repeated supports), the
training sides, and every bad input in one line (exit 2)."""

from __future__ import annotations

import hashlib
import io
import json
from contextlib import redirect_stdout
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from listed_trees import (
    NWPU_CLASSES,
    kvasir_tree,
    labelme_file,
    labelme_tree,
    nwpu_class,
    nwpu_tree,
    shape,
)
from PIL import Image

from samic_vos.commands.cli import main
from samic_vos.data.fewshot_episodes import EpisodeConfig, listed_episodes, protocol_episodes
from samic_vos.data.fewshot_readers import open_training_set
from samic_vos.data.fewshot_sets import FewShotItem
from samic_vos.data.labelme import LabelmeDataset, read_labelme, self_intersection
from samic_vos.data.listed_sets import KvasirDataset, NwpuDataset, read_names
from samic_vos.eval.fewshot_eval import score_predictions
from samic_vos.runtime.errors import UserError

EMPTY = "cju0qkwl35piu0993l0dewei2"  # the first train image: its mask made empty


@pytest.fixture(scope="module")
def kvasir_root(tmp_path_factory) -> Path:
    return kvasir_tree(tmp_path_factory.mktemp("kvasir"), empty=[EMPTY])


@pytest.fixture(scope="module")
def nwpu_root(tmp_path_factory) -> Path:
    return nwpu_tree(tmp_path_factory.mktemp("nwpu"))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_shipped_lists() -> None:
    splits = resources.files("samic_vos.data").joinpath("splits")
    kvasir = {n: splits.joinpath(f"kvasir/{n}.txt").read_text() for n in ("train", "val")}
    # The official files, byte for byte (SHA-256 of DebeshJha/2020-MediaEval-Medico's copies).
    assert _sha(kvasir["train"]) == (
        "49992c7c6c80abf02032050d4ae754236da3ba1041f609659ad0043ff6d1795c"
    )
    assert _sha(kvasir["val"]) == "d9b48bd3d980324edb39df97764fdbb5489b2583f088fb49c659b76f6d20876b"
    train, val = read_names("kvasir", "train"), read_names("kvasir", "val")
    assert (len(train), len(val), len(set(train) | set(val))) == (880, 120, 1000)
    # Ours for NWPU VHR-10, rebuilt from its rule: every fifth image is a test image.
    names = [f"{n:03d}" for n in range(1, 651)]
    assert read_names("nwpu-vhr10", "test") == [n for n in names if int(n) % 5 == 0]
    assert read_names("nwpu-vhr10", "train") == [n for n in names if int(n) % 5]


def test_kvasir_masks_are_binarised_as_jha_et_al(tmp_path: Path, kvasir_root: Path) -> None:
    dataset = KvasirDataset(kvasir_root)
    assert dataset.classes == ["polyp"] and len(dataset) == 120 and dataset.supports == "train"
    assert len(KvasirDataset(kvasir_root, "train")) == 880
    # Flat 8x8 blocks of 127 and 128 survive a quality-100 JPEG: 127/255 < 0.5 < 128/255.
    gray = np.zeros((16, 16), dtype=np.uint8)
    gray[:8, :8], gray[8:, 8:] = 127, 128
    item = dataset.items("polyp")[0]
    Image.fromarray(gray).save(item.mask, quality=100)
    try:
        mask = dataset.read_mask(item)
        assert not mask[:8, :8].any() and mask[8:, 8:].all() and mask.sum() == 64
    finally:
        kvasir_tree(kvasir_root, empty=[EMPTY])


def test_kvasir_grayscale_is_the_jpeg_luma_as_opencv_reads_it(
    tmp_path: Path, kvasir_root: Path
) -> None:
    cv2 = pytest.importorskip("cv2")
    # A pixel checker of two saturated blues at quality 40 decodes to one flat colour: luma 128
    # (the polyp for Jha et al.), but its RGB is clipped (3, 166, 255), whose Pillow L is 127.
    rows, cols = np.mgrid[:32, :32]
    checker = np.where(((rows + cols) % 2 == 1)[..., None], [0, 166, 255], [0, 169, 255])
    path = tmp_path / "mask.jpg"
    Image.fromarray(checker.astype(np.uint8)).save(path, quality=40, subsampling=0)
    opencv = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert opencv.min() == opencv.max() == 128
    mask = KvasirDataset(kvasir_root).read_mask(FewShotItem(path, path))
    assert mask.all() and np.array_equal(mask, opencv / 255 > 0.5)


def test_nwpu_classes_and_union_of_instances(nwpu_root: Path) -> None:
    test = NwpuDataset(nwpu_root)
    names = [n.replace(" ", "_") for n in NWPU_CLASSES]
    assert test.classes == names[:9]  # vehicle: train images only, absent from the test list
    assert len(test.items("airplane")) == len([k for k in range(5, 651, 5) if nwpu_class(k) == 0])
    train = open_training_set("nwpu-vhr10", nwpu_root)
    assert train.classes == names and {i.image.stem for i in train.items("vehicle")} == {
        f"{k:03d}" for k in range(1, 651) if k % 5 == 1 and k % 3 == 0
    }
    five = next(i for i in test.items("airplane") if i.image.stem == "005")
    mask = test.read_mask(five)
    assert mask.shape == (48, 64) and test.mask_size(five) == (48, 64)
    assert mask[6:18, 4:18].all() and mask[22:34, 44:58].all()  # both instances, one mask
    assert mask.sum() == 2 * 14 * 12 + 0  # pycocotools: the polygons' own areas, disjoint


def test_kvasir_episodes_draw_supports_from_the_train_list(kvasir_root: Path) -> None:
    dataset = KvasirDataset(kvasir_root)
    episodes = listed_episodes(dataset, EpisodeConfig(shots=5))
    train = {i.image for i in KvasirDataset(kvasir_root, "train").items("polyp")}
    assert [e.query.name for e in episodes] == read_names("kvasir", "val")
    assert all(set(s.image for s in e.supports) <= train for e in episodes)
    # HSNet's draws: one legacy generator seeded once, choice(n, 1) per support.
    draws = np.random.RandomState(0)
    pool = sorted(train, key=lambda p: read_names("kvasir", "train").index(p.stem))
    for episode in episodes[:3]:
        expected = [pool[int(draws.choice(len(pool), 1, replace=False)[0])] for _ in range(5)]
        assert [s.image for s in episode.supports] == expected
    assert listed_episodes(dataset, EpisodeConfig(count=7)) == listed_episodes(dataset)[:7]


def test_nwpu_episodes_five_shot_repeat_supports_never_the_query(nwpu_root: Path) -> None:
    dataset = NwpuDataset(nwpu_root)
    episodes = listed_episodes(dataset, EpisodeConfig(shots=5))
    assert len(episodes) == sum(len(dataset.items(c)) for c in dataset.classes)
    for episode in episodes:
        pool = dataset.items(episode.class_name)
        assert episode.query not in episode.supports and set(episode.supports) <= set(pool)
    assert any(len(set(e.supports)) < 5 for e in episodes)  # HSNet's draws repeat
    distinct = listed_episodes(dataset, EpisodeConfig(shots=5, sampling="distinct"))
    assert all(len(set(e.supports)) == 5 for e in distinct)
    # From the train list instead (episodes.supports), never a test image.
    trained = listed_episodes(dataset, EpisodeConfig(supports="train"))
    assert all(int(s.image.stem) % 5 for e in trained for s in e.supports)
    # A class whose test images cannot give a support is refused, naming it.
    one = NwpuDataset(nwpu_root)
    one._splits["test"]["airplane"] = one._splits["test"]["airplane"][:1]
    with pytest.raises(UserError, match=r"class 'airplane' of nwpu-vhr10 test.txt has 1 image"):
        listed_episodes(one)


def test_empty_masks_score_as_hsnet(tmp_path: Path, kvasir_root: Path) -> None:
    """The empty-mask support gives an empty prediction; empty truth and empty prediction add
    nothing to the foreground sums, a full prediction of an empty truth only to the union."""
    dataset = KvasirDataset(kvasir_root, "train").select(["polyp"])
    dataset._items["polyp"] = dataset.items("polyp")[:2]  # the empty one and one square
    empty, full = dataset.items("polyp")
    assert empty.name == EMPTY and not dataset.read_mask(empty).any()
    episodes = protocol_episodes(dataset, EpisodeConfig(supports="train"))
    assert [e.query for e in episodes] == [empty, full]
    for episode, value in zip(episodes, (1, 0), strict=True):
        path = tmp_path / "pred" / "polyp" / f"{episode.name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((48, 64), value, np.uint8)).save(path)
    scores = score_predictions(dataset, episodes, tmp_path / "pred")
    truth = dataset.read_mask(full).sum()
    assert scores["sums"]["polyp"]["intersection"][1] == 0
    assert scores["sums"]["polyp"]["union"][1] == 48 * 64 + truth
    assert scores["global"]["mIoU"] == 0.0


def test_labelme_masks_as_labelme_draws_them(tmp_path: Path) -> None:
    root = labelme_tree(tmp_path / "lm")
    test, train = LabelmeDataset(root), LabelmeDataset(root, "train")
    assert test.classes == ["landslide", "road"] and train.classes == ["landslide", "road"]
    assert [i.image.stem for i in test.items("landslide")] == ["4", "6"]
    assert [i.image.stem for i in train.items("landslide")] == ["1", "2", "3", "5"]
    item = test.items("road")[0]
    mask = test.read_mask(item)
    # Pillow's polygon with outline: both edges drawn, 23 x 9 pixels; the point draws nothing.
    assert mask.sum() == 23 * 9 and mask[2:11, 40:63].all()
    rect = train.read_mask(train.items("landslide")[0])  # k = 1: rectangle (8, 9)-(28, 23)
    assert rect.sum() == 21 * 15 and rect[9:24, 8:29].all()
    # Without lists every file is in both splits.
    (root / "test.txt").unlink()
    assert len(LabelmeDataset(root)) == len(LabelmeDataset(root, "train")) == 9


def test_labelme_circle_radius_as_labelme_computes_it(tmp_path: Path) -> None:
    # Centre (13.74, 17.2), rim (15.74, 22.0): the radius is 5.2, math.hypot gives one ulp
    # above (5.200000000000001), LabelMe's sqrt of the squares 5.2; Pillow truncates the box
    # (8.54, 12.0, 18.94, 22.4), so the ulp moves its top edge from row 12 to row 11.
    Image.new("RGB", (40, 40)).save(tmp_path / "c.png")
    circle = shape("x", [[13.74, 17.2], [15.74, 22.0]], "circle")
    mask = read_labelme(labelme_file(tmp_path / "c.json", "c.png", [circle], (40, 40))).mask("x")
    rows = [int(n) for n in mask.sum(axis=1)[12:23]]
    assert mask.sum() == 97 and rows == [5, 7, 9, 11, 11, 11, 11, 11, 9, 7, 5]
    assert not mask[:12].any() and not mask[23:].any()
    assert np.flatnonzero(mask.any(axis=0)).tolist() == list(range(8, 19))


def test_labelme_refuses_an_image_turned_by_exif(tmp_path: Path) -> None:
    # LabelMe shows a JPEG with EXIF orientation 6 turned upright and records its points there;
    # a square one has the declared size either way, so only the tag tells the frames apart.
    pixels = np.zeros((24, 24, 3), dtype=np.uint8)
    pixels[:, :8] = 255
    band = shape("band", [[0, 0], [23, 0], [23, 7], [0, 7]])  # the white band, turned upright
    for tag in (1, 6):
        exif = Image.Exif()
        exif[0x0112] = tag
        Image.fromarray(pixels).save(tmp_path / f"{tag}.jpg", exif=exif, quality=95)
        labelme_file(tmp_path / f"{tag}.json", f"{tag}.jpg", [band], (24, 24))
    assert read_labelme(tmp_path / "1.json").mask("band").sum() == 24 * 8
    with pytest.raises(UserError, match=r"6\.jpg: EXIF orientation 6: .* save the image upright"):
        read_labelme(tmp_path / "6.json")


@pytest.mark.parametrize(
    ("points", "crossing"),
    [
        ([[0, 0], [10, 0], [10, 10], [0, 10]], None),
        ([[0, 0], [10, 10], [10, 0], [0, 10]], (0, 2)),  # a bow tie
        ([[0, 0], [10, 0], [10, 10], [5, 0], [0, 10]], (0, 2)),  # a vertex on another edge
        ([[0, 0], [4, 0], [8, 0], [8, 6], [2, 0], [0, 6]], (0, 3)),  # overlapping edges
    ],
)
def test_self_intersection(points, crossing) -> None:
    assert self_intersection(np.asarray(points, dtype=float)) == crossing


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("samic-vos: error: "), err
    return err[0]


def test_the_episode_list_of_every_new_layout(tmp_path, kvasir_root, nwpu_root, capsys) -> None:
    lm = labelme_tree(tmp_path / "lm")
    for kind, root, rows in (
        ("kvasir", kvasir_root, 120),
        ("nwpu-vhr10", nwpu_root, 130),
        ("labelme", lm, 4),
    ):
        code, text = _cli("bench", "fewshot", "--dataset", kind, "--root", str(root), "--episodes")
        lines = text.splitlines()
        assert code == 0 and lines[0] == "episode,class,query,supports" and len(lines) == rows + 1
    assert text.splitlines()[1] == "0,landslide,site/4.jpg,site/6.jpg"
    code, text = _cli(
        "bench", "fewshot", "--dataset", "kvasir", "--root", str(kvasir_root), "--episodes",
        "--shots", "5", "--episode-count", "2",
    )  # fmt: skip
    first = text.splitlines()[1].split(",")
    assert first[1:3] == ["polyp", f"Kvasir-SEG/images/{read_names('kvasir', 'val')[0]}.jpg"]
    assert len(first[3].split("|")) == 5


def _bad(tmp_path: Path, capsys, *argv: str) -> str:
    code, text = _cli(*argv)
    assert code == 2 and text == ""
    return _one_line(capsys)


def test_bad_inputs_are_one_line(tmp_path, kvasir_root, nwpu_root, capsys) -> None:
    def bench(kind: str, root: Path, *extra: str) -> str:
        args = ("bench", "fewshot", "--dataset", kind, "--root", str(root), "--episodes")
        return _bad(tmp_path, capsys, *args, *extra)

    # A root of another layout.
    assert "not the expected layout" in bench("nwpu-vhr10", kvasir_root)
    assert "not the expected layout" in bench("kvasir", nwpu_root)
    assert "holds no LabelMe" in bench("labelme", kvasir_root / "Kvasir-SEG" / "masks")
    # A fold out of range, and a fold where there are none.
    assert "fewshot.fold must be one of 0, 1, 2, 3, got 4" in _bad(
        tmp_path, capsys, "train", "--fewshot", "pascal5i", "--fold", "4",
        "--root", str(tmp_path), "-o", str(tmp_path / "o"),
    )  # fmt: skip
    assert "--fold is PASCAL-5i's" in bench("kvasir", kvasir_root, "--fold", "1")
    assert "episodes.supports" in _bad(
        tmp_path, capsys, "bench", "fewshot", "--dataset", "perseg", "--root", str(tmp_path),
        "--supports", "train", "--episodes",
    )  # fmt: skip
    # A split list naming a missing image.
    name = read_names("kvasir", "val")[3]
    image = kvasir_root / "Kvasir-SEG" / "images" / f"{name}.jpg"
    image.rename(image.with_suffix(".bak"))
    try:
        line = bench("kvasir", kvasir_root)
        assert f"{name}.jpg: image not found, named by kvasir val.txt" in line
    finally:
        image.with_suffix(".bak").rename(image)
    lm = labelme_tree(tmp_path / "lm")
    (lm / "test.txt").write_text("site/4\nsite/9\n")
    assert "site/9.json: annotation not found, named by" in bench("labelme", lm)
    (lm / "test.txt").write_text("site/4\nsite/6\n")
    # LabelMe: a self-intersecting polygon, a point outside the image.
    bow = [[10, 10], [30, 30], [30, 10], [10, 30]]
    labelme_file(lm / "site" / "2.json", "2.jpg", [shape("landslide", bow)])
    line = bench("labelme", lm)
    assert "2.json: shape 0 ('landslide', polygon): the polygon intersects itself" in line
    outside = [[10, 10], [70, 10], [30, 30]]
    labelme_file(lm / "site" / "2.json", "2.jpg", [shape("landslide", outside)])
    assert "point (70, 10) is outside the 64x48 image" in bench("labelme", lm)
    labelme_file(lm / "site" / "2.json", "2.jpg", [shape("landslide", bow[:2], "mask")])
    assert "shape type not read" in bench("labelme", lm)
    labelme_file(lm / "site" / "2.json", "2.jpg", [], size=(40, 64))
    assert "declares a 64x40 image but 2.jpg is 64x48" in bench("labelme", lm)
    (lm / "site" / "2.json").write_text(json.dumps({"shapes": []}))
    assert "not a LabelMe file" in bench("labelme", lm)
    assert not list(tmp_path.glob("runs")) and not (tmp_path / "o").exists()


def test_read_labelme_keeps_area_shapes_only(tmp_path: Path) -> None:
    root = labelme_tree(tmp_path / "lm")
    annotation = read_labelme(root / "site" / "2.json")
    assert [s.kind for s in annotation.shapes] == ["circle", "polygon"]
    assert annotation.labels == ["landslide", "road"] and annotation.size == (48, 64)


@pytest.mark.parametrize("segmentation", [[[1, 2, 3, 4]], [[1.0, 2.0, 3.0]], {"counts": 5}])
def test_a_segmentation_pycocotools_cannot_draw_is_one_line(tmp_path, segmentation):
    from samic_vos.data.coco import CocoInstances

    path = tmp_path / "annotations.json"
    path.write_text(
        json.dumps(
            {
                "categories": [{"id": 1, "name": "airplane"}],
                "images": [{"id": 7, "file_name": "001.jpg", "height": 10, "width": 12}],
                "annotations": [{"image_id": 7, "category_id": 1, "segmentation": segmentation}],
            }
        )
    )
    instances = CocoInstances(path, categories=None)
    for read in (lambda: instances.class_mask("001", 0), lambda: instances.label_map("001")):
        with pytest.raises(UserError) as err:
            read()
        message = str(err.value)
        assert "\n" not in message and message.startswith(f"{path}: an annotation of image 001")
