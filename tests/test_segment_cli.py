"""`samic-vos segment` end to end on synthetic image sets (tiny random models); its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from fewshot_images import HEIGHT, WIDTH, scene, two_blob_logits, two_classes, write_set
from PIL import Image

from samic_vos.commands.cli import main
from samic_vos.data.mask_io import read_mask, write_mask
from samic_vos.data.sambox_format import SamboxAnnotation, SamboxObject, write_annotation
from samic_vos.jobs.segment_inputs import image_pixels
from samic_vos.sam.segmenter import SamSegmenter, Segmentation


def _segment(args: list[str], models: dict[str, Path], samic: bool = True) -> int:
    extra = ["--sam-checkpoint", str(models["sam"])]
    if samic:
        extra += ["--samic", str(models["samic"])]
    return main(["segment", *args, *extra])


def _refs(folder: Path, count: int) -> list[str]:
    args = []
    for n in range(count):
        args += [
            "--ref",
            str(folder / f"img_{n}.png"),
            "--ref-mask",
            str(folder / f"img_{n}_mask.png"),
        ]
    return args


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]


def _error_lines(capfd) -> list[str]:
    return [line for line in capfd.readouterr().err.splitlines() if "error:" in line]


@pytest.fixture
def images(tmp_path) -> Path:
    """refs/img_0..4 with masks; targets/ with img_2, img_10 (natural order) and sub/img_3."""
    write_set(tmp_path / "refs", 5)
    targets = tmp_path / "targets"
    write_set(targets, 1, start=10, masks=False)
    write_set(targets, 1, start=2, masks=False)
    write_set(targets / "sub", 1, start=3, masks=False)
    return tmp_path


@pytest.mark.parametrize("shots", [1, 5])
def test_k_shot_end_to_end(images, tiny_models, shots, one_torch_thread):
    out = images / "out"
    args = [*_refs(images / "refs", shots), str(images / "targets"), "-o", str(out), "--overlay"]
    assert _segment(args, tiny_models) == 0
    names = ["img_2", "img_10", "img_3"]  # natural order, then the sub-folder
    assert [line["image"] for line in _lines(out)] == names
    for name, line in zip(names, _lines(out), strict=True):
        with Image.open(out / "masks" / f"{name}.png") as mask:
            assert mask.mode == "P" and mask.size == (WIDTH, HEIGHT)
        ids = read_mask(out / "masks" / f"{name}.png")
        assert set(np.unique(ids)) <= {0, 1, 2}
        assert sorted(line["classes"]) == ["1", "2"]
        for found in line["classes"].values():
            assert 0 <= found["confidence"] <= 1 and len(found["scores"]) == len(found["points"])
            for x, y in found["points"]:
                assert 0 <= x <= WIDTH - 1 and 0 <= y <= HEIGHT - 1
            # semantic masks: every instance id a point names is its class's only id
            assert all(i >= 0 for i in found["instances"])
        with Image.open(out / "overlays" / f"{name}.jpg") as drawn:
            assert drawn.format == "JPEG" and drawn.size == (WIDTH, HEIGHT)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["prompter"] == "samic" and config["instances"] is False
    assert json.loads((out / "run.json").read_text())["finished"] is True
    assert len(json.loads((out / "run.json").read_text())["inputs"]["references"]) == shots


def test_persam_end_to_end(images, tiny_models, one_torch_thread):
    out = images / "out"
    args = [*_refs(images / "refs", 2), str(images / "targets"), "-o", str(out)]
    assert _segment([*args, "--prompter", "persam"], tiny_models, samic=False) == 0
    lines = _lines(out)
    assert len(lines) == 3
    for line in lines:  # one point (the most similar pixel) and one instance per class
        assert all(len(found["points"]) == 1 for found in line["classes"].values())


def _two_blobs(self, ref_feats, ref_heat, tgt_feats):
    """SAMIC's prediction replaced: two blobs, top-left and bottom-right of the target."""
    return two_blob_logits(ref_heat, ((0.25, 0.2), (0.75, 0.8)))


def _squares(self, groups):
    """SAM's answer replaced: a 15x15 square around each point."""
    height, width = self.embedding.original_size
    logits = np.full((len(groups), height, width), -5.0, np.float32)
    for g, group in enumerate(groups):
        x, y = (int(round(v)) for v in group[0])
        logits[g, max(y - 7, 0) : y + 8, max(x - 7, 0) : x + 8] = 5.0
    union = logits.max(axis=0)
    return Segmentation(union > 0, union, 0.9, [0.9] * len(groups)), logits


def test_instances_kept_apart_semantic_union_by_default(images, tiny_models, monkeypatch):
    monkeypatch.setattr("samic_vos.model.samic_net.SamicNet.predict", _two_blobs)
    monkeypatch.setattr(SamSegmenter, "segment_instances", _squares)
    ref = images / "one"
    rgb, ids = scene(0, [(1, 10, 10, 20)])
    ref.mkdir()
    Image.fromarray(rgb).save(ref / "r.png")
    write_mask(ref / "r_mask.png", ids)
    target = images / "two_red.png"
    Image.fromarray(scene(1, [(1, 8, 9, 14), (1, 38, 57, 14)])[0]).save(target)
    refs = ["--ref", str(ref / "r.png"), "--ref-mask", str(ref / "r_mask.png")]
    assert _segment([*refs, str(target), "-o", str(images / "sem")], tiny_models) == 0
    assert (
        _segment([*refs, str(target), "-o", str(images / "ins"), "--instances"], tiny_models) == 0
    )
    semantic = read_mask(images / "sem/masks/two_red.png")
    instances = read_mask(images / "ins/masks/two_red.png")
    assert set(np.unique(semantic)) == {0, 1}
    assert set(np.unique(instances)) == {0, 1, 2}
    assert np.array_equal(semantic > 0, instances > 0)  # the class is the union of instances
    (line,) = _lines(images / "ins")
    points = line["classes"]["1"]["points"]
    assert len(points) == 2 and line["classes"]["1"]["instances"] == [1, 2]
    for number, (x, y) in enumerate(points, start=1):  # each instance is its point's square
        square = np.zeros_like(instances, dtype=bool)
        row, col = int(round(y)), int(round(x))
        square[max(row - 7, 0) : row + 8, max(col - 7, 0) : col + 8] = True
        assert np.array_equal(instances == number, square)


def test_sambox_reference_clicks_are_the_prompts(images, tiny_models, monkeypatch):
    def derived(*args, **kwargs):
        raise AssertionError("the clicked points must be used, not derived from a mask")

    monkeypatch.setattr("samic_vos.inference.samic_prompter.prompts_from_mask", derived)
    folder = images / "sambox"
    folder.mkdir()
    rgb, _ = two_classes(0)
    Image.fromarray(rgb).save(folder / "ref.png")
    clicks = {1: [[16.0, 17.0], [12.0, 11.0]], 2: [[57.0, 43.0]]}
    annotation = SamboxAnnotation(
        image="ref.png",
        image_size=(HEIGHT, WIDTH),
        objects=[SamboxObject(id=k, points=np.array(v)) for k, v in clicks.items()],
    )
    write_annotation(folder / "ref.sambox.json", annotation)
    out = images / "out"
    args = [
        "--ref-sambox",
        str(folder / "ref.sambox.json"),
        str(images / "targets"),
        "-o",
        str(out),
    ]
    assert _segment(args, tiny_models) == 0
    assert [line["image"] for line in _lines(out)] == ["img_2", "img_10", "img_3"]
    assert sorted(_lines(out)[0]["classes"]) == ["1", "2"]


def _files(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "run.json"
    }


def test_interrupted_run_resumes_skipping_finished_targets(tmp_path, tiny_models, monkeypatch):
    write_set(tmp_path / "refs", 1)
    write_set(tmp_path / "targets", 6, start=10, masks=False)
    args = [*_refs(tmp_path / "refs", 1), str(tmp_path / "targets"), "--batch-size", "2"]
    assert _segment([*args, "-o", str(tmp_path / "whole"), "--overlay"], tiny_models) == 0

    from samic_vos.pipelines import segment as pipeline

    real_write, calls = pipeline._write, []

    def interrupted(*a, **kw):
        if len(calls) == 4:
            raise KeyboardInterrupt
        calls.append(a[1])
        return real_write(*a, **kw)

    monkeypatch.setattr(pipeline, "_write", interrupted)
    out = tmp_path / "cut"
    assert _segment([*args, "-o", str(out), "--overlay"], tiny_models) == 130
    before = {p: (out / p).stat().st_mtime_ns for p in _files(out) if p.startswith("masks/")}
    assert len(before) == 4 and len(_lines(out)) == 4
    monkeypatch.setattr(pipeline, "_write", real_write)
    written = []

    def counted(path: Path, ids: np.ndarray) -> None:
        written.append(path.stem)
        write_mask(path, ids)

    monkeypatch.setattr(pipeline, "write_mask", counted)

    assert _segment([*args, "-o", str(out), "--overlay"], tiny_models) == 0
    assert written == ["img_14", "img_15"]  # the finished targets were skipped
    assert {p: (out / p).stat().st_mtime_ns for p in before} == before
    assert _files(out) == _files(tmp_path / "whole")  # the bytes of an uninterrupted run
    # Finished: a rerun does nothing; another configuration is refused in one line.
    written.clear()
    assert _segment([*args, "-o", str(out), "--overlay"], tiny_models) == 0
    assert written == []
    assert _segment([*args, "-o", str(out), "--overlay", "--instances"], tiny_models) == 2


def test_a_batch_cut_halfway_is_decoded_whole_again(tmp_path, tiny_models, monkeypatch):
    """Interrupted after 3 of 6 targets in batches of 2: the rerun decodes targets 2 and 3
    together again (as the uninterrupted run did) and writes only the missing ones."""
    write_set(tmp_path / "refs", 1)
    write_set(tmp_path / "targets", 6, start=10, masks=False)
    args = [*_refs(tmp_path / "refs", 1), str(tmp_path / "targets"), "--batch-size", "2"]
    assert _segment([*args, "-o", str(tmp_path / "whole")], tiny_models) == 0

    from samic_vos.inference.fewshot_engine import FewShotSegmenter
    from samic_vos.pipelines import segment as pipeline

    real_write, writes = pipeline._write, []

    def interrupted(*a, **kw):
        if len(writes) == 3:
            raise KeyboardInterrupt
        writes.append(a[1])
        return real_write(*a, **kw)

    monkeypatch.setattr(pipeline, "_write", interrupted)
    out = tmp_path / "cut"
    assert _segment([*args, "-o", str(out)], tiny_models) == 130
    monkeypatch.setattr(pipeline, "_write", real_write)
    real_segment, batches, written = FewShotSegmenter.segment, [], []

    def counted_segment(self, images, embeddings=None):
        batches.append(len(images))
        return real_segment(self, images, embeddings)

    def counted_write(*a, **kw):
        written.append(a[1])
        return real_write(*a, **kw)

    monkeypatch.setattr(FewShotSegmenter, "segment", counted_segment)
    monkeypatch.setattr(pipeline, "_write", counted_write)
    assert _segment([*args, "-o", str(out)], tiny_models) == 0
    assert batches == [2, 2] and written == ["img_13", "img_14", "img_15"]
    assert _files(out) == _files(tmp_path / "whole")


def test_output_names_never_clash():
    from samic_vos.jobs.segment_inputs import target_names

    root = Path("/d")
    assert target_names([root / "x/a.jpg", root / "y/b.jpg"]) == ["a", "b"]
    assert target_names([root / "x/a.jpg", root / "y/a.jpg"]) == ["x__a", "y__a"]
    assert target_names([root / "x/a.jpg", root / "x/a.png"]) == ["a.jpg", "a.png"]
    # a file named like another's flattened path, and names differing only in case
    clash = target_names([root / "x/a.jpg", root / "y/a.jpg", root / "x__a.jpg"])
    assert clash == ["x__a.jpg", "y__a", "x__a.jpg~2"]
    assert target_names([root / "A.jpg", root / "a.png"]) == ["A.jpg", "a.png"]
    assert target_names([root / "s/A.jpg", root / "t/a.jpg"]) == ["s__A.jpg", "t__a.jpg"]


def test_without_a_checkpoint_samic_is_adapted_on_the_references(tmp_path, tiny_models, caplog):
    write_set(tmp_path / "refs", 2)
    write_set(tmp_path / "targets", 2, start=10, masks=False)
    config = tmp_path / "fast.yaml"
    net = {"input_size": [64, 64], "channels": [8, 16, 32]}
    adaptation = {"steps": 2, "views": 2, "val_every": 1, "batch_size": 2}
    config.write_text(yaml.safe_dump({"network": net, "adaptation": adaptation}))
    out = tmp_path / "out"
    args = [*_refs(tmp_path / "refs", 2), str(tmp_path / "targets"), "-o", str(out)]
    args += ["--config", str(config), "--random-backbone"]
    assert _segment(args, tiny_models, samic=False) == 0
    from samic_vos.model.checkpoint import load_samic

    net_loaded, _ = load_samic(out / "samic_adapted.pt", "cpu")
    assert net_loaded.config.channels == (8, 16, 32)
    assert "adapting a fresh network on the references" in caplog.text
    assert len(_lines(out)) == 2


def test_a_reference_may_also_be_a_target(images, tiny_models, capfd):
    out = images / "out"
    ref = images / "refs" / "img_0.png"
    assert _segment([*_refs(images / "refs", 1), str(ref), "-o", str(out)], tiny_models) == 0
    assert f"{ref}: also a reference image; segmented as a target too" in capfd.readouterr().err
    assert [line["image"] for line in _lines(out)] == ["img_0"]


def test_unreadable_targets_are_named_at_the_end_and_the_rest_written(images, tiny_models, capfd):
    bad = images / "targets" / "broken.png"
    bad.write_bytes(b"not an image")
    out = images / "out"
    code = _segment(
        [*_refs(images / "refs", 1), str(images / "targets"), "-o", str(out)], tiny_models
    )
    assert code == 2
    errors = _error_lines(capfd)
    assert len(errors) == 2 and errors[0].startswith(f"samic-vos: error: {bad}: cannot decode")
    assert "1 of 4 targets could not be read" in errors[1]
    assert sorted(p.name for p in (out / "masks").iterdir()) == [
        "img_10.png",
        "img_2.png",
        "img_3.png",
    ]
    assert json.loads((out / "run.json").read_text())["finished"] is False


def test_a_target_over_pillows_pixel_limit_is_named_at_the_end(images, tiny_models, capfd):
    """A 200-megapixel image (a stitched panorama, an orthomosaic) is one that Pillow refuses
    to decode (a decompression bomb to it): named like an unreadable target, no traceback."""
    huge = images / "targets" / "huge.png"
    Image.new("1", (20_000, 10_000)).save(huge)  # 24 KB on disk
    assert image_pixels(huge) == 0  # weighed as unreadable when shards are dealt
    out = images / "out"
    code = _segment(
        [*_refs(images / "refs", 1), str(images / "targets"), "-o", str(out)], tiny_models
    )
    errors = _error_lines(capfd)
    assert code == 2 and len(errors) == 2, errors
    assert errors[0].startswith(f"samic-vos: error: {huge}: cannot decode the target image (")
    assert "exceeds limit" in errors[0]
    assert len(list((out / "masks").iterdir())) == 3


def _bad_mask_size(root: Path) -> list[str]:
    write_mask(root / "small.png", np.ones((10, 10), np.uint8))
    return ["--ref", str(root / "refs/img_0.png"), "--ref-mask", str(root / "small.png")]


def _empty_mask(root: Path) -> list[str]:
    write_mask(root / "empty.png", np.zeros((HEIGHT, WIDTH), np.uint8))
    return ["--ref", str(root / "refs/img_0.png"), "--ref-mask", str(root / "empty.png")]


@pytest.mark.parametrize(
    ("make", "targets", "message"),
    [
        (_bad_mask_size, "targets", "mask is 10x10 but the reference image"),
        (_empty_mask, "targets", "the reference mask is empty (only background)"),
        (lambda root: _refs(root / "refs", 1), "nothing", "no image (.jpg"),
        (lambda root: _refs(root / "refs", 1), None, "no target image given"),
        (lambda root: _refs(root / "refs", 1), "missing.png", "missing.png: target not found"),
        (lambda root: _refs(root / "refs", 1), "*.gif", "the pattern matches no image"),
        (
            lambda root: ["--ref", str(root / "refs/img_0.png")],
            "targets",
            "--ref given 1 time(s) but --ref-mask 0 time(s)",
        ),
        (lambda root: [], "targets", "no reference given: pass --ref IMG --ref-mask MASK"),
    ],
)
def test_bad_inputs_are_one_line_exit_2_and_nothing_written(
    images, tiny_models, capfd, make, targets, message
):
    (images / "nothing").mkdir()
    out = images / "new" / "out"
    args = make(images)
    if targets is not None:
        args.append(str(images / targets))
    capfd.readouterr()
    assert _segment([*args, "-o", str(out)], tiny_models) == 2
    errors = _error_lines(capfd)
    assert len(errors) == 1 and message in errors[0], errors
    assert not (images / "new").exists()  # nothing written, no empty folder
