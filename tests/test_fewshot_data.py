"""Few-shot dataset readers on tiny trees in each layout, and their one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fewshot_trees import H, W, gray, image, perseg_tree, square

from samic_vos.data.fewshot_sets import (
    FolderDataset,
    Fss1000Dataset,
    PerSegDataset,
    SamboxDataset,
    fss_split_classes,
    open_fewshot,
)
from samic_vos.data.mask_io import write_mask
from samic_vos.data.sambox_format import SamboxAnnotation, SamboxObject, write_annotation
from samic_vos.runtime.errors import UserError


def one_line(err: pytest.ExceptionInfo[UserError]) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_fss_split_lists_are_hsnets() -> None:
    splits = {s: fss_split_classes(s) for s in ("train", "val", "test")}
    assert [len(v) for v in splits.values()] == [520, 240, 240]
    assert len(set().union(*map(set, splits.values()))) == 1000  # disjoint
    assert splits["test"] == sorted(splits["test"])
    assert {"bus", "abe's_flyingfish", "tower_pisa"} <= set(splits["test"])
    with pytest.raises(UserError, match="unknown FSS-1000 split 'trn'"):
        fss_split_classes("trn")


@pytest.fixture(scope="module")
def fss_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test class with images 1, 2, 10 (masks 0/255) inside ``FSS-1000/``."""
    root = tmp_path_factory.mktemp("fss") / "FSS-1000"
    for name in fss_split_classes("test"):
        for n in (1, 2, 10):
            image(root / name / f"{n}.jpg")
            gray(root / name / f"{n}.png", square())
    return root


def test_fss1000_reads_the_split_with_hsnets_threshold(fss_root: Path) -> None:
    for root in (fss_root, fss_root.parent):  # the FSS-1000 folder or HSNet's datapath
        dataset = Fss1000Dataset(root, "test")
        assert dataset.classes == sorted(fss_split_classes("test"))
        assert len(dataset) == 240 * 3
    items = dataset.items("bus")
    assert [i.name for i in items] == ["1", "2", "10"]
    assert items[2].mask == fss_root / "bus" / "10.png"
    gray(fss_root / "bus" / "2.png", np.array([[0, 127, 128, 255]] * 2))
    assert dataset.read_mask(items[1]).tolist() == [[False, False, True, True]] * 2
    picture, mask = dataset.load(items[0])
    assert picture.shape == (H, W, 3) and picture.dtype == np.uint8
    assert mask.dtype == bool and mask.sum() == 24 and mask[2:6, 3:9].all()


def test_fss1000_reports_a_missing_mask_or_class(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        Fss1000Dataset(tmp_path, "test")
    assert one_line(err).startswith(f"{tmp_path / 'abe'}")  # the first class of the list
    assert "complete the download" in str(err.value)
    for name in fss_split_classes("test"):
        image(tmp_path / name / "1.jpg")
        gray(tmp_path / name / "1.png", square())
    image(tmp_path / "bus" / "7.jpg")
    with pytest.raises(UserError) as err:
        Fss1000Dataset(tmp_path, "test")
    assert one_line(err) == f"{tmp_path / 'bus' / '7.jpg'}: image has no mask 7.png beside it"


def test_perseg_reference_targets_and_persams_mask_rule(tmp_path: Path) -> None:
    dataset = open_fewshot("perseg", perseg_tree(tmp_path))
    assert isinstance(dataset, PerSegDataset)
    assert dataset.classes == ["can", "dog"]
    assert dataset.reference("dog").image == tmp_path / "Images/dog/00.jpg"
    assert [t.name for t in dataset.targets("dog")] == ["01", "02"]
    mask = dataset.read_mask(dataset.items("dog")[1])  # values 1: > 0 is foreground
    assert mask.sum() == 24 and mask[2:6, 3:9].all()


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (lambda r: (r / "Images/dog/00.jpg").unlink(), "{r}/Annotations/dog/00.png: mask has no"),
        (lambda r: (r / "Annotations/can/02.png").unlink(), "{r}/Images/can/02.jpg: image has no"),
        (lambda r: image(r / "Images/cat/01.jpg"), "{r}/Annotations/cat: folder not found"),
        (lambda r: gray(r / "Annotations/owl/00.png", square()), "{r}/Annotations/owl: masks of"),
    ],
)
def test_perseg_reports_the_first_inconsistency(tmp_path: Path, broken, expected: str) -> None:
    perseg_tree(tmp_path)
    broken(tmp_path)
    with pytest.raises(UserError) as err:
        PerSegDataset(tmp_path)
    assert one_line(err).startswith(expected.format(r=tmp_path))


def test_perseg_needs_the_reference(tmp_path: Path) -> None:
    perseg_tree(tmp_path)
    for kind in ("Images/dog/00.jpg", "Annotations/dog/00.png"):
        (tmp_path / kind).unlink()
    with pytest.raises(UserError) as err:
        PerSegDataset(tmp_path)
    assert "reference image of object 'dog' not found" in one_line(err)


def test_folder_classes_from_subfolders_and_a_flat_class(tmp_path: Path) -> None:
    root = tmp_path / "aerial"
    ids = square(1)
    ids[0, :] = 255  # void border: not foreground
    ids[8:10, 0:2] = 2  # a second object: foreground too
    for rel in ("roofs/a.png", "roofs/b10.jpg", "roofs/b9.jpeg", "c.jpg"):
        image(root / "images" / rel)
        (root / "masks" / rel).parent.mkdir(parents=True, exist_ok=True)
        write_mask((root / "masks" / rel).with_suffix(".png"), ids)
    dataset = FolderDataset(root)
    assert dataset.classes == ["aerial", "roofs"]
    assert [i.name for i in dataset.items("roofs")] == ["a", "b9", "b10"]
    mask = dataset.read_mask(dataset.items("aerial")[0])
    assert mask.sum() == 24 + 4 and not mask[0].any()
    (root / "masks/roofs/b9.png").unlink()
    with pytest.raises(UserError) as err:
        FolderDataset(root)
    expected = f"{root}/images/roofs/b9.jpeg: image has no mask {root}/masks/roofs/b9.png"
    assert one_line(err) == expected
    with pytest.raises(UserError, match="images/ and masks/"):
        FolderDataset(tmp_path)


def test_load_refuses_a_mask_of_another_size(tmp_path: Path) -> None:
    image(tmp_path / "images/x/a.jpg")
    gray(tmp_path / "masks/x/a.png", square(size=(H, W + 1)))
    dataset = FolderDataset(tmp_path)
    with pytest.raises(UserError) as err:
        dataset.load(dataset.items("x")[0])
    assert one_line(err).startswith(f"{tmp_path}/masks/x/a.png: mask is 17x12 but its image")


def annotate(folder: Path, name: str, objects: list[SamboxObject]) -> None:
    image(folder / f"{name}.jpg")
    write_annotation(
        folder / f"{name}.sambox.json",
        SamboxAnnotation(image=f"{name}.jpg", image_size=(H, W), objects=objects),
    )


def test_sambox_classes_by_label_from_saved_masks(tmp_path: Path) -> None:
    ids = square(2)
    ids[8:10, 0:4] = 5
    ids[10:12, 10:13] = 6
    (tmp_path / "masks").mkdir()
    write_mask(tmp_path / "masks/f1.png", ids)  # palette: objects 2, 5 and 6
    gray(tmp_path / "masks/f2.png", square(255))  # binary: the one object
    point = np.array([[4.0, 3.0]])
    annotate(
        tmp_path,
        "f1",
        [
            SamboxObject(2, point, label="cup", mask="masks/f1.png"),
            SamboxObject(5, np.array([[1.0, 8.0]]), mask="masks/f1.png"),
            SamboxObject(6, np.array([[11.0, 10.0]]), label="cup", mask="masks/f1.png"),
            SamboxObject(7, point, label="cup"),  # points only: no mask
        ],
    )
    annotate(tmp_path / "more", "f2", [SamboxObject(3, point, label="cup", mask="../masks/f2.png")])
    dataset = SamboxDataset(tmp_path)
    assert dataset.classes == ["cup", "id5"]
    cups = dataset.items("cup")
    assert [(i.image.name, [k for _, k in i.parts]) for i in cups] == [
        ("f1.jpg", [2, 6]),
        ("f2.jpg", [3]),
    ]
    both = dataset.read_mask(cups[0])  # the label's objects of one image: their union
    assert both.sum() == 24 + 6 and both[10:12, 10:13].all() and not both[8:10, 0:4].any()
    assert dataset.read_mask(cups[1]).sum() == 24  # binary mask: non-zero, whatever the id
    assert dataset.read_mask(dataset.items("id5")[0]).sum() == 8


def test_sambox_without_masks_is_one_line(tmp_path: Path) -> None:
    annotate(tmp_path, "f1", [SamboxObject(1, np.array([[4.0, 3.0]]), label="cup")])
    with pytest.raises(UserError) as err:
        SamboxDataset(tmp_path)
    assert "no SAMBOX object with a saved mask" in one_line(err)
    with pytest.raises(UserError, match="unknown few-shot dataset 'coco'"):
        open_fewshot("coco", tmp_path)


def _phone_photo(path: Path, orientation: int) -> np.ndarray:
    """A JPEG stored (12, 20) whose EXIF orientation turns it (3: half a turn, 6: a quarter);
    returns the pixels as viewers (and SAMBOX) show it, upright."""
    from PIL import Image, ImageOps

    stored = np.zeros((12, 20, 3), np.uint8)
    stored[:6, :5] = 255  # a white corner, top-left as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(stored).save(path, quality=100, exif=exif)
    with Image.open(path) as photo:
        return np.asarray(ImageOps.exif_transpose(photo).convert("RGB"))


@pytest.mark.parametrize("orientation", [3, 6])
def test_sambox_readers_see_a_phone_photo_upright_as_sambox_annotated_it(
    tmp_path: Path, orientation: int
) -> None:
    """SAMBOX shows and saves a phone's photo upright (EXIF orientation applied): the
    annotation's size, the few-shot reader's image and size, `segment --ref-sambox`'s
    reference and the training pairs all read it so, aligned with its masks (before, a
    quarter turn was refused as of another size and a half turn silently misaligned)."""
    from samic_vos.jobs.segment_inputs import ReferenceFile, load_sambox_reference
    from samic_vos.model.backbone import preprocess
    from samic_vos.training.train_dataset import PairDataset
    from samic_vos.training.training_pairs import pairs_from_sambox

    upright = _phone_photo(tmp_path / "f1.jpg", orientation)
    _phone_photo(tmp_path / "f2.jpg", orientation)
    size = upright.shape[:2]
    ids = np.zeros(size, np.uint8)
    ids[upright[..., 0] > 128] = 1  # the white corner, where it is shown
    write_mask(tmp_path / "f1.png", ids)
    write_mask(tmp_path / "f2.png", ids)
    point = np.argwhere(ids)[0][::-1].astype(float)[None]  # (x, y) inside the corner
    for name in ("f1", "f2"):
        write_annotation(
            tmp_path / f"{name}.sambox.json",
            SamboxAnnotation(
                image=f"{name}.jpg",
                image_size=size,
                objects=[SamboxObject(1, point, label="corner", mask=f"{name}.png")],
            ),
        )
    dataset = SamboxDataset(tmp_path)
    item = dataset.items("corner")[0]
    rgb, mask = dataset.load(item)
    assert dataset.image_size(item) == size
    assert np.array_equal(rgb, upright) and np.array_equal(mask, ids == 1)
    assert (rgb[mask] > 128).all()  # the object's pixels are the white corner's
    ref = ReferenceFile(tmp_path / "f1.jpg", sambox=tmp_path / "f1.sambox.json")
    rgb, ref_ids, points = load_sambox_reference(ref, segmenter=None)  # masks saved: no SAM
    assert np.array_equal(rgb, upright) and np.array_equal(ref_ids, ids)
    pairs = pairs_from_sambox(tmp_path)
    assert pairs and all(p.upright for p in pairs)
    trained_on = PairDataset(pairs, input_size=size).item(0)["ref_image"]
    assert np.array_equal(trained_on.numpy(), preprocess(upright, size)[0].numpy())
