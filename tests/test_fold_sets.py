"""PASCAL-5i and COCO-20i readers and episodes: HSNet's lists, folds, draws and masks."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from fold_trees import OUTSIDE, coco_tree, label_map, pascal_tree, write_labels
from hsnet_reference import hsnet_coco_test, hsnet_pascal_test

from samic_vos.data.coco import COCO_CLASSES, Coco20iDataset, coco_fold_classes
from samic_vos.data.fewshot_episodes import (
    EpisodeConfig,
    FewShotSelection,
    coco_episodes,
    episodes_csv,
    pascal_episodes,
)
from samic_vos.data.fold_sets import read_split_list
from samic_vos.data.pascal import PASCAL_CLASSES, Pascal5iDataset, pascal_fold_classes
from samic_vos.runtime.config import ConfigError
from samic_vos.runtime.errors import UserError

SPLITS = resources.files("samic_vos.data").joinpath("splits")


def _lines(kind: str, fold: int, split: str = "val") -> list[str]:
    return SPLITS.joinpath(f"{kind}/{split}_fold{fold}.txt").read_text().splitlines()


def _readme_hashes(kind: str) -> dict[str, str]:
    text = SPLITS.joinpath(f"{kind}/README.md").read_text()
    pairs = (line.split() for line in text.splitlines())
    return {p[1]: p[0] for p in pairs if len(p) == 2 and len(p[0]) == 64}


def _layout(tmp_path: Path) -> Path:
    """Empty VOC2012 and COCO2014 folders: the episodes need the layout, not the images."""
    for folder in ("VOC2012/JPEGImages", "VOC2012/SegmentationClassAug"):
        (tmp_path / folder).mkdir(parents=True)
    for folder in ("COCO2014/val2014", "COCO2014/annotations/val2014"):
        (tmp_path / folder).mkdir(parents=True)
    return tmp_path


def test_pascal_lists_are_hsnets_bytes() -> None:
    hashes = _readme_hashes("pascal5i")
    assert len(hashes) == 8
    for path, digest in hashes.items():
        split, fold = path.split("/")
        name = f"{'train' if split == 'trn' else 'val'}_{fold}"
        data = SPLITS.joinpath(f"pascal5i/{name}").read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, path
    assert [len(_lines("pascal5i", f)) for f in range(4)] == [346, 451, 725, 346]


def test_coco_lists_hold_the_fold_classes_only() -> None:
    counts = [35783, 17912, 14563, 14315]  # entries of HSNet's val pickles (README)
    for fold in range(4):
        entries = read_split_list("coco20i", "val", fold)
        assert len(entries) == counts[fold]
        assert sorted({c for _, c in entries}) == coco_fold_classes(fold)
        assert all(name.startswith("COCO_val2014_") for name, _ in entries)
    assert coco_fold_classes(1) == list(range(1, 80, 4))
    assert pascal_fold_classes(2) == [10, 11, 12, 13, 14]
    assert len(COCO_CLASSES) == 80 and COCO_CLASSES[12] == "parking_meter"


@pytest.mark.parametrize("fold", [0, 3])
@pytest.mark.parametrize("shots", [1, 5])
def test_pascal_episodes_are_hsnets_draws(tmp_path: Path, fold: int, shots: int) -> None:
    dataset = Pascal5iDataset(_layout(tmp_path), fold)
    episodes = pascal_episodes(dataset, EpisodeConfig(shots=shots))
    ours = [
        (e.query.name, PASCAL_CLASSES.index(e.class_name), [s.name for s in e.supports])
        for e in episodes
    ]
    assert ours == hsnet_pascal_test(_lines("pascal5i", fold), shots)
    assert [e.index for e in episodes] == list(range(1000))
    # 346 entries cycled: episode 346 asks the query of episode 0 again, with other supports.
    assert episodes[346].query == episodes[0].query
    assert episodes[346].name == f"0346_{episodes[0].query.name}"
    assert episodes[346].supports != episodes[0].supports
    if shots == 5:  # HSNet's 5-shot draws can repeat a support; never the query
        assert any(len(set(e.supports)) < 5 for e in episodes)
    assert all(e.query not in e.supports for e in episodes)


@pytest.mark.parametrize("shots", [1, 5])
def test_coco_episodes_are_hsnets_draws(tmp_path: Path, shots: int) -> None:
    dataset = Coco20iDataset(_layout(tmp_path), 2)
    classwise: dict[int, list[str]] = {}
    for name, class_index in read_split_list("coco20i", "val", 2):
        classwise.setdefault(class_index, []).append(f"val2014/{name}.jpg")
    episodes = coco_episodes(dataset, EpisodeConfig(shots=shots, count=300))
    ours = [
        (
            f"val2014/{e.query.image.name}",
            COCO_CLASSES.index(e.class_name),
            [f"val2014/{s.image.name}" for s in e.supports],
        )
        for e in episodes
    ]
    assert ours == hsnet_coco_test(classwise, 2, shots, count=300)
    assert {e.class_name for e in episodes} <= {COCO_CLASSES[c] for c in coco_fold_classes(2)}


def test_classes_keep_the_episodes_of_the_full_fold(tmp_path: Path) -> None:
    root = _layout(tmp_path)
    config = EpisodeConfig(count=60)
    full = pascal_episodes(Pascal5iDataset(root, 0), config)
    some = pascal_episodes(Pascal5iDataset(root, 0).select(["boat", "bird"]), config)
    assert some == [e for e in full if e.class_name in ("boat", "bird")] and some
    distinct = pascal_episodes(
        Pascal5iDataset(root, 0), EpisodeConfig(shots=5, sampling="distinct")
    )
    assert all(len(set(e.supports)) == 5 and e.query not in e.supports for e in distinct)
    assert [e.query for e in distinct] == [e.query for e in full] + [
        e.query for e in pascal_episodes(Pascal5iDataset(root, 0))[60:]
    ]


def test_episode_csv_paths_are_relative_to_the_root_given(tmp_path: Path) -> None:
    root = _layout(tmp_path)
    episodes = pascal_episodes(Pascal5iDataset(root, 1), EpisodeConfig(shots=2, count=2))
    lines = episodes_csv(episodes, root).splitlines()
    assert lines[0] == "episode,class,query,supports"
    number, name, query, supports = lines[1].split(",")
    assert (number, name) == ("0", episodes[0].class_name)
    assert query == f"VOC2012/JPEGImages/{episodes[0].query.name}.jpg"
    assert supports.split("|") == [f"VOC2012/JPEGImages/{s.name}.jpg" for s in episodes[0].supports]
    inside = episodes_csv(episodes, root / "VOC2012").splitlines()[1]
    assert inside.split(",")[2] == f"JPEGImages/{episodes[0].query.name}.jpg"


def test_pascal_masks_class_background_and_void(tmp_path: Path) -> None:
    root = pascal_tree(tmp_path, 0)
    dataset = Pascal5iDataset(root, 0)
    # 2007_000033 is listed under aeroplane; 2007_000061 under boat (first fold-0 entries).
    item = dataset.items("aeroplane")[0]
    labels = np.asarray(__import__("PIL.Image").Image.open(item.mask))
    assert set(np.unique(labels).tolist()) == {0, 1, 255, OUTSIDE}
    mask, void = dataset.read_mask(item), dataset.read_void(item)
    assert mask.dtype == bool and np.array_equal(mask, labels == 1)
    assert np.array_equal(void, labels == 255)
    assert not mask[labels == OUTSIDE].any()  # another class is background
    image, loaded = dataset.load(item)
    assert image.shape == (*labels.shape, 3) and np.array_equal(loaded, mask)


def test_an_image_of_two_classes_is_an_item_of_each(tmp_path: Path) -> None:
    entries = read_split_list("pascal5i", "val", 2)
    names = [n for n, _ in entries]
    twice = next(n for n in names if names.count(n) > 1)
    classes = [PASCAL_CLASSES[c] for n, c in entries if n == twice]
    dataset = Pascal5iDataset(_layout(tmp_path), 2)
    write_labels(
        tmp_path / f"VOC2012/SegmentationClassAug/{twice}.png",
        label_map([PASCAL_CLASSES.index(c) + 1 for c in classes], void=False),
    )
    first, second = (next(i for i in dataset.items(c) if i.name == twice) for c in classes[:2])
    a, b = dataset.read_mask(first), dataset.read_mask(second)
    assert a.any() and b.any() and not (a & b).any()


def test_coco_json_masks_are_the_union_of_the_class_annotations(tmp_path: Path) -> None:
    names = [n for n, _ in read_split_list("coco20i", "val", 0)[:3]]
    root = coco_tree(tmp_path / "json", names, 0, masks="json")
    png_root = coco_tree(tmp_path / "png", names, 0, masks="png")
    from_json = Coco20iDataset(root, 0)
    from_png = Coco20iDataset(png_root, 0)
    assert (from_json.masks, from_png.masks) == ("json", "png")
    compared = 0
    for name in from_json.classes:
        for item, png_item in zip(from_json.items(name), from_png.items(name), strict=True):
            if item.image.stem in names:
                assert np.array_equal(from_json.read_mask(item), from_png.read_mask(png_item))
                assert from_json.mask_size(item) == from_png.mask_size(png_item) == (40, 52)
                compared += 1
    assert compared >= 3
    # Two classes' annotations overlapping: the JSON gives the pixels to both classes.
    import json

    document = json.loads((root / "COCO2014/annotations/instances_val2014.json").read_text())
    image_id = document["images"][0]["id"]
    person = next(a for a in document["annotations"] if a["image_id"] == image_id)
    overlap = dict(person, id=999, category_id=2 * 4 + 1)  # airplane over the same square
    document["annotations"].append(overlap)
    (root / "COCO2014/annotations/instances_val2014.json").write_text(json.dumps(document))
    stem = Path(document["images"][0]["file_name"]).stem
    instances = Coco20iDataset(root, 0).instances()
    own = instances.class_mask(stem, (person["category_id"] - 1) // 2)
    assert own.sum() == 12 * 16 and np.array_equal(instances.class_mask(stem, 4), own)


def test_bad_roots_and_folds_are_one_line(tmp_path: Path) -> None:
    fss = tmp_path / "fss"
    (fss / "abacus").mkdir(parents=True)
    with pytest.raises(UserError, match="not the expected layout; pass a PASCAL VOC2012 folder"):
        Pascal5iDataset(fss, 0)
    with pytest.raises(UserError, match="not the expected layout; pass a COCO 2014 folder"):
        Coco20iDataset(_layout(tmp_path / "voc") / "VOC2012", 0)
    with pytest.raises(UserError, match="fold 4 is out of range: PASCAL-5i has folds 0, 1, 2"):
        Pascal5iDataset(_layout(tmp_path / "x"), 4)
    with pytest.raises(ConfigError, match="fold must be one of 0, 1, 2, 3, got -1"):
        FewShotSelection(kind="coco20i", fold=-1)
    coco = tmp_path / "c" / "COCO2014"
    (coco / "val2014").mkdir(parents=True)
    (coco / "annotations").mkdir()
    with pytest.raises(UserError, match="instances_val2014.json: not found; COCO-20i masks"):
        Coco20iDataset(coco, 0)
    (coco / "annotations/instances_val2014.json").write_text('{"images": []}')
    dataset = Coco20iDataset(coco, 0)
    with pytest.raises(UserError, match="cannot read COCO's instances JSON"):
        dataset.mask_size(dataset.items("person")[0])
