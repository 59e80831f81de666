"""The Python API gives the bytes `samic-vos track` and `samic-vos segment` write on the same
inputs (masks and prompts lines), with a checkpoint and with first-frame adaptation; and its
own promises: shared models stay independent, an adapted network is kept where asked, mistakes
are the CLI's one-line messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from fewshot_images import write_set

import samic_vos
from samic_vos.commands.cli import main
from samic_vos.data.mask_io import write_mask
from samic_vos.inference.prompts_log import frame_record, image_record
from samic_vos.model.checkpoint import load_samic

FRAMES = 3
# First-frame adaptation kept to seconds: the tiny head on a random backbone, a few steps.
ADAPTATION = {"views": 3, "steps": 3, "batch_size": 2}
RANDOM_NET = {"input_size": [64, 64], "channels": [8, 16, 32], "backbone": "random"}


@pytest.fixture
def bmx(tmp_path, shared_data) -> tuple[Path, Path]:
    """The first frames of DAVIS bmx-trees (a frame folder) and their 2-object first mask."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for path in sorted((shared_data / "DAVIS/JPEGImages/480p/bmx-trees").glob("*.jpg"))[:FRAMES]:
        shutil.copy(path, frames / path.name)
    return frames, shared_data / "multiobject/bmx-trees/00000.png"


def _cli(command: str, args: list[str], tiny_models, samic: bool, config: dict | None, out: Path):
    extra = ["--sam-checkpoint", str(tiny_models["sam"])]
    if samic:
        extra += ["--samic", str(tiny_models["samic"])]
    if config is not None:
        (out.parent / f"{out.name}.yaml").write_text(yaml.safe_dump(config))
        extra += ["--config", str(out.parent / f"{out.name}.yaml")]
    assert main([command, *args, "-o", str(out), *extra, "-q"]) == 0
    return [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]


def _models(tiny_models, samic: bool, **kwargs) -> samic_vos.Models:
    checkpoint = tiny_models["samic"] if samic else None
    return samic_vos.load_models(sam_checkpoint=tiny_models["sam"], samic=checkpoint, **kwargs)


@pytest.mark.parametrize("samic", [True, False], ids=["checkpoint", "adapted"])
def test_video_tracker_gives_the_bytes_of_track(
    tmp_path, tiny_models, bmx, samic, one_torch_thread
):
    frames, first = bmx
    config = None if samic else {"network": RANDOM_NET, "adaptation": ADAPTATION}
    cli = tmp_path / "cli"
    lines = _cli(
        "track", [str(frames), "--first-mask", str(first)], tiny_models, samic, config, cli
    )

    network = None if samic else samic_vos.SamicNetConfig(**RANDOM_NET)
    models = _models(tiny_models, samic, device="cpu", network=network)
    adapted = tmp_path / "adapted"
    tracker = samic_vos.VideoTracker(
        models, adaptation=samic_vos.AdaptationConfig(**ADAPTATION), adaptation_dir=adapted
    )
    names = sorted(p.stem for p in frames.iterdir())
    ours = tmp_path / "api"
    ours.mkdir()
    records = []
    for index, ids, prompts in tracker.track(frames, first):
        write_mask(ours / f"{names[index]}.png", ids)
        records.append(frame_record(names[index], samic_vos.FrameResult(ids, prompts)))
    assert len(records) == FRAMES
    for name in names:
        assert (ours / f"{name}.png").read_bytes() == (cli / "masks" / f"{name}.png").read_bytes()
    assert json.loads(json.dumps(records)) == lines
    assert (adapted / "samic_adapted.pt").is_file() != samic
    if not samic:
        net, _ = load_samic(adapted / "samic_adapted.pt")
        expected, _ = load_samic(cli / "samic_adapted.pt")
        for key, value in expected.head.state_dict().items():
            assert torch.equal(net.head.state_dict()[key], value), key


def test_step_by_step_equals_track_and_shared_models_stay_fresh(
    tmp_path, tiny_models, bmx, one_torch_thread
):
    frames, first = bmx
    models = _models(
        tiny_models, False, device="cpu", network=samic_vos.SamicNetConfig(**RANDOM_NET)
    )
    fresh = {k: v.clone() for k, v in models.net.head.state_dict().items()}
    adaptation = samic_vos.AdaptationConfig(**ADAPTATION)
    tracked = list(samic_vos.VideoTracker(models, adaptation=adaptation).track(frames, first))

    # A second tracker on the same models adapts its own copy from the same fresh network.
    stepper = samic_vos.VideoTracker(models, adaptation=adaptation)
    assert stepper.net is not models.net and stepper.net.backbone is models.net.backbone
    with samic_vos.open_frames(frames) as source:
        for frame, (index, ids, prompts) in zip(source, tracked, strict=True):
            mask = samic_vos.read_mask(first) if frame.index == 0 else None
            result = stepper.step(frame.rgb, mask)
            assert frame.index == index and np.array_equal(result.ids, ids)
            for obj_id, found in result.objects.items():
                assert np.array_equal(found.points, prompts[obj_id].points)
    for key, value in models.net.head.state_dict().items():
        assert torch.equal(value, fresh[key]), key

    # The network adapted into a folder is a checkpoint: with it, no adaptation, same masks.
    kept = samic_vos.VideoTracker(models, adaptation=adaptation, adaptation_dir=tmp_path / "kept")
    list(kept.track(frames, first))
    reuse = samic_vos.VideoTracker.load(
        sam_checkpoint=tiny_models["sam"], samic=tmp_path / "kept/samic_adapted.pt", device="cpu"
    )
    assert not reuse.models.adapts
    for (_, ids, _), (_, again, _) in zip(tracked, reuse.track(frames, first), strict=True):
        assert np.array_equal(ids, again)


@pytest.mark.parametrize(
    "samic, prompter, instances",
    [
        (True, "samic", False),
        (True, "samic", True),
        (False, "samic", False),
        (False, "persam", False),
    ],
    ids=["checkpoint", "instances", "adapted", "persam"],
)
def test_image_segmenter_gives_the_bytes_of_segment(
    tmp_path, tiny_models, samic, prompter, instances, one_torch_thread
):
    refs = write_set(tmp_path / "refs", 2)
    targets = write_set(tmp_path / "targets", 3, start=10, masks=False)
    masks = [p.with_name(f"{p.stem}_mask.png") for p in refs]
    args = [str(t) for t in targets]
    for ref, mask in zip(refs, masks, strict=True):
        args += ["--ref", str(ref), "--ref-mask", str(mask)]
    config = {"prompter": prompter, "instances": bool(instances)}
    if not samic:
        config |= {"network": RANDOM_NET, "adaptation": ADAPTATION}
    cli = tmp_path / "cli"
    lines = _cli("segment", args, tiny_models, samic, config, cli)

    network = None if samic else samic_vos.SamicNetConfig(**RANDOM_NET)
    segmenter = samic_vos.ImageSegmenter(
        _models(tiny_models, samic, prompter=prompter, device="cpu", network=network),
        adaptation=samic_vos.AdaptationConfig(**ADAPTATION),
    )
    segmenter.set_references(list(zip(refs, masks, strict=True)))
    results = segmenter.segment(targets)
    records = []
    for target, result in zip(targets, results, strict=True):
        write_mask(tmp_path / "ours.png", result.instances if instances else result.ids)
        expected = (cli / "masks" / f"{target.stem}.png").read_bytes()
        assert (tmp_path / "ours.png").read_bytes() == expected
        records.append(image_record(target.stem, target, result))
    assert json.loads(json.dumps(records)) == lines


def test_errors_are_the_cli_messages_naming_the_argument(
    tmp_path, shared_data, tiny_models, capsys
):
    missing = tmp_path / "sam.pt"
    with pytest.raises(samic_vos.UserError) as api:
        samic_vos.load_models(sam_checkpoint=missing, device="cpu")
    assert str(api.value) == f"{missing}: SAM checkpoint not found (`sam_checkpoint`)"
    first = shared_data / "videos/davis_bear_first_mask.png"
    args = [str(shared_data / "videos/davis_bear.mp4"), "--first-mask", str(first)]
    assert main(["track", *args, "-o", str(tmp_path / "o"), "--sam-checkpoint", str(missing)]) == 2
    cli = capsys.readouterr().err.strip().splitlines()[-1]
    assert cli == f"samic-vos: error: {missing}: SAM checkpoint not found (--sam-checkpoint)"

    with pytest.raises(samic_vos.UserError) as api:
        samic_vos.load_models(sam_checkpoint=tiny_models["sam"], samic=missing, device="cpu")
    assert str(api.value) == f"{missing}: SAMIC checkpoint not found (`samic`)"

    weights = tmp_path / "resnet50.pth"
    with pytest.raises(samic_vos.UserError, match="`backbone_weights`"):
        samic_vos.load_models(
            sam_checkpoint=tiny_models["sam"], backbone_weights=weights, device="cpu"
        )
    with pytest.raises(samic_vos.UserError, match="prompter must be one of samic, previous-mask"):
        samic_vos.load_models(sam_checkpoint=tiny_models["sam"], prompter="clicks")


def test_mistakes_in_api_calls(shared_data, tiny_models, one_torch_thread):
    models = _models(tiny_models, True, device="cpu")
    samic = str(tiny_models["samic"])
    shown = f"Models(sam_model='tiny', samic={samic!r}, prompter='samic', device='cpu')"
    assert repr(models) == shown
    judo = shared_data / "judo"
    frames, masks = judo / "JPEGImages/480p/judo", judo / "Annotations/480p/judo"
    tracker = samic_vos.VideoTracker(models)
    with pytest.raises(samic_vos.UserError) as error:
        next(tracker.track(frames, masks_dir=masks))
    assert str(error.value) == (
        f"{masks / '00005.png'}: mask is 853x480 but the video frames are 854x480; pass the "
        "mask of frame 00005"
    )
    rgb = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(samic_vos.UserError, match="`mask` is 63x48 but the frame is 64x48"):
        tracker.step(rgb, np.zeros((48, 63), np.uint8))
    with pytest.raises(samic_vos.UserError, match="the first frame needs a mask"):
        tracker.step(rgb)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 10:30] = 1
    assert tracker.step(rgb, mask).objects[1].given
    with pytest.raises(RuntimeError, match="new VideoTracker"):
        next(tracker.track(frames, mask))
    with pytest.raises(samic_vos.UserError, match="^`prompter`: 'previous-mask' tracks videos"):
        samic_vos.ImageSegmenter(_models(tiny_models, False, prompter="previous-mask"))
    images = samic_vos.ImageSegmenter(models)
    with pytest.raises(samic_vos.UserError, match="mask is 63x48 but the image is 64x48"):
        images.set_references([(rgb, mask[:, :63])])


def test_objects_added_mid_video_give_the_bytes_of_track_masks(
    tmp_path, tiny_models, bmx, one_torch_thread
):
    """Masks of later frames (``masks_dir``, the CLI's --masks): object 2 starts on frame 2;
    track() and step() give `samic-vos track --masks`'s masks and prompts lines."""
    frames, first = bmx
    ids = samic_vos.read_mask(first)
    masks = tmp_path / "masks"
    masks.mkdir()
    write_mask(masks / "00000.png", np.where(ids == 1, 1, 0).astype(np.uint8))
    write_mask(masks / "00002.png", np.where(ids == 2, 2, 0).astype(np.uint8))
    cli = tmp_path / "cli"
    lines = _cli("track", [str(frames), "--masks", str(masks)], tiny_models, True, None, cli)
    assert [sorted(line["objects"]) for line in lines] == [["1"], ["1"], ["1", "2"]]

    models = _models(tiny_models, True, device="cpu")
    names = sorted(p.stem for p in frames.iterdir())
    tracked = list(samic_vos.VideoTracker(models).track(frames, masks_dir=masks))
    stepper = samic_vos.VideoTracker(models)
    for name, (index, ids, prompts), line in zip(names, tracked, lines, strict=True):
        assert frame_record(name, samic_vos.FrameResult(ids, prompts)) == line
        write_mask(tmp_path / "ours.png", ids)
        assert (tmp_path / "ours.png").read_bytes() == (cli / "masks" / f"{name}.png").read_bytes()
        given = masks / f"{name}.png"
        rgb = samic_vos.read_image(frames / f"{name}.jpg")
        result = stepper.step(rgb, samic_vos.read_mask(given) if given.exists() else None)
        assert np.array_equal(result.ids, ids), index
