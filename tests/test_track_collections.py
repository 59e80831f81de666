"""`samic-vos track` over a collection (a manifest, several videos): one run per video, shards
(flag, torchrun's and Slurm's environment) that merge to the bytes of one run, COCO output
with video and frame index, and the mistakes of a manifest (tiny random-weight models)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from samic_vos.commands.cli import main
from samic_vos.data.mask_io import read_mask, write_mask

H, W = 48, 64
CLIPS = {"one": 5, "two": 3, "three": 4}  # name: frames
SHARD_ENVS = (
    [{"RANK": str(i), "WORLD_SIZE": "2", "LOCAL_RANK": str(i)} for i in range(2)],
    [
        {"SLURM_ARRAY_TASK_ID": str(i), "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "0"}
        for i in range(2)
    ],
)


def _clip(folder: Path, frames: int, seed: int) -> Path:
    """A frame folder with a square moving right, and its first mask (object 1)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for t in range(frames):
        rgb = rng.integers(0, 60, (H, W, 3), dtype=np.uint8)
        rgb[10:26, 8 + 3 * t : 24 + 3 * t] = (220, 40, 40)
        Image.fromarray(rgb).save(folder / f"{t:05d}.png")
    ids = np.zeros((H, W), np.uint8)
    ids[10:26, 8:24] = 1
    mask = folder.parent / f"{folder.name}_first.png"
    write_mask(mask, ids)
    return mask


@pytest.fixture
def clips(tmp_path) -> Path:
    for n, (name, frames) in enumerate(CLIPS.items()):
        _clip(tmp_path / "clips" / f"clip_{name}", frames, n)
    rows = ["video,first_mask,name"] + [
        f"clips/clip_{name}/,clips/clip_{name}_first.png,{name}" for name in CLIPS
    ]
    (tmp_path / "videos.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def _track(args: list[str], models) -> int:
    extra = ["--sam-checkpoint", str(models["sam"]), "--samic", str(models["samic"])]
    return main(["track", *args, *extra])


def _files(out: Path) -> dict[str, bytes]:
    found = {}
    for name in CLIPS:
        for file in sorted((out / name / "masks").iterdir()):
            found[file.relative_to(out).as_posix()] = file.read_bytes()
        found[f"{name}/prompts.jsonl"] = (out / name / "prompts.jsonl").read_bytes()
    for name in ("summary.json", "coco.json"):
        found[name] = (out / name).read_bytes()
    return found


def _errors(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if "error:" in line]


def test_manifest_shards_merge_to_the_bytes_of_one_run(clips, tiny_models, monkeypatch):
    manifest = str(clips / "videos.csv")
    straight = clips / "straight"
    assert _track([manifest, "-o", str(straight), "--format", "coco"], tiny_models) == 0
    expected = _files(straight)
    exported = clips / "exported"
    assert main(["export", "--format", "coco", str(straight), "-o", str(exported)]) == 0
    assert (exported / "coco.json").read_bytes() == expected["coco.json"]  # merged records
    summary = json.loads((straight / "summary.json").read_text())
    assert summary == {"videos": [{"name": k, "frames": v} for k, v in CLIPS.items()]}
    for name, frames in CLIPS.items():
        assert len(list((straight / name / "masks").iterdir())) == frames
        assert json.loads((straight / name / "run.json").read_text())["command"] == "track"

    flag = clips / "flag"
    args = [manifest, "-o", str(flag), "--format", "coco"]
    assert _track([*args, "--shard", "0/2"], tiny_models) == 0
    assert not (flag / "summary.json").exists()
    # dealt by frames, heaviest first: one (5) to shard 0, three (4) to 1, two (3) to 0
    assert sorted(p.name for p in flag.iterdir() if p.is_dir()) == ["one", "two"]
    # each video's COCO records, written by its shard as it finished it
    assert sorted(p.parent.name for p in flag.glob("*/coco.jsonl")) == ["one", "two"]
    assert _track([*args, "--merge"], tiny_models) == 2
    assert _track([*args, "--shard", "1/2"], tiny_models) == 0
    assert _files(flag) == expected

    for n, envs in enumerate(SHARD_ENVS):
        out = clips / f"env{n}"
        for env in envs:
            with monkeypatch.context() as patch:
                for key, value in env.items():
                    patch.setenv(key, value)
                assert _track([manifest, "-o", str(out), "--format", "coco"], tiny_models) == 0
        assert _files(out) == expected, envs


def test_coco_frames_carry_video_and_index(clips, tiny_models):
    out = clips / "out"
    videos = [str(clips / "clips" / f"clip_{name}") for name in ("two", "three")]
    masks = [
        f"--first-mask={clips / 'clips' / f'clip_{name}_first.png'}" for name in ("two", "three")
    ]
    assert _track([*videos, *masks, "-o", str(out), "--format", "coco"], tiny_models) == 0
    coco = COCO(str(out / "coco.json"))
    images = coco.loadImgs(coco.getImgIds())
    expected = [(f"clip_{v}", t) for v in ("two", "three") for t in range(CLIPS[v])]
    assert [(i["video"], i["frame_index"]) for i in images] == expected
    assert coco.loadCats(coco.getCatIds()) == [{"id": 1, "name": "object 1"}]
    for info in images:
        ids = read_mask(out / info["video"] / "masks" / f"{info['frame_index']:05d}.png")
        line = json.loads(
            (out / info["video"] / "prompts.jsonl").read_text().splitlines()[info["frame_index"]]
        )
        rebuilt = np.zeros((H, W), bool)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=info["id"])):
            pixels = coco.annToMask(ann).astype(bool)
            assert np.array_equal(pixels, ids == ann["category_id"])
            assert ann["area"] == pixels.sum()
            assert ann["score"] == line["objects"][str(ann["category_id"])]["confidence"]
            rebuilt |= pixels
        assert np.array_equal(rebuilt, ids > 0)


def _manifest(clips: Path, rows: list[str]) -> str:
    path = clips / "bad.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def _row(clip: str, **extra) -> str:
    row = {"video": f"clips/clip_{clip}", "first_mask": f"clips/clip_{clip}_first.png"}
    return json.dumps({**row, **extra})


def test_manifest_mistakes(clips, tiny_models, capsys):
    out = clips / "out"
    missing = _manifest(
        clips, [_row("one"), json.dumps({"video": "clips/nope.mp4", "first_mask": "x.png"})]
    )
    assert _track([missing, "-o", str(out)], tiny_models) == 2
    assert len(errors := _errors(capsys)) == 1 and "row 2" in errors[0] and "nope.mp4" in errors[0]
    twice = _manifest(clips, [_row("one", name="same"), _row("two", name="same")])
    assert _track([twice, "-o", str(out)], tiny_models) == 2
    assert len(errors := _errors(capsys)) == 1 and "'same'" in errors[0]
    unknown = _manifest(clips, [_row("one", colour="red")])
    assert _track([unknown, "-o", str(out)], tiny_models) == 2
    assert len(errors := _errors(capsys)) == 1 and "colour" in errors[0]
    assert not out.exists()

    # a mask of the wrong size: that video fails in one line, the others are tracked
    small = clips / "small.png"
    write_mask(small, np.ones((H // 2, W // 2), np.uint8))
    rows = [_row("one"), json.dumps({"video": "clips/clip_two", "first_mask": "small.png"})]
    assert _track([_manifest(clips, rows), "-o", str(out)], tiny_models) == 2
    err = capsys.readouterr().err.splitlines()
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 2 and "clip_two" in errors[0] and "1 of 2 videos failed" in errors[1]
    assert [line for line in err if "videos here" in line] == [
        "samic-vos: tracked 1 of 2 videos here (5 frames computed now); 1 of the collection remain"
    ]
    assert len(list((out / "clip_one" / "masks").iterdir())) == CLIPS["one"]
    assert not (out / "clip_two").exists() and not (out / "summary.json").exists()


def test_a_manifest_saved_by_excel(clips, tiny_models):
    """Excel's "CSV UTF-8" starts with a byte-order mark and ends lines with CRLF: its header
    is read as written, not as an unknown column "\\ufeffvideo" (shown as "video")."""
    manifest = clips / "excel.csv"
    rows = ["video,first_mask,name", "clips/clip_two/,clips/clip_two_first.png,two"]
    manifest.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")
    out = clips / "out"
    assert _track([str(manifest), "-o", str(out)], tiny_models) == 0
    assert len(list((out / "two" / "masks").iterdir())) == CLIPS["two"]


def test_videos_named_alike_on_the_command_line(tmp_path, tiny_models, capsys):
    """Two frame folders with one name (a/frames/, b/frames/): the one-line refusal says how to
    name them (a manifest's `name` column), not to give a `name` the command line cannot take."""
    masks = [_clip(tmp_path / part / "frames", 2, n) for n, part in enumerate("ab")]
    out = tmp_path / "out"
    args = [str(tmp_path / "a/frames"), str(tmp_path / "b/frames"), "-o", str(out)]
    args += [arg for mask in masks for arg in ("--first-mask", str(mask))]
    assert _track(args, tiny_models) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"samic-vos: error: the videos given: name 'frames' is used by {tmp_path / 'a/frames'} "
        f"and {tmp_path / 'b/frames'}; list them in a manifest whose `name` column names each"
    ]
    assert not out.exists()


def test_shards_deal_a_video_that_declares_no_frame_count(clips, tiny_models):
    """An .mkv (as .webm and .ts) declares no frame count: it is dealt by the frames it has,
    with the others, not a TypeError traceback."""
    folder = clips / "clips/clip_one"
    with av.open(str(clips / "one.mkv"), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.height, stream.width, stream.pix_fmt = H, W, "yuv420p"
        for path in sorted(folder.iterdir()):
            frame = av.VideoFrame.from_ndarray(np.asarray(Image.open(path)), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    rows = ["video,first_mask,name", "one.mkv,clips/clip_one_first.png,mkv"]
    rows += [f"clips/clip_{name}/,clips/clip_{name}_first.png,{name}" for name in ("two", "three")]
    (clips / "mixed.csv").write_text("\n".join(rows) + "\n")
    out = clips / "out"
    assert _track([str(clips / "mixed.csv"), "-o", str(out), "--shard", "0/2"], tiny_models) == 0
    # dealt by frames, heaviest first: mkv (5) to shard 0, three (4) to 1, two (3) to 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["mkv", "two"]
    assert len(list((out / "mkv/masks").iterdir())) == CLIPS["one"]


def test_interrupted_shard_reruns_only_its_missing_frames(clips, tiny_models, monkeypatch):
    from samic_vos.inference.tracker import CausalTracker

    manifest = str(clips / "videos.csv")
    straight = clips / "straight"
    assert _track([manifest, "-o", str(straight), "--format", "coco"], tiny_models) == 0
    steps = [0]
    real_step = CausalTracker.step

    def counting(self, *args, **kwargs):
        if steps[0] == 6 and interrupt:
            raise KeyboardInterrupt  # Ctrl-C in the second video of shard 0 (one: 5, two: 3)
        steps[0] += 1
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(CausalTracker, "step", counting)
    out = clips / "out"
    args = [manifest, "-o", str(out), "--format", "coco"]
    interrupt = True
    assert _track([*args, "--shard", "0/2"], tiny_models) == 130
    assert len(list((out / "two" / "masks").iterdir())) < CLIPS["two"]
    interrupt, steps[0] = False, 0
    assert _track([*args, "--shard", "0/2"], tiny_models) == 0
    assert steps[0] == CLIPS["one"] + CLIPS["two"] - 6  # only the frames it had not written
    assert _track([*args, "--shard", "1/2"], tiny_models) == 0
    assert _files(out) == _files(straight)


def test_shards_refuse_force_and_other_settings(clips, tiny_models, capsys):
    """Shards run at once into one OUT: `--force` in each would remove what the others wrote
    (torchrun passes every process the same flags), and a shard with other settings that
    starts while the first has written only its manifest must not take the folder over."""
    manifest = str(clips / "videos.csv")
    out = clips / "out"
    args = [manifest, "-o", str(out)]
    assert _track([*args, "--shard", "0/2"], tiny_models) == 0
    capsys.readouterr()

    def files() -> dict[str, bytes]:
        return {str(p): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    before = files()
    assert _track([*args, "--shard", "1/2", "--force"], tiny_models) == 2
    assert len(errors := _errors(capsys)) == 1 and "--force with shards" in errors[0]
    assert files() == before

    # Shard 0 has claimed OUT (its manifest) and loads its models: a shard with another
    # SAMIC network is refused in one line and removes nothing.
    started = clips / "started"
    started.mkdir()
    (started / "run.json").write_bytes((out / "run.json").read_bytes())
    (clips / "other.pt").write_bytes(tiny_models["samic"].read_bytes())  # another path
    other = ["--sam-checkpoint", str(tiny_models["sam"]), "--samic", str(clips / "other.pt")]
    code = main(["track", manifest, "-o", str(started), "--shard", "1/2", *other])
    assert code == 2 and "holds another run" in _errors(capsys)[0]
    assert sorted(p.name for p in started.iterdir()) == ["run.json"]
    assert (started / "run.json").read_bytes() == (out / "run.json").read_bytes()


def test_interrupted_while_summarizing_the_rerun_writes_the_summary(
    clips, tiny_models, monkeypatch
):
    """Stopped (Ctrl-C; SIGKILL alike) when every video is tracked, as the collection's
    summary.json is written: the rerun writes summary.json and coco.json, the bytes of a
    straight run, instead of finding the collection finished without them."""
    import samic_vos.pipelines.track as pipeline

    manifest = str(clips / "videos.csv")
    straight = clips / "straight"
    assert _track([manifest, "-o", str(straight), "--format", "coco"], tiny_models) == 0
    real_write = pipeline.atomic_write_text

    def stop_at_summary(path, text):
        if Path(path).name == "summary.json":
            raise KeyboardInterrupt
        real_write(path, text)

    out = clips / "out"
    args = [manifest, "-o", str(out), "--format", "coco"]
    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "atomic_write_text", stop_at_summary)
        assert _track(args, tiny_models) == 130
    assert not (out / "summary.json").exists()
    assert _track(args, tiny_models) == 0
    assert _files(out) == _files(straight)


def test_one_video_with_coco_and_exports(clips, tiny_models):
    out = clips / "bear"
    clip = clips / "clips" / "clip_one"
    first = clips / "clips" / "clip_one_first.png"
    assert (
        _track(
            [str(clip), "--first-mask", str(first), "-o", str(out), "--format", "coco"], tiny_models
        )
        == 0
    )
    coco = COCO(str(out / "coco.json"))
    images = coco.loadImgs(coco.getImgIds())
    # a frame folder's frames are files: COCO names them <video>/<frame file>
    assert [(i["video"], i["frame_index"], i["file_name"]) for i in images] == [
        ("bear", t, f"bear/{t:05d}.png") for t in range(CLIPS["one"])
    ]
    # every export format reads the same run: one label file per frame, named video__frame
    for fmt, pattern in (
        ("yolo", "labels/*.txt"),
        ("labelme", "*.json"),
        ("voc", "Annotations/*.xml"),
    ):
        target = clips / fmt
        assert main(["export", "--format", fmt, str(out), "-o", str(target)]) == 0
        names = sorted(p.stem for p in target.glob(pattern))
        assert names == [f"bear__{t:05d}" for t in range(CLIPS["one"])], fmt
    # LabelMe opens each frame's own image
    for t in range(CLIPS["one"]):
        document = json.loads((clips / "labelme" / f"bear__{t:05d}.json").read_text())
        assert (clips / "labelme" / document["imagePath"]).resolve() == clip / f"{t:05d}.png"
    # frames no longer in place (as a video file's, which are no files): <video>/<frame>
    clip.rename(clips / "moved")
    assert main(["export", "--format", "coco", str(out), "-o", str(clips / "coco-moved")]) == 0
    images = json.loads((clips / "coco-moved" / "coco.json").read_text())["images"]
    assert [i["file_name"] for i in images] == [f"bear/{t:05d}" for t in range(CLIPS["one"])]
