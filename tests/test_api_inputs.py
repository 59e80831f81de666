"""What a notebook user hands to ``VideoTracker.step`` / ``track`` and ``ImageSegmenter``: the
forms they have (bool or int masks, Pillow images, CPU tensors) give the uint8 inputs' results;
anything else is one ``UserError`` line naming the argument, before any work (never an id that
wraps around or becomes object 0, never an error from deep inside SAM)."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch
from fewshot_images import two_classes
from PIL import Image

import samic_vos


@pytest.fixture(scope="module")
def models(tiny_models):
    return samic_vos.load_models(
        sam_checkpoint=tiny_models["sam"], samic=tiny_models["samic"], device="cpu"
    )


@pytest.fixture(scope="module")
def scene():
    """A (60, 80, 3) uint8 frame and its (60, 80) uint8 mask of objects 1 and 2."""
    return two_classes(0)


def _first(models, rgb, mask):
    return samic_vos.VideoTracker(models).step(rgb, mask)


def test_step_takes_the_forms_a_notebook_has(models, scene, one_torch_thread):
    rgb, ids = scene
    expected = _first(models, rgb, ids).ids
    for mask in (ids.astype(np.int64), ids.astype(np.float32), torch.from_numpy(ids)):
        assert np.array_equal(_first(models, rgb, mask).ids, expected)
    for frame in (Image.fromarray(rgb), torch.from_numpy(rgb)):
        assert np.array_equal(_first(models, frame, ids).ids, expected)
    one = _first(models, rgb, ids == 1)
    assert list(one.objects) == [1]
    assert np.array_equal(one.ids, _first(models, rgb, (ids == 1).astype(np.uint8)).ids)
    # track()'s first mask as an array: converted as step converts it.
    tracked = samic_vos.VideoTracker(models)
    assert list(tracked.step(rgb, ids.astype(np.int32)).objects) == [1, 2]


@pytest.mark.parametrize(
    "frame, mask, message",
    [
        (
            "frame.jpg",
            None,
            r"^`frame` is a path \(frame.jpg\); read it first: samic_vos.read_image",
        ),
        (None, "mask.png", r"^`mask` is a path \(mask.png\); read it first: samic_vos.read_mask"),
        (
            "float",
            None,
            r"^`frame`: expected an \(H, W, 3\) uint8 RGB image, got \(60, 80, 3\) float32 "
            r"\(floats in 0..1",
        ),
        (
            "float255",
            None,
            r"^`frame`: .*, got \(60, 80, 3\) float64 \(floats in 0..255: x.round\(\).astype",
        ),
        ("chw", None, r"got \(3, 60, 80\) uint8 \(channels last: \(H, W, 3\), not \(3, H, W\)\)$"),
        ("gray", None, r"^`frame`: expected an \(H, W, 3\) uint8 RGB image, got \(60, 80\) uint8$"),
        (None, "hw1", r"^`mask`: expected an \(H, W\) id map, got \(60, 80, 1\) uint8$"),
        (None, "300", r"^`mask`: ids must be whole numbers 0..255 .*, got 300$"),
        (None, "-1", r"^`mask`: ids must be whole numbers 0..255 .*, got -1$"),
        (None, "half", r"^`mask`: ids must be whole numbers 0..255 .*, got 0.5$"),
        (None, "narrow", r"^`mask` is 79x60 but the frame is 80x60; pass the mask of this frame$"),
        (None, "empty", r"^`mask`: the first frame needs a mask with at least one object"),
    ],
)
def test_step_refuses_other_forms_in_one_line(models, scene, frame, mask, message):
    rgb, ids = scene
    frames = {
        None: rgb,
        "float": (rgb / 255).astype(np.float32),
        "float255": rgb.astype(np.float64),
        "chw": np.ascontiguousarray(rgb.transpose(2, 0, 1)),
        "gray": rgb[..., 0],
    }
    wide = ids.astype(np.int32)
    masks = {
        None: ids,
        "hw1": ids[..., None],
        "300": np.where(ids == 1, 300, wide),
        "-1": np.where(ids == 1, -1, wide),
        "half": np.where(ids == 1, 0.5, ids),
        "narrow": ids[:, :79],
        "empty": np.zeros_like(ids),
    }
    with pytest.raises(samic_vos.UserError, match=message):
        samic_vos.VideoTracker(models).step(frames.get(frame, frame), masks.get(mask, mask))


def test_step_refuses_another_videos_frame_size(models, scene, one_torch_thread):
    rgb, ids = scene
    tracker = samic_vos.VideoTracker(models)
    tracker.step(rgb, ids)
    with pytest.raises(samic_vos.UserError, match=r"^`frame` is 80x58 but this video's frames"):
        tracker.step(rgb[:58])


def test_track_refuses_a_first_mask_that_is_not_ids(models, scene, tmp_path):
    rgb, ids = scene
    Image.fromarray(rgb).save(tmp_path / "00000.png")
    tracker = samic_vos.VideoTracker(models)
    with pytest.raises(samic_vos.UserError, match=r"^`first_mask`: ids must be .*, got 0.5$"):
        next(tracker.track(tmp_path, np.where(ids == 1, 0.5, 0.0)))
    with pytest.raises(samic_vos.UserError, match=r"^`first_mask`: ids must be .*, got 300$"):
        next(tracker.track(tmp_path, np.where(ids == 1, 300, ids.astype(np.int32))))


def test_image_segmenter_takes_the_forms_a_notebook_has(models, one_torch_thread):
    (rgb, ids), (target, _) = two_classes(0), two_classes(1)
    segmenter = samic_vos.ImageSegmenter(models)
    segmenter.set_references([(rgb, ids)])
    (expected,) = segmenter.segment([target])
    segmenter.set_references([(Image.fromarray(rgb), ids.astype(np.int64))])
    (found,) = segmenter.segment([Image.fromarray(target)])
    assert np.array_equal(found.ids, expected.ids)
    assert np.array_equal(found.instances, expected.instances)


def test_image_segmenter_refuses_other_forms_in_one_line(models, tmp_path):
    rgb, ids = two_classes(0)
    segmenter = samic_vos.ImageSegmenter(models)
    cases = [
        ((rgb, ids), r"^`references`: expected a list of .*; pass \[\(image, mask\)\]$"),
        ([], r"^`references`: no reference image given$"),
        ([(rgb, np.zeros_like(ids))], r"^`references`: the references hold no class"),
        ([(rgb, ids[:30])], r"^`references\[0\]`: mask is 80x30 but the image is 80x60$"),
        (
            [(rgb, ids), (rgb, np.where(ids == 1, 300, ids.astype(np.int32)))],
            r"^`references\[1\]` mask: ids must be .*, got 300$",
        ),
        ([(rgb / 255, ids)], r"^`references\[0\]` image: expected an \(H, W, 3\) uint8 RGB"),
        ([(rgb, np.dstack([ids] * 3))], r"^`references\[0\]` mask: expected an \(H, W\) id map"),
        ([rgb], r"^`references\[0\]`: expected an \(image, mask\) pair or a Reference, got"),
    ]
    for references, message in cases:
        with pytest.raises(samic_vos.UserError, match=message):
            segmenter.set_references(references)  # type: ignore[arg-type]
    segmenter.set_references([(rgb, ids)])
    target = tmp_path / "target.png"
    Image.fromarray(rgb).save(target)
    for images, message in [
        (str(target), r"^`images`: expected a list of images, got a single one; pass \[image\]$"),
        (rgb, r"^`images`: expected a list of images"),
        ([rgb, rgb[..., 0]], r"^`images\[1\]`: expected an \(H, W, 3\) uint8 RGB image, got"),
    ]:
        with pytest.raises(samic_vos.UserError, match=message):
            segmenter.segment(images)  # type: ignore[arg-type]


def test_threads_sharing_models_give_each_videos_own_results(models, shared_data, one_torch_thread):
    """SAM's current image is the models' shared state: two trackers in two threads on one
    Models give what each gives alone (they take turns), not masks decoded against the other
    video's frame."""
    import threading

    videos = {}
    for name in ("bmx-trees", "bear"):
        folder = shared_data / "DAVIS/JPEGImages/480p" / name
        with samic_vos.open_frames(folder) as frames:
            rgbs = [frame.rgb for frame, _ in zip(frames, range(4), strict=False)]
        first = samic_vos.read_mask(shared_data / "DAVIS/Annotations/480p" / name / "00000.png")
        videos[name] = (rgbs, first)

    def track(name: str) -> list[np.ndarray]:
        rgbs, first = videos[name]
        tracker = samic_vos.VideoTracker(models)
        return [tracker.step(rgb, first if i == 0 else None).ids for i, rgb in enumerate(rgbs)]

    alone = {name: track(name) for name in videos}
    together: dict[str, list[np.ndarray]] = {}
    start = threading.Barrier(len(videos))

    def run(name: str) -> None:
        start.wait()
        together[name] = track(name)

    threads = [threading.Thread(target=run, args=(name,)) for name in videos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, expected in alone.items():
        assert len(together[name]) == len(expected)
        for index, (ids, want) in enumerate(zip(together[name], expected, strict=True)):
            assert np.array_equal(ids, want), (name, index)


def test_adapting_without_a_checkpoint_names_the_argument_to_pass(
    tiny_models, scene, caplog, one_torch_thread
):
    """The warning names ``load_models``' ``samic`` (the CLI shows it as --samic), not a
    keyword the API does not have."""
    from samic_vos.commands.cli import flag_names

    network = samic_vos.SamicNetConfig(input_size=(64, 64), backbone="random", channels=(8, 16, 32))
    models = samic_vos.load_models(sam_checkpoint=tiny_models["sam"], device="cpu", network=network)
    adaptation = samic_vos.AdaptationConfig(views=2, steps=1, batch_size=2)
    rgb, ids = scene
    with caplog.at_level("WARNING", logger="samic_vos"):
        samic_vos.VideoTracker(models, adaptation=adaptation).step(rgb, ids)
    (line,) = [r.getMessage() for r in caplog.records if "no SAMIC checkpoint" in r.getMessage()]
    assert line.startswith("no SAMIC checkpoint given (`samic`): adapting a fresh network")
    assert flag_names(line).startswith("no SAMIC checkpoint given (--samic): adapting")


def test_constructors_refuse_what_is_not_their_settings(models):
    make = re.escape("samic_vos.load_models(...)")
    with pytest.raises(samic_vos.UserError, match=rf"^`models`: expected {make}, got a str$"):
        samic_vos.VideoTracker("vit_b")  # type: ignore[arg-type]
    with pytest.raises(samic_vos.UserError, match=r"^`tracker`: expected samic_vos.TrackerConfig"):
        samic_vos.ImageSegmenter(models, {"heat_sigma": 0.1})  # type: ignore[arg-type]
    with pytest.raises(samic_vos.UserError, match=r"^`adaptation`: expected .*, got a dict$"):
        samic_vos.VideoTracker(models, adaptation={"steps": 3})  # type: ignore[arg-type]


def test_load_models_refuses_settings_of_another_type(tiny_models):
    with pytest.raises(samic_vos.UserError, match=r"^`encoder`: expected .*, got a dict$"):
        samic_vos.load_models(sam_checkpoint=tiny_models["sam"], encoder={"precision": "fp32"})  # type: ignore[arg-type]
    with pytest.raises(samic_vos.UserError, match=r"^`network`: expected samic_vos.SamicNet"):
        samic_vos.load_models(sam_checkpoint=tiny_models["sam"], network={"backbone": "random"})  # type: ignore[arg-type]
    # as the CLI refuses --samic with --prompter persam: a checkpoint that would never load
    for prompter in ("persam", "previous-mask"):
        with pytest.raises(samic_vos.UserError, match=rf"^`samic` is ignored: the {prompter} "):
            samic_vos.load_models(
                sam_checkpoint=tiny_models["sam"], samic=tiny_models["samic"], prompter=prompter
            )


def test_reset_starts_another_video_as_a_new_tracker_would(models, shared_data, one_torch_thread):
    def frames(name: str) -> list[np.ndarray]:
        folder = shared_data / "DAVIS/JPEGImages/480p" / name
        return [samic_vos.read_image(folder / f"{t:05d}.jpg") for t in range(3)]

    bmx = (
        frames("bmx-trees"),
        samic_vos.read_mask(shared_data / "multiobject/bmx-trees/00000.png"),
    )
    bear = (
        frames("bear"),
        samic_vos.read_mask(shared_data / "DAVIS/Annotations/480p/bear/00000.png"),
    )

    def run(tracker, video):
        rgbs, first = video
        return [tracker.step(rgb, first if t == 0 else None).ids for t, rgb in enumerate(rgbs)]

    used = samic_vos.VideoTracker(models)
    run(used, bmx)  # objects 1 and 2; the bear has object 1 only, at the same frame size
    used.reset()
    alone = run(samic_vos.VideoTracker(models), bear)
    again = run(used, bear)
    assert all(np.array_equal(a, b) for a, b in zip(again, alone, strict=True))
    assert set(np.unique(again[-1]).tolist()) <= {0, 1}
    used.reset()  # and track() runs a whole video on it again
    folder = shared_data / "DAVIS/JPEGImages/480p/bear"
    tracked = [ids for _, ids, _ in itertools.islice(used.track(folder, bear[1]), 3)]
    assert all(np.array_equal(a, b) for a, b in zip(tracked, alone, strict=True))


def test_adapting_leaves_the_callers_torch_rng_as_it_was(tiny_models, scene, one_torch_thread):
    """Adaptation seeds its own steps (the same network every run) and gives a notebook its
    torch random state back."""
    network = samic_vos.SamicNetConfig(input_size=(64, 64), backbone="random", channels=(8, 16, 32))
    models = samic_vos.load_models(sam_checkpoint=tiny_models["sam"], device="cpu", network=network)
    adaptation = samic_vos.AdaptationConfig(views=2, steps=2, batch_size=2)
    rgb, ids = scene
    results = []
    for _ in range(2):
        torch.manual_seed(1234)
        tracker = samic_vos.VideoTracker(models, adaptation=adaptation)
        results.append(tracker.step(rgb, ids).ids)
        drawn = torch.rand(4)
        torch.manual_seed(1234)
        assert torch.equal(drawn, torch.rand(4))  # as if adaptation had not drawn anything
    assert np.array_equal(results[0], results[1])


def test_write_mask_writes_ids_as_given_or_refuses_them(tmp_path):
    """An id map of another dtype is written with its own values, or refused in one line:
    never wrapped (300 → 44, −1 → 255 void) nor truncated (1.7 → 1)."""
    path = tmp_path / "ids.png"
    ids = np.array([[0, 1], [2, 254]])
    samic_vos.write_mask(path, ids)
    assert np.array_equal(samic_vos.read_mask(path), ids)
    for value, shown in [(300, "300"), (-1, "-1"), (1.7, "1.7")]:
        with pytest.raises(samic_vos.UserError, match=rf"^`ids`: ids must be .*, got {shown}$"):
            samic_vos.write_mask(path, np.where(ids == 1, value, ids))
    assert np.array_equal(samic_vos.read_mask(path), ids)  # left as it was


def test_a_0_255_array_mask_is_void_and_the_message_says_so(models, scene, tmp_path):
    """As an array, 255 is void (DAVIS), so a 0/255 binary mask holds no object; the message
    says that and how to pass it, instead of calling the mask background."""
    rgb, ids = scene
    binary = np.where(ids == 1, 255, 0).astype(np.uint8)
    hint = r"; a 0/255 binary mask: pass mask > 0$"
    with pytest.raises(samic_vos.UserError, match=r"^`mask`: the first frame needs .*" + hint):
        samic_vos.VideoTracker(models).step(rgb, binary)
    Image.fromarray(rgb).save(tmp_path / "00000.png")
    with pytest.raises(samic_vos.UserError, match=r"^`first_mask`: .*background or void\)" + hint):
        next(samic_vos.VideoTracker(models).track(tmp_path, binary))
    segmenter = samic_vos.ImageSegmenter(models)
    with pytest.raises(samic_vos.UserError, match=r"^`references`: .*background or void\)" + hint):
        segmenter.set_references([(rgb, binary)])
    with pytest.raises(samic_vos.UserError, match=r"\(every mask is background or void\)$"):
        segmenter.set_references([(rgb, np.zeros_like(ids))])  # no void: no hint


def test_reference_points_are_x_y_inside_the_image_or_refused(models, one_torch_thread):
    """A Reference's clicked points are (N, 2) (x, y) pixels of its image, as a SAMBOX file's
    must be; (row, col) points that fall outside, or another shape, are refused in one line
    (not silently dropped from the heat map, or reshaped into other points)."""
    rgb, ids = two_classes(0)  # 80 wide, 60 high
    segmenter = samic_vos.ImageSegmenter(models)
    clicked = {1: [[16.0, 17.0]], 2: []}  # class 2: none clicked, derived from its mask
    segmenter.set_references([samic_vos.Reference(rgb, ids, points=clicked)])
    assert segmenter.engine.reference_points[0][1].tolist() == [[16.0, 17.0]]
    assert len(segmenter.engine.reference_points[0][2])
    cases = [
        (
            {1: [[17, 70]]},
            r"\[17, 70\] lies outside the 80x60 image \(x in \[0, 79\], y in \[0, 59\]",
        ),
        ({1: [[-1, 5]]}, r"\[-1, 5\] lies outside"),
        ({1: [[1, 2, 3], [4, 5, 6]]}, r"expected \(N, 2\) \(x, y\) points, got \(2, 3\) int64$"),
        ({1: [[np.nan, 5]]}, r"expected \(N, 2\) \(x, y\) points, got a point that is not finite"),
    ]
    for points, message in cases:
        with pytest.raises(
            samic_vos.UserError, match=r"^`references\[0\]` points\[1\]: " + message
        ):
            segmenter.set_references([samic_vos.Reference(rgb, ids, points=points)])


def test_track_refuses_frames_in_memory_in_one_line(models, scene):
    """track() reads a video file or frame folder; frames already in memory go to step()."""
    rgb, ids = scene
    for video, kind in [([rgb, rgb], "list"), (np.stack([rgb, rgb]), "ndarray")]:
        with pytest.raises(
            samic_vos.UserError,
            match=rf"^`video`: expected a video file or frame folder, got a {kind}; for frames "
            r"in memory call step\(frame, mask\) per frame$",
        ):
            next(samic_vos.VideoTracker(models).track(video, ids))  # type: ignore[arg-type]


def test_an_empty_image_is_refused_in_one_line(models, scene):
    """A crop that came out empty is named, not an OpenCV assertion from inside SAMIC."""
    rgb, ids = scene
    empty = rgb[:0]
    segmenter = samic_vos.ImageSegmenter(models)
    segmenter.set_references([(rgb, ids)])
    with pytest.raises(samic_vos.UserError, match=r"^`images\[1\]`: the image is empty, 80x0$"):
        segmenter.segment([rgb, empty])
    with pytest.raises(samic_vos.UserError, match=r"^`frame`: the image is empty, 80x0$"):
        samic_vos.VideoTracker(models).step(empty, ids[:0])


def test_write_mask_into_a_missing_folder_names_it(tmp_path):
    """As in the module docstring's loop, before the folder exists: one line naming the mask
    and its folder, not the temporary file it would have been written as first."""
    path = tmp_path / "masks" / "00000.png"
    with pytest.raises(samic_vos.UserError) as error:
        samic_vos.write_mask(path, np.ones((4, 4), np.uint8))
    assert str(error.value) == f"{path}: cannot write it, folder {path.parent} not found"
    assert not path.parent.exists()


def test_segment_takes_a_batch_array_and_refuses_one_image_tensor(models, one_torch_thread):
    """An (N, H, W, 3) batch is N images, a numpy array as a tensor; one (H, W, 3) image, a
    numpy array or a tensor, is asked for in a list (not segmented row by row)."""
    (rgb, ids), (target, _) = two_classes(0), two_classes(1)
    segmenter = samic_vos.ImageSegmenter(models)
    segmenter.set_references([(rgb, ids)])
    expected = [found.ids for found in segmenter.segment([target, rgb])]
    for batch in (np.stack([target, rgb]), torch.from_numpy(np.stack([target, rgb]))):
        found = [result.ids for result in segmenter.segment(batch)]  # type: ignore[arg-type]
        assert all(np.array_equal(a, b) for a, b in zip(found, expected, strict=True))
    for single in (target, torch.from_numpy(target)):
        with pytest.raises(samic_vos.UserError, match=r"^`images`: expected a list of images"):
            segmenter.segment(single)  # type: ignore[arg-type]
