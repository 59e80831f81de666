"""`samic-vos segment` over a collection: shards (flag, torchrun's and Slurm's environment) that
merge to the bytes of one run, a shard interrupted and rerun, COCO output checked with
pycocotools, memory flat in the collection's size, and the mistakes of a collection."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from fewshot_images import scene, write_set
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from samic_vos.commands.cli import main
from samic_vos.data.mask_io import read_mask
from samic_vos.jobs.segment_inputs import find_targets
from samic_vos.runtime.shards import Shard

SHARD_ENVS = (
    [{"RANK": str(i), "WORLD_SIZE": "2", "LOCAL_RANK": str(i)} for i in range(2)],
    [
        {
            "SLURM_ARRAY_TASK_ID": str(7 + i),
            "SLURM_ARRAY_TASK_MIN": "7",
            "SLURM_ARRAY_TASK_COUNT": "2",
        }
        for i in range(2)
    ],
)
OUTPUTS = ("masks", "prompts.jsonl", "coco.json")  # what shards must reproduce byte for byte


@pytest.fixture
def collection(tmp_path) -> Path:
    """refs/img_0 (+ mask) and 9 targets of three sizes, so that shards balance pixels."""
    write_set(tmp_path / "refs", 1)
    targets = tmp_path / "targets"
    targets.mkdir()
    sizes = [(60, 80), (40, 48), (90, 100)]
    for n in range(9):
        h, w = sizes[n % 3]
        rgb, _ = scene(n, [(1, 5, 5, 16), (2, h - 22, w - 22, 16)], size=(h, w))
        Image.fromarray(rgb).save(targets / f"t{n}.png")
    return tmp_path


def _segment(collection: Path, out: Path, models, *extra: str) -> int:
    return main(
        [
            "segment",
            "--ref",
            str(collection / "refs" / "img_0.png"),
            "--ref-mask",
            str(collection / "refs" / "img_0_mask.png"),
            str(collection / "targets"),
            "-o",
            str(out),
            "--batch-size",
            "2",
            "--format",
            "coco",
            "--sam-checkpoint",
            str(models["sam"]),
            "--samic",
            str(models["samic"]),
            *extra,
        ]
    )


def _files(out: Path) -> dict[str, bytes]:
    found = {}
    for name in OUTPUTS:
        path = out / name
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            found[file.relative_to(out).as_posix()] = file.read_bytes()
    return found


def test_shards_merge_to_the_bytes_of_one_run(collection, tiny_models, monkeypatch):
    straight = collection / "straight"
    assert _segment(collection, straight, tiny_models) == 0
    expected = _files(straight)
    assert len([k for k in expected if k.startswith("masks/")]) == 9
    assert len((straight / "prompts.jsonl").read_text().splitlines()) == 9

    by_flag = collection / "by_flag"
    assert _segment(collection, by_flag, tiny_models, "--shard", "1/2") == 0
    # one shard alone: its share written, no summary yet, and --merge refuses to write one
    assert not (by_flag / "prompts.jsonl").exists() and not (by_flag / "coco.json").exists()
    shard_masks = sorted(p.name for p in (by_flag / "masks").iterdir())
    assert 0 < len(shard_masks) < 9
    assert _segment(collection, by_flag, tiny_models, "--merge") == 2
    assert _segment(collection, by_flag, tiny_models, "--shard", "0/2") == 0
    assert _files(by_flag) == expected
    assert not (by_flag / "parts").exists()
    assert json.loads((by_flag / "run.json").read_text())["finished"] is True
    assert _segment(collection, by_flag, tiny_models, "--merge") == 0  # finished: nothing to do
    assert _files(by_flag) == expected

    for n, envs in enumerate(SHARD_ENVS):
        out = collection / f"env{n}"
        for env in envs:
            with monkeypatch.context() as patch:
                for key, value in env.items():
                    patch.setenv(key, value)
                assert _segment(collection, out, tiny_models) == 0
        assert _files(out) == expected, envs


def test_shares_balance_pixels():
    # batches of 1, 4, 9, 16 pixels dealt heaviest first, in turn
    assert Shard(0, 2).owners([1, 4, 9, 16]) == [1, 0, 1, 0]
    assert Shard(0, 3).owners([5, 5, 5]) == [0, 1, 2]


def test_interrupted_shard_reruns_only_its_missing_targets(collection, tiny_models, monkeypatch):
    from samic_vos.pipelines import segment as pipeline

    written: list[str] = []
    real_write = pipeline._write

    def counting(out, name, *args, **kwargs):
        if len(written) == 3 and interrupt:
            raise KeyboardInterrupt  # Ctrl-C after the shard's third target
        ids = real_write(out, name, *args, **kwargs)
        written.append(name)
        return ids

    monkeypatch.setattr(pipeline, "_write", counting)
    out = collection / "out"
    interrupt = True
    assert _segment(collection, out, tiny_models, "--shard", "0/2", "--batch-size", "1") == 130
    first = list(written)
    interrupt = False
    written.clear()
    assert _segment(collection, out, tiny_models, "--shard", "0/2", "--batch-size", "1") == 0
    shard_targets = first + written
    assert len(first) == 3 and not set(first) & set(written) and len(shard_targets) >= 4
    written.clear()
    assert _segment(collection, out, tiny_models, "--shard", "1/2", "--batch-size", "1") == 0
    assert sorted(shard_targets + written) == [f"t{n}" for n in range(9)]
    straight = collection / "straight"
    assert _segment(collection, straight, tiny_models, "--batch-size", "1") == 0
    assert _files(out) == _files(straight)


def test_coco_output_matches_the_masks(collection, tiny_models):
    out = collection / "out"
    assert _segment(collection, out, tiny_models, "--instances") == 0
    coco = COCO(str(out / "coco.json"))
    assert sorted(coco.getCatIds()) == [1, 2]
    lines = [json.loads(x) for x in (out / "prompts.jsonl").read_text().splitlines()]
    assert [img["file_name"] for img in coco.loadImgs(coco.getImgIds())] == [
        line["path"] for line in lines
    ]
    for image_id, line in zip(coco.getImgIds(), lines, strict=True):
        ids = read_mask(out / "masks" / f"{line['image']}.png")
        info = coco.loadImgs(image_id)[0]
        assert (info["height"], info["width"]) == ids.shape
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        rebuilt = np.zeros_like(ids)
        for number, ann in enumerate(annotations, 1):
            pixels = coco.annToMask(ann).astype(bool)
            assert ann["area"] == pixels.sum() > 0
            x, y, w, h = ann["bbox"]
            rows, cols = np.nonzero(pixels)
            assert (x, y, w, h) == (cols.min(), rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1)
            assert not (rebuilt[pixels]).any()  # instances do not overlap
            rebuilt[pixels] = number
            owner = line["classes"][str(ann["category_id"])]
            assert ann["score"] == owner["confidence"]
            assert mask_utils.decode(ann["segmentation"]).sum() == ann["area"]
        # the RLE masks are the PNG's instances exactly (ids renumbered in order)
        assert np.array_equal(rebuilt > 0, ids > 0)
        values = [v for v in np.unique(ids) if v]
        assert len(values) == len(annotations)
    # `export` of the finished run writes the same file
    again = collection / "exported"
    assert main(["export", "--format", "coco", str(out), "-o", str(again)]) == 0
    assert (again / "coco.json").read_bytes() == (out / "coco.json").read_bytes()


def test_interrupted_after_the_summary_the_rerun_removes_the_parts(
    collection, tiny_models, monkeypatch
):
    """Stopped (Ctrl-C; SIGKILL alike) after the run was marked finished, before its merged
    parts were removed: the rerun finds the run finished and leaves the straight run's files,
    without OUT/parts."""
    import samic_vos.pipelines.segment as pipeline

    straight = collection / "straight"
    assert _segment(collection, straight, tiny_models) == 0
    real_rmtree = pipeline.shutil.rmtree

    def stop_at_parts(path, *args, **kwargs):
        if Path(path).name == "parts":
            raise KeyboardInterrupt
        real_rmtree(path, *args, **kwargs)

    out = collection / "out"
    with monkeypatch.context() as patch:
        patch.setattr(pipeline.shutil, "rmtree", stop_at_parts)
        assert _segment(collection, out, tiny_models) == 130
    assert (out / "parts").is_dir() and json.loads((out / "run.json").read_text())["finished"]
    assert _segment(collection, out, tiny_models) == 0
    assert not (out / "parts").exists()
    files = {p.relative_to(out) for p in out.rglob("*")}
    assert files == {p.relative_to(straight) for p in straight.rglob("*")}
    assert _files(out) == _files(straight)


def _vm_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_memory_flat_over_ten_thousand_images(tmp_path, tiny_models, monkeypatch):
    """Real collection code (targets found, batches, masks and prompts lines written) with the
    engine replaced by a cheap fake; RSS at the 1,000th and the 10,000th image."""
    from samic_vos.api.images import ImageSegmenter
    from samic_vos.inference.fewshot_engine import ImageResult
    from samic_vos.inference.prompter import ClassResult

    write_set(tmp_path / "refs", 1)
    targets = tmp_path / "targets"
    targets.mkdir()
    tiny = Image.fromarray(np.full((8, 8, 3), 90, np.uint8))
    for n in range(10_000):
        tiny.save(targets / f"{n:05d}.png")
    rss: dict[int, int] = {}
    seen = [0]

    def fake(self, images):
        results = []
        for rgb in images:
            seen[0] += 1
            if seen[0] in (1_000, 10_000):
                rss[seen[0]] = _vm_rss_kib()
            ids = np.zeros(rgb.shape[:2], np.uint8)
            ids[2:5, 2:5] = 1
            found = ClassResult(np.array([[3.0, 3.0]], np.float32), [0.5], 0.9, [ids > 0], [1])
            results.append(ImageResult(ids, ids.copy(), {1: found}))
        return results

    monkeypatch.setattr(ImageSegmenter, "segment", fake)
    out = tmp_path / "out"
    args = ["segment", "--ref", str(tmp_path / "refs" / "img_0.png")]
    args += ["--ref-mask", str(tmp_path / "refs" / "img_0_mask.png"), str(targets), "-o", str(out)]
    args += ["--prompter", "persam", "--sam-checkpoint", str(tiny_models["sam"]), "-q"]
    assert main(args) == 0
    assert len(os.listdir(out / "masks")) == 10_000
    growth_mib = (rss[10_000] - rss[1_000]) / 1024
    print(f"RSS at 1,000: {rss[1_000] / 1024:.1f} MiB, at 10,000: {rss[10_000] / 1024:.1f} MiB")
    assert growth_mib < 8, f"RSS grew {growth_mib:.1f} MiB over 9,000 images"


def test_collection_mistakes_are_one_line_and_write_nothing(collection, tiny_models, capsys):
    empty = collection / "empty"
    empty.mkdir()
    out = collection / "out"
    refs = ["--ref", str(collection / "refs" / "img_0.png")]
    refs += ["--ref-mask", str(collection / "refs" / "img_0_mask.png")]
    rest = ["-o", str(out), "--format", "coco", "--sam-checkpoint", str(tiny_models["sam"])]
    assert main(["segment", *refs, str(empty), *rest]) == 2
    assert main(["segment", *refs, str(collection / "targets"), *rest, "--shard", "2/2"]) == 2
    # shards share one SAMIC network: adapting one per shard is refused
    assert main(["segment", *refs, str(collection / "targets"), *rest, "--shard", "0/2"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 3 and all(line.startswith("samic-vos: error:") for line in errors)
    assert "no image" in errors[0] and "shard '2/2'" in errors[1] and "SAMIC network" in errors[2]
    assert not out.exists()


def test_a_list_file_is_the_collection_it_names(collection, tiny_models, capsys):
    listed = collection / "targets.txt"
    lines = ["# the nine targets", *(f"targets/t{n}.png" for n in range(9)), ""]
    listed.write_text("\n".join(lines))
    by_folder, by_list = collection / "by_folder", collection / "by_list"
    assert _segment(collection, by_folder, tiny_models) == 0
    args = ["segment", "--ref", str(collection / "refs" / "img_0.png"), "--ref-mask"]
    args += [str(collection / "refs" / "img_0_mask.png"), str(listed), "--batch-size", "2"]
    args += ["--format", "coco", "--sam-checkpoint", str(tiny_models["sam"])]
    args += ["--samic", str(tiny_models["samic"])]
    assert main([*args, "-o", str(by_list)]) == 0
    assert _files(by_list) == _files(by_folder)
    listed.write_text("targets/t0.png\ntargets/gone.png\n")
    assert main([*args, "-o", str(collection / "never")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "line 2" in errors[0] and "gone.png" in errors[0]
    assert not (collection / "never").exists()


def test_a_list_file_saved_with_a_byte_order_mark(collection):
    """Notepad and Excel may start a UTF-8 text file with a byte-order mark: the first line is
    the path written, not "\\ufefftargets/t0.png" (not found, shown as "targets/t0.png")."""
    listed = collection / "bom.txt"
    listed.write_bytes(b"\xef\xbb\xbftargets/t0.png\r\ntargets/t1.png\r\n")
    expected = [collection / "targets" / f"t{n}.png" for n in range(2)]
    assert find_targets([str(listed)]) == expected
