"""Episodic training pairs from few-shot datasets: same class, reference ≠ target, seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fewshot_trees import gray, image

from samic_vos.data.fewshot_sets import FolderDataset
from samic_vos.runtime.config import ConfigError
from samic_vos.runtime.errors import UserError
from samic_vos.training.fewshot_pairs import FewShotPairConfig, chosen_items, pairs_from_fewshot
from samic_vos.training.train_dataset import PairDataset

H, W = 24, 32


def class_tree(root: Path, classes: dict[str, int]) -> FolderDataset:
    """``images/<class>/<k>.png`` with a 6x6 square mask at row 2 + k, column 3 + k."""
    for name, count in classes.items():
        for k in range(count):
            image(root / "images" / name / f"{k}.png", (H, W))
            mask = np.zeros((H, W), dtype=np.uint8)
            mask[2 + k : 8 + k, 3 + k : 9 + k] = 255
            gray(root / "masks" / name / f"{k}.png", mask)
    return FolderDataset(root)


def test_pairs_are_ordered_pairs_of_the_chosen_images_of_a_class(tmp_path: Path) -> None:
    dataset = class_tree(tmp_path, {"cat": 10, "dog": 10})
    pairs = pairs_from_fewshot(dataset, FewShotPairConfig(train_fraction=0.2))
    assert len(pairs) == 2 * 2  # 20% of 10 = 2 images per class: 2 ordered pairs each
    for pair in pairs:
        assert pair.ref_frame != pair.tgt_frame
        assert pair.ref_frame.parent.name == pair.tgt_frame.parent.name == pair.sequence
        assert pair.image_size == (H, W) and pair.object_id == 1
        for frame, points in ((pair.ref_frame, pair.ref_points), (pair.tgt_frame, pair.tgt_points)):
            k = int(frame.stem)  # the square's interior point: its centre (ties: smallest)
            assert points.dtype == np.float32 and points.tolist() == [[5.0 + k, 4.0 + k]]
    everything = pairs_from_fewshot(dataset, FewShotPairConfig(train_fraction=1.0))
    assert len(everything) == 2 * 10 * 9


def test_the_choice_is_seeded_per_class(tmp_path: Path) -> None:
    dataset = class_tree(tmp_path, {name: 10 for name in "abcdefgh"})
    config = FewShotPairConfig(train_fraction=0.3)
    chosen = {n: chosen_items(n, dataset.items(n), config) for n in dataset.classes}
    assert all(len(v) == 3 for v in chosen.values())
    again = {n: chosen_items(n, dataset.items(n), FewShotPairConfig(0.3)) for n in "hd"}
    assert again == {n: chosen[n] for n in "hd"}  # the same, whatever the other classes
    other = {n: chosen_items(n, dataset.items(n), FewShotPairConfig(0.3, seed=1)) for n in chosen}
    assert other != chosen
    names = [[i.name for i in v] for v in chosen.values()]
    assert len({tuple(n) for n in names}) > 1  # not the same images in every class


def test_empty_masks_and_other_sizes_make_no_pair(tmp_path: Path) -> None:
    dataset = class_tree(tmp_path, {"cat": 3})
    gray(tmp_path / "masks/cat/0.png", np.zeros((H, W), dtype=np.uint8))
    image(tmp_path / "images/cat/2.png", (H, W + 2))
    gray(tmp_path / "masks/cat/2.png", np.full((H, W + 2), 255, dtype=np.uint8))
    with pytest.raises(UserError, match="no training pair") as err:
        pairs_from_fewshot(dataset, FewShotPairConfig(train_fraction=1.0))
    assert "\n" not in str(err.value)
    image(tmp_path / "images/cat/3.png", (H, W + 2))
    gray(tmp_path / "masks/cat/3.png", np.full((H, W + 2), 255, dtype=np.uint8))
    pairs = pairs_from_fewshot(FolderDataset(tmp_path), FewShotPairConfig(train_fraction=1.0))
    assert [(p.ref_frame.name, p.tgt_frame.name) for p in pairs] == [
        ("2.png", "3.png"),
        ("3.png", "2.png"),
    ]


def test_a_mask_of_another_size_is_one_line(tmp_path: Path) -> None:
    dataset = class_tree(tmp_path, {"cat": 2})
    gray(tmp_path / "masks/cat/1.png", np.zeros((H + 1, W), dtype=np.uint8))
    with pytest.raises(UserError, match="cat/1.png: mask is 32x25 but its image"):
        pairs_from_fewshot(dataset)


def test_pair_config_validates() -> None:
    with pytest.raises(ConfigError, match="train_fraction must be a fraction in \\(0, 1\\]"):
        FewShotPairConfig(train_fraction=0)
    with pytest.raises(ConfigError, match="min_images must be an integer >= 2"):
        FewShotPairConfig(min_images=1)


def test_the_trainer_reads_fewshot_pairs(tmp_path: Path) -> None:
    pair = pairs_from_fewshot(class_tree(tmp_path, {"cat": 2}), FewShotPairConfig(1.0))[0]
    item = PairDataset([pair], (2 * H, 2 * W)).item(0)
    assert item["ref_image"].shape == item["tgt_image"].shape == (3, 2 * H, 2 * W)
    heat = item["tgt_heat"][0].numpy()
    row, col = np.unravel_index(np.argmax(heat), heat.shape)
    x, y = pair.tgt_points[0]
    assert abs(col - (2 * x + 0.5)) <= 1 and abs(row - (2 * y + 0.5)) <= 1


def test_references_per_target_caps_the_pairs(tmp_path: Path) -> None:
    dataset = class_tree(tmp_path, {"a": 8, "b": 3})
    every = pairs_from_fewshot(dataset, FewShotPairConfig(train_fraction=1.0))
    assert len(every) == 8 * 7 + 3 * 2
    config = FewShotPairConfig(train_fraction=1.0, references_per_target=2)
    capped = pairs_from_fewshot(dataset, config)
    assert len(capped) == 8 * 2 + 3 * 2  # class b: each target has only 2 others
    keys = [(p.sequence, p.ref_frame, p.tgt_frame) for p in capped]
    assert set(keys) <= {(p.sequence, p.ref_frame, p.tgt_frame) for p in every}
    assert all(ref != tgt for _, ref, tgt in keys)
    targets = [tgt for name, _, tgt in keys if name == "a"]
    assert sorted(targets.count(t) for t in set(targets)) == [2] * 8
    again = pairs_from_fewshot(dataset, config)  # seeded: the same pairs, in the same order
    assert [(p.ref_frame, p.tgt_frame) for p in again] == [k[1:] for k in keys]
    with pytest.raises(ConfigError, match="references_per_target"):
        FewShotPairConfig(references_per_target=0)
