"""``samic-vos train --fewshot KIND --root ROOT``: episodic image pairs through the same trainer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from fewshot_trees import gray
from PIL import Image

from samic_vos.commands.cli import build_parser, main
from samic_vos.commands.common import job_config
from samic_vos.training.job import TrainJobConfig

SIZE = 64
TINY = (
    "network: {channels: [8, 16, 32]}\n"
    "data: {val_fraction: 0.34}\n"
    "train: {cache_dtype: float32}\n"
    "augment: {enabled: false}\n"
)


def textured_class_tree(root: Path, classes: int = 3, images: int = 5) -> Path:
    """``images/<c>/<k>.jpg``: noise with a bright disc; ``masks/<c>/<k>.png``: the disc."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for c in range(classes):
        for k in range(images):
            cx, cy = rng.integers(16, SIZE - 16, size=2)
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= 10**2
            pixels = rng.integers(0, 100, size=(SIZE, SIZE, 3), dtype=np.uint8)
            pixels[disc] = (220, 40 * c, 200)
            path = root / "images" / f"class{c}" / f"{k}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
            gray(root / "masks" / f"class{c}" / f"{k}.png", disc.astype(np.uint8) * 255)
    return root


@pytest.fixture()
def tiny_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SAMIC_VOS_HOME", str(tmp_path / "home"))
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.mark.slow
def test_train_on_a_fewshot_folder(tmp_path: Path, tiny_config: Path, capsys) -> None:
    root, out = textured_class_tree(tmp_path / "data"), tmp_path / "run"
    args = ["train", "--fewshot", "folder", "--root", str(root), "-o", str(out)]
    extra = ["--config", str(tiny_config), "--input-size", "64", "--random-backbone"]
    assert main([*args, *extra, "--epochs", "1", "--train-fraction", "0.4"]) == 0
    # 40% of 5 images = 2 per class, 2 ordered pairs each; one of the 3 classes held out.
    assert "4 training and 2 validation pairs" in capsys.readouterr().err
    assert {p.name for p in out.iterdir()} >= {"config.yaml", "best.pt", "history.json"}
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["fewshot"]["train_fraction"] == 0.4
    assert len(config["run"]["val_sequences"]) == 1
    assert json.loads((out / "history.json").read_text())[0]["epoch"] == 1


def test_fewshot_source_errors_are_one_line(tmp_path: Path, tiny_config: Path, capsys) -> None:
    out = tmp_path / "run"
    base = ["train", "-o", str(out), "--config", str(tiny_config), "--random-backbone"]
    cases = [
        (["--fewshot", "folder"], "--fewshot KIND and --root ROOT go together"),
        (["--fewshot", "fss1000", "--root", str(tmp_path / "nope")], "nope: folder not found"),
        (
            ["--fewshot", "perseg", "--root", str(tmp_path), "--sambox", str(tmp_path)],
            "give exactly one data source",
        ),
        (["--fewshot", "folder", "--root", str(tmp_path), "--train-fraction", "0"], "in (0, 1]"),
    ]
    for flags, message in cases:
        assert main([*base, *flags]) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if "warning" not in line]
        assert len(errors) == 1 and message in errors[0] and "Traceback" not in errors[0]
        assert errors[0].startswith("samic-vos: error: ")
    assert not out.exists()  # nothing written by failed runs


def test_train_fraction_flag_is_the_yaml_key(tmp_path: Path) -> None:
    path = tmp_path / "same.yaml"
    path.write_text("fewshot: {train_fraction: 0.5}\n")
    parse = build_parser().parse_args
    from_flag = job_config(TrainJobConfig(), parse(["train", "-o", "o", "--train-fraction", "0.5"]))
    from_yaml = job_config(TrainJobConfig(), parse(["train", "-o", "o", "--config", str(path)]))
    assert from_flag == from_yaml != TrainJobConfig()


def test_the_fss1000_config_loads() -> None:
    from samic_vos.runtime.config import load_config

    repo = Path(__file__).resolve().parents[1]
    config = load_config(TrainJobConfig(), repo / "configs/train_fss1000.yaml")
    assert (config.fewshot.split, config.fewshot.train_fraction) == ("train", 0.2)
    assert config.data.val_fraction == 0.125


def test_the_pascal5i_training_config_loads() -> None:
    from samic_vos.runtime.config import load_config

    repo = Path(__file__).resolve().parents[1]
    config = load_config(TrainJobConfig(), repo / "configs/train_pascal5i.yaml")
    assert (config.fewshot.fold, config.fewshot.references_per_target) == (0, 1)
    assert config.fewshot.train_fraction == 0.2


def test_a_wrong_fewshot_layout_is_told_before_any_weight_is_loaded(
    tmp_path: Path, tiny_config: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a wrong DAVIS root is: a --root without the layout's folders is the error, not the
    ResNet-50 weights that would be downloaded (or are missing offline) first."""
    import samic_vos.hub.weights

    def offline(*args, **kwargs):
        raise AssertionError("no weight should be fetched before the data source is checked")

    monkeypatch.setattr(samic_vos.hub.weights, "download_resumable", offline)
    (tmp_path / "photos").mkdir()  # a folder, but no images/ and masks/ in it
    out = tmp_path / "run"
    args = ["train", "--fewshot", "folder", "--root", str(tmp_path / "photos"), "-o", str(out)]
    assert main([*args, "--config", str(tiny_config), "--epochs", "1"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "photos/images: folder not found" in errors[0], errors
    assert not out.exists()
