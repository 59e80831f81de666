"""The few-shot sets' archives (tar.gz from a local HTTP server: checksum refused, resume after a
cut) and `data prepare`: SegmentationClassAug from VOC2012 + SBD, COCO-20i's label maps from the
instances JSON; resumable, atomic, one-line mistakes."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from http_server import ServerState, isolate, local_server
from PIL import Image
from scipy.io import savemat

from samic_vos.commands.cli import main
from samic_vos.data import mask_io
from samic_vos.data.coco import COCO_CLASSES, Coco20iDataset
from samic_vos.data.fold_sets import read_label_map
from samic_vos.hub import datasets as dataset_download
from samic_vos.hub import prepare as prepare_module
from samic_vos.hub.datasets import DatasetArchive, downloads_dir

SBD_ARCHIVE = "benchmark.tgz"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path / "home")


def _sbd_map(seed: int) -> np.ndarray:
    labels = np.zeros((6, 8), np.uint8)
    labels[1:4, seed : seed + 3] = seed + 1
    return labels


def _sbd_tgz() -> bytes:
    """benchmark.tgz's layout in small: benchmark_RELEASE/dataset/{cls,img,train.txt,val.txt}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for k, stem in enumerate(("2008_000002", "2008_000003")):
            mat = io.BytesIO()
            savemat(mat, {"GTcls": {"Segmentation": _sbd_map(k), "CategoriesPresent": k + 1}})
            for name, data in ((f"cls/{stem}.mat", mat.getvalue()), (f"img/{stem}.jpg", b"j")):
                info = tarfile.TarInfo(f"benchmark_RELEASE/dataset/{name}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        for name in ("train.txt", "val.txt"):
            info = tarfile.TarInfo(f"benchmark_RELEASE/dataset/{name}")
            info.size = 12
            tf.addfile(info, io.BytesIO(b"2008_000002\n"))
    return buffer.getvalue()


def _register_sbd(monkeypatch: pytest.MonkeyPatch, base: str, data: bytes, **changes) -> None:
    real = dataset_download.ARCHIVES["sbd"]
    fields = {
        **vars(real),
        "url": f"{base}/{SBD_ARCHIVE}",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        **changes,
    }
    monkeypatch.setitem(dataset_download.ARCHIVES, "sbd", DatasetArchive(**fields))


def test_sbd_tgz_resumes_after_a_cut_and_unpacks_into_root_sbd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = ServerState(_sbd_tgz(), "/" + SBD_ARCHIVE)
    root = tmp_path / "datasets"
    with local_server(state) as base:
        _register_sbd(monkeypatch, base, state.payload)
        state.cut_at = len(state.payload) // 2
        assert main(["data", "download", "sbd", "--root", str(root), "-q"]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "run again to resume" in err[0]
        assert not (root / "SBD").exists()
        state.cut_at = None
        assert main(["data", "download", "sbd", "--root", str(root), "-q"]) == 0
    assert capsys.readouterr().out == f"{root / 'SBD'}\n"
    assert state.ranges() == [None, f"bytes={len(state.payload) // 2}-"]
    assert sorted(p.name for p in (root / "SBD" / "cls").iterdir()) == [
        "2008_000002.mat",
        "2008_000003.mat",
    ]
    assert sorted(p.name for p in root.iterdir()) == ["SBD"]  # no unpacking leftovers
    assert not any(downloads_dir().iterdir())


@pytest.mark.parametrize("damage", ["checksum", "truncated tgz"])
def test_a_wrong_archive_is_refused_in_one_line_and_removed(
    damage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    payload = _sbd_tgz()
    served = payload if damage == "checksum" else payload[: len(payload) * 2 // 3]
    state = ServerState(served, "/" + SBD_ARCHIVE)
    root = tmp_path / "datasets"
    with local_server(state) as base:
        if damage == "checksum":
            _register_sbd(monkeypatch, base, payload, sha256="cd" * 32)
        else:  # no published size or hash: the gzip stream itself must catch it
            _register_sbd(monkeypatch, base, served, sha256=None, size=None)
        assert main(["data", "download", "sbd", "--root", str(root), "-q"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"samic-vos: error: {SBD_ARCHIVE} from ")
    expected = "is corrupt (SHA-256" if damage == "checksum" else "is corrupt or incomplete"
    assert expected in err[0] and err[0].endswith("run again to download it anew")
    assert not root.exists() and not downloads_dir().exists()  # no empty folder either


def _voc_root(root: Path) -> Path:
    """ROOT/VOC2012 with SegmentationClass (palette PNGs, a 255 band) and ROOT/SBD/cls."""
    voc = root / "VOC2012"
    (voc / "SegmentationClass").mkdir(parents=True)
    own = np.zeros((6, 8), np.uint8)
    own[2:5, 4:7] = 15
    own[1, :] = 255
    mask_io.write_mask(voc / "SegmentationClass" / "2008_000003.png", own)
    (voc / "SegmentationClass" / "2007_000032.png").write_bytes(
        (voc / "SegmentationClass" / "2008_000003.png").read_bytes()
    )
    (root / "SBD" / "cls").mkdir(parents=True)
    for k, stem in enumerate(("2008_000002", "2008_000003")):
        savemat(root / "SBD" / "cls" / f"{stem}.mat", {"GTcls": {"Segmentation": _sbd_map(k)}})
    return voc


def test_prepare_pascal_merges_sbd_and_voc_masks(tmp_path: Path, capsys) -> None:
    voc = _voc_root(tmp_path)
    assert main(["data", "prepare", "pascal5i", "--root", str(tmp_path), "-q"]) == 0
    target = voc / "SegmentationClassAug"
    assert capsys.readouterr().out == f"{target}\n"
    assert sorted(p.name for p in target.iterdir()) == [
        "2007_000032.png",  # VOC's only
        "2008_000002.png",  # SBD's only
        "2008_000003.png",  # both: VOC's kept
    ]
    assert (read_label_map(target / "2008_000002.png") == _sbd_map(0)).all()
    own = read_label_map(voc / "SegmentationClass" / "2008_000003.png")
    assert (read_label_map(target / "2008_000003.png") == own).all() and (own == 255).any()
    with Image.open(target / "2008_000002.png") as image:  # VOC's colours, index = class
        assert image.mode == "P" and image.getpalette()[3:6] == [128, 0, 0]
    assert sorted(p.name for p in voc.iterdir()) == ["SegmentationClass", "SegmentationClassAug"]


def test_an_interrupted_prepare_leaves_no_target_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    voc = _voc_root(tmp_path)
    written: list[str] = []
    real = mask_io.write_mask

    def stopping(path, ids):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(Path(path).name)
        real(path, ids)

    monkeypatch.setattr(prepare_module, "write_mask", stopping)
    assert main(["data", "prepare", "pascal5i", "--root", str(tmp_path), "-q"]) == 130
    assert not (voc / "SegmentationClassAug").exists()
    monkeypatch.setattr(prepare_module, "write_mask", real)
    assert main(["data", "prepare", "pascal5i", "--root", str(tmp_path), "-q"]) == 0
    resumed = {p.name: p.read_bytes() for p in (voc / "SegmentationClassAug").iterdir()}
    assert len(resumed) == 3 and written == ["2007_000032.png", "2008_000002.png"]
    fresh = tmp_path / "fresh"
    _voc_root(fresh)
    assert main(["data", "prepare", "pascal5i", "--root", str(fresh), "-q"]) == 0
    target = fresh / "VOC2012" / "SegmentationClassAug"
    assert {p.name: p.read_bytes() for p in target.iterdir()} == resumed
    assert not (voc / ".SegmentationClassAug.preparing").exists()


def _square(x: int, y: int, size: int) -> list[list[float]]:
    return [[x, y, x + size, y, x + size, y + size, x, y + size]]


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_prepare_coco_draws_the_instances_json_in_order(tmp_path: Path, capsys) -> None:
    coco = tmp_path / "COCO2014"
    (coco / "val2014").mkdir(parents=True)
    (coco / "annotations").mkdir()
    categories = [
        {"id": 100 + k, "name": name.replace("_", " ")} for k, name in enumerate(COCO_CLASSES)
    ]
    images = [
        {"id": 1, "file_name": "COCO_val2014_000000000001.jpg", "height": 10, "width": 12},
        {"id": 2, "file_name": "COCO_val2014_000000000002.jpg", "height": 8, "width": 8},
    ]
    rle = {"size": [10, 12], "counts": [100, 10, 10]}  # uncompressed RLE, column-major
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 100, "segmentation": _square(1, 1, 5)},
        {"id": 2, "image_id": 1, "category_id": 103, "segmentation": rle, "iscrowd": 1},
        {"id": 3, "image_id": 1, "category_id": 102, "segmentation": _square(3, 3, 4)},
    ]
    data = {"categories": categories, "images": images, "annotations": annotations}
    (coco / "annotations" / "instances_val2014.json").write_text(json.dumps(data))
    assert main(["data", "prepare", "coco20i", "--root", str(tmp_path), "-q"]) == 0
    target = coco / "annotations" / "val2014"
    assert capsys.readouterr().out == f"{target}\n"
    from pycocotools import mask as coco_mask

    def drawn(segmentation, h=10, w=12) -> np.ndarray:
        if isinstance(segmentation, list):
            rles = coco_mask.frPyObjects(segmentation, h, w)
            return coco_mask.decode(coco_mask.merge(rles)).astype(bool)
        return coco_mask.decode(coco_mask.frPyObjects(segmentation, h, w)).astype(bool)

    expected = np.zeros((10, 12), np.uint8)
    for ann, label in zip(annotations, (1, 4, 3), strict=True):
        expected[drawn(ann["segmentation"])] = label  # later over earlier
    labels = read_label_map(target / "COCO_val2014_000000000001.png")
    assert (labels == expected).all() and set(np.unique(labels)) == {0, 1, 3, 4}
    assert not read_label_map(target / "COCO_val2014_000000000002.png").any()
    # COCO-20i now reads HSNet's PNG route: fold 0 holds class 0 (label 1)
    assert Coco20iDataset(tmp_path, fold=0).masks == "png"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("pascal5i", "VOC2012/SegmentationClass: not found; run `samic-vos data download voc2012"),
        ("coco20i", "instances_val2014.json: not found; run `samic-vos data download coco2014"),
    ],
)
def test_prepare_without_its_downloads_is_one_line(
    name: str, message: str, tmp_path: Path, capsys
) -> None:
    assert main(["data", "prepare", name, "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and message in err[0]
    assert list(tmp_path.iterdir()) == []


def test_a_killed_prepare_leaves_no_half_written_map_in_the_target(tmp_path: Path) -> None:
    """A process killed in mid-write (SIGKILL: no clean-up) leaves a map's temporary file in
    the hidden folder; the rerun completes the target without it."""
    voc = _voc_root(tmp_path)
    scratch = voc / ".SegmentationClassAug.preparing"
    scratch.mkdir()
    mask_io.write_mask(
        scratch / "2007_000032.png", read_label_map(voc / "SegmentationClass" / "2007_000032.png")
    )
    (scratch / ".2008_000002.k1ll3d_x.part.png").write_bytes(b"\x89PNG\r\n\x1a\n half")
    assert main(["data", "prepare", "pascal5i", "--root", str(tmp_path), "-q"]) == 0
    fresh = tmp_path / "fresh"
    _voc_root(fresh)
    assert main(["data", "prepare", "pascal5i", "--root", str(fresh), "-q"]) == 0
    expected = fresh / "VOC2012" / "SegmentationClassAug"
    target = voc / "SegmentationClassAug"
    assert {p.name: p.read_bytes() for p in target.iterdir()} == {
        p.name: p.read_bytes() for p in expected.iterdir()
    }


def test_two_prepares_at_once_both_end_with_the_complete_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second `data prepare` started while the first writes waits for it, then finds the
    target done; neither fails nor writes into the other's folder."""
    import threading
    import time

    voc = _voc_root(tmp_path)
    real = mask_io.write_mask
    first_wrote = threading.Event()

    def slow(path: Path, ids: np.ndarray) -> None:
        real(path, ids)
        first_wrote.set()
        time.sleep(0.1)

    monkeypatch.setattr(prepare_module, "write_mask", slow)
    results: dict[str, object] = {}

    def prepare(who: str) -> None:
        try:
            results[who] = prepare_module.prepare_dataset("pascal5i", tmp_path)
        except Exception as err:  # reported by the assertion below
            results[who] = err

    first = threading.Thread(target=prepare, args=("first",))
    first.start()
    assert first_wrote.wait(10)
    second = threading.Thread(target=prepare, args=("second",))
    second.start()
    first.join(10)
    second.join(10)
    target = voc / "SegmentationClassAug"
    assert results == {"first": [target], "second": [target]}
    assert sorted(p.name for p in target.iterdir()) == [
        "2007_000032.png",
        "2008_000002.png",
        "2008_000003.png",
    ]
    assert sorted(p.name for p in voc.iterdir()) == ["SegmentationClass", "SegmentationClassAug"]


@pytest.mark.parametrize("kept", [0, 20, 200])
def test_a_damaged_sbd_map_is_one_line_naming_it(kept: int, tmp_path: Path, capsys) -> None:
    """A truncated SBD ``.mat`` (a cut copy, a disk error) stops `data prepare` in one line
    naming the file; no target appears."""
    voc = _voc_root(tmp_path)
    damaged = tmp_path / "SBD" / "cls" / "2008_000002.mat"
    damaged.write_bytes(damaged.read_bytes()[:kept])
    assert main(["data", "prepare", "pascal5i", "--root", str(tmp_path), "-q"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"samic-vos: error: {damaged}: not an SBD class map")
    assert not (voc / "SegmentationClassAug").exists()
    # The fix it gives works: `data download` would only check the SBD folder still there.
    sbd = tmp_path / "SBD"
    assert err[0].endswith(f"remove {sbd} and run `samic-vos data download sbd --root {tmp_path}`")
