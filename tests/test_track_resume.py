"""`samic-vos track` runs that survive: resume after an interrupt, masks on later frames,
finished runs, `--force`, and folders of other runs; tiny random-weight models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from samic_vos.commands.cli import main
from samic_vos.data.mask_io import read_mask, write_mask
from samic_vos.inference.prompter import TrackerConfig
from samic_vos.inference.prompters import samic_tracker
from samic_vos.inference.tracker import CausalTracker
from samic_vos.runtime.stage_threads import StageThreads
from samic_vos.sam.segmenter import Segmentation

SIZE = 64


@pytest.fixture(scope="module")
def models(tiny_models) -> list[str]:
    return ["--sam-checkpoint", str(tiny_models["sam"]), "--samic", str(tiny_models["samic"])]


@pytest.fixture(scope="module")
def judo(tmp_path_factory, shared_data) -> tuple[Path, Path]:
    """Judo's 16 frames and its 4 masks, frame 5's padded from 853 to the frames' 854 px."""
    base = tmp_path_factory.mktemp("judo")
    source = shared_data / "judo"
    frames = base / "frames"
    shutil.copytree(source / "JPEGImages/480p/judo", frames)
    masks = base / "masks"
    shutil.copytree(source / "Annotations/480p/judo", masks)
    narrow = read_mask(masks / "00005.png")
    write_mask(masks / "00005.png", np.pad(narrow, ((0, 0), (0, 854 - narrow.shape[1]))))
    return frames, masks


class StepCounter:
    """Counts CausalTracker.step calls; raises KeyboardInterrupt on frame ``stop_at``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, stop_at: int | None = None) -> None:
        self.calls, self.stop_at = 0, stop_at
        real = CausalTracker.step

        def step(tracker, rgb, mask=None, embedding=None):
            if tracker.frame_index + 1 == self.stop_at:
                raise KeyboardInterrupt
            self.calls += 1
            return real(tracker, rgb, mask, embedding)

        monkeypatch.setattr(CausalTracker, "step", step)


def _files(out: Path) -> dict[str, bytes]:
    names = [
        "prompts.jsonl",
        "config.yaml",
        *(f"masks/{p.name}" for p in (out / "masks").iterdir()),
    ]
    return {name: (out / name).read_bytes() for name in sorted(names)}


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_masks_on_later_frames_add_objects_and_a_resumed_run_is_byte_identical(
    tmp_path, judo, models, monkeypatch
):
    frames, masks = judo
    straight, split = tmp_path / "straight", tmp_path / "split"
    args = [str(frames), "--masks", str(masks), *models]
    assert main(["track", *args, "-o", str(straight)]) == 0

    # Objects given at frames 5, 8 and 13 appear from those frames, with their ids.
    records = _records(straight)
    assert len(records) == 16
    for index, record in enumerate(records):
        expected = {"1"} | {str(k) for k, start in ((2, 5), (3, 8), (4, 13)) if index >= start}
        assert set(record["objects"]) == expected, index
    for obj_id, start in ((2, 5), (3, 8), (4, 13)):
        assert records[start]["objects"][str(obj_id)]["given"] is True
        given = read_mask(masks / f"{start:05d}.png") == obj_id
        assert np.array_equal(read_mask(straight / f"masks/{start:05d}.png") == obj_id, given)
        before = read_mask(straight / f"masks/{start - 1:05d}.png")
        assert obj_id not in np.unique(before)

    # Interrupted after frame 9 (objects 1-3 live, 3 given at 8): the rerun computes only the
    # 6 missing frames and ends with the straight run's bytes.
    interrupted = StepCounter(monkeypatch, stop_at=10)
    assert main(["track", *args, "-o", str(split)]) == 130
    assert interrupted.calls == 10 and len(_records(split)) == 10
    monkeypatch.undo()
    resumed = StepCounter(monkeypatch)
    assert main(["track", *args, "-o", str(split)]) == 0
    assert resumed.calls == 6
    assert _files(split) == _files(straight)

    # A finished run is not redone; --force redoes it (same bytes).
    again = StepCounter(monkeypatch)
    assert main(["track", *args, "-o", str(split)]) == 0
    assert again.calls == 0
    assert main(["track", *args, "-o", str(split), "--force"]) == 0
    assert again.calls == 16 and _files(split) == _files(straight)


@pytest.mark.slow
def test_a_cut_last_prompts_line_is_redone(tmp_path, shared_data, models, monkeypatch):
    frames = tmp_path / "frames"
    frames.mkdir()
    for path in sorted((shared_data / "DAVIS/JPEGImages/480p/bear").glob("*.jpg"))[:5]:
        shutil.copy(path, frames / path.name)
    first = shared_data / "videos/davis_bear_first_mask.png"
    args = ["track", str(frames), "--first-mask", str(first), *models]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main([*args, "-o", str(straight)]) == 0
    StepCounter(monkeypatch, stop_at=3)
    assert main([*args, "-o", str(split)]) == 130
    monkeypatch.undo()
    with open(split / "prompts.jsonl", "a") as handle:  # a crash in mid-line
        handle.write('{"frame": "00003", "obj')
    counter = StepCounter(monkeypatch)
    assert main([*args, "-o", str(split)]) == 0
    assert counter.calls == 2 and _files(split) == _files(straight)


def _one_error_line(capsys) -> str:
    """The error line; other lines may only be warnings (the random backbone's)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("samic-vos: error: "), err
    assert all(line.startswith("samic-vos: warning: ") for line in err[:-1]), err
    return err[-1]


def test_a_folder_of_another_run_or_of_other_files_is_refused(
    tmp_path, capsys, shared_data, models
):
    frames = tmp_path / "frames"
    frames.mkdir()
    for path in sorted((shared_data / "DAVIS/JPEGImages/480p/bear").glob("*.jpg"))[:2]:
        shutil.copy(path, frames / path.name)
    first = shared_data / "videos/davis_bear_first_mask.png"
    out = tmp_path / "out"
    args = ["track", str(frames), "--first-mask", str(first), "-o", str(out), *models, "-q"]
    assert main(args) == 0
    before = _files(out)
    config = tmp_path / "other.yaml"
    config.write_text("tracker: {batch_size: 2}\n")
    assert main([*args, "--config", str(config)]) == 2
    message = _one_error_line(capsys)
    assert "holds another run" in message and "config.tracker.batch_size" in message
    assert "--force" in message
    assert _files(out) == before  # nothing touched
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    args[args.index(str(out))] = str(foreign)
    assert main(args) == 2
    assert "holds no samic-vos run" in _one_error_line(capsys)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_wrong_size_and_misnamed_masks_in_the_mask_folder(tmp_path, capsys, judo, shared_data):
    frames, _ = judo
    masks = tmp_path / "masks"
    shutil.copytree(shared_data / "judo/Annotations/480p/judo", masks)
    out = tmp_path / "out"
    assert main(["track", str(frames), "--masks", str(masks), "-o", str(out)]) == 2
    message = _one_error_line(capsys)
    assert "00005.png: mask is 853x480" in message and "854x480" in message
    assert not out.exists()
    (masks / "00005.png").unlink()
    Image.open(masks / "00008.png").save(masks / "frame_8.png")
    assert main(["track", str(frames), "--masks", str(masks), "-o", str(out)]) == 2
    assert "frame_8.png: names no frame" in _one_error_line(capsys)
    (masks / "frame_8.png").unlink()
    (masks / "00000.png").unlink()
    assert main(["track", str(frames), "--masks", str(masks), "-o", str(out)]) == 2
    assert "no mask for the first frame (00000)" in _one_error_line(capsys)
    assert not out.exists()


class NearNet(torch.nn.Module):
    """SAMIC stand-in: bright target pixels within 12 px of the reference heat map's peak."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(input_size=(SIZE, SIZE), resize="cv2")

    def extract_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        return [images.clone()]

    def predict(self, ref_feats, ref_heat, tgt_feats) -> torch.Tensor:
        rows, cols = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
        out = []
        for heat, target in zip(ref_heat, tgt_feats[0], strict=True):
            peak = int(heat[0].flatten().argmax())
            near = (rows - peak // SIZE) ** 2 + (cols - peak % SIZE) ** 2 < 12**2
            bright = target.mean(dim=0) > 0.5
            out.append(torch.where(bright & near, 10.0, -10.0)[None])
        return torch.stack(out)


class BrightSegmenter:
    """SAM stand-in: a prompt on a bright pixel gives that pixel's bright square."""

    threads = StageThreads.resolve()

    def set_frame(self, rgb: np.ndarray) -> None:
        self.labels = cv2.connectedComponents((rgb.mean(axis=2) > 128).astype(np.uint8))[1]

    def segment(self, groups) -> Segmentation:
        hit = {int(self.labels[int(round(y)), int(round(x))]) for g in groups for x, y in g}
        mask = np.isin(self.labels, list(hit - {0}))
        logits = np.where(mask, 5.0, -5.0).astype(np.float32)
        return Segmentation(mask, logits, 0.9 if mask.any() else 0.0, [0.9] * len(groups))


def _moving_square(index: int) -> np.ndarray:
    rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
    row = col = 4 + 6 * index  # the object moves 6 px per frame, diagonally
    rgb[row : row + 8, col : col + 8] = 255
    rgb[4:12, 50:58] = 255  # a distractor that never moves
    return rgb


def test_a_restored_tracker_continues_exactly_as_the_straight_one(monkeypatch):
    import samic_vos.inference.samic_prompter as prompter_module
    from samic_vos.inference.prompts_log import frame_record
    from samic_vos.inference.track_resume import plan_restore, restore_tracker

    def to_unit(rgb, size, resize):
        return torch.from_numpy(rgb / 255.0).permute(2, 0, 1)[None].float()

    monkeypatch.setattr(prompter_module, "preprocess", to_unit)
    frames = [_moving_square(i) for i in range(8)]
    first = (frames[0].mean(axis=2) > 128).astype(np.uint8)
    first[:, 40:] = 0  # only the moving square is the object
    config = TrackerConfig(first_frame_reference=False)
    straight = samic_tracker(NearNet(), BrightSegmenter(), config)
    records, results = [], []
    for index, rgb in enumerate(frames):
        result = straight.step(rgb, first if index == 0 else None)
        records.append(json.loads(json.dumps(frame_record(f"{index:05d}", result))))
        results.append(result)
    # The object is followed (its reference moves each frame) and the distractor never taken.
    assert all(r.objects[1].reference for r in results[1:])
    assert all(r.ids[4:12, 50:58].max() == 0 and r.ids.sum() == 64 for r in results)

    for done in (1, 3, 6):
        resumed = samic_tracker(NearNet(), BrightSegmenter(), config)
        plan = plan_restore(records[:done])
        assert plan.objects == {1: (0, done - 1)}
        kept = {k: (frames[k], results[k].ids) for k in plan.frames}
        restore_tracker(resumed, plan, kept, records[:done], (SIZE, SIZE))
        for index in range(done, len(frames)):
            result = resumed.step(frames[index])
            assert np.array_equal(result.ids, results[index].ids), (done, index)
            assert np.array_equal(result.objects[1].points, results[index].objects[1].points)


@pytest.mark.slow
def test_an_interrupt_during_first_frame_adaptation_keeps_its_steps(
    tmp_path, shared_data, models, monkeypatch
):
    frames = tmp_path / "frames"
    frames.mkdir()
    for path in sorted((shared_data / "DAVIS/JPEGImages/480p/bear").glob("*.jpg"))[:3]:
        shutil.copy(path, frames / path.name)
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "network: {input_size: [64, 64], channels: [8, 16, 32], backbone: random}\n"
        "adaptation: {views: 3, steps: 6, batch_size: 2, val_every: 2, patience: 0,"
        " max_seconds: null, checkpoint_seconds: 0}\n"
    )
    first = shared_data / "videos/davis_bear_first_mask.png"
    args = ["track", str(frames), "--first-mask", str(first), "--config", str(config), "-q"]
    args += models[:2]  # SAM only: SAMIC is adapted on frame 0
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main([*args, "-o", str(straight)]) == 0

    steps, real_step = [0], torch.optim.Adam.step

    def step(self, *a, **k):
        if steps[0] == 4:
            raise KeyboardInterrupt
        steps[0] += 1
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    assert main([*args, "-o", str(split)]) == 130
    monkeypatch.undo()
    assert (split / "adaptation_state.pt").is_file() and not (split / "masks").exists()
    steps[0] = 0

    def counted(self, *a, **k):
        steps[0] += 1
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", counted)
    assert main([*args, "-o", str(split)]) == 0
    assert steps[0] == 2  # only the steps the interrupt cut are done again
    assert not (split / "adaptation_state.pt").exists()
    got, want = _files(split), _files(straight)
    config = got.pop("config.yaml").replace(b"/split/", b"/straight/")  # it names its folder
    assert config == want.pop("config.yaml") and got == want


@pytest.mark.slow
def test_a_resumed_track_writes_the_straight_runs_overlay(tmp_path, shared_data, tiny_models):
    """Interrupted by Ctrl-C (SIGINT) in a subprocess, then resumed: the overlay video has the
    straight run's bytes (frames before the interrupt are drawn from prompts.jsonl). Each
    process fills freed memory with its own byte (MALLOC_PERTURB_): bytes that depended on
    memory the encoder never wrote would differ."""
    import os
    import signal
    import subprocess
    import sys
    import time

    frames = tmp_path / "frames"
    frames.mkdir()
    for jpeg in sorted((shared_data / "DAVIS/JPEGImages/480p/bear").glob("*.jpg"))[:12]:
        shutil.copy(jpeg, frames / jpeg.name)
    first = shared_data / "videos/davis_bear_first_mask.png"
    models = ["--sam-checkpoint", str(tiny_models["sam"]), "--samic", str(tiny_models["samic"])]

    def track(out: Path, fill: int) -> subprocess.Popen:
        args = [str(frames), "--first-mask", str(first), *models, "-o", str(out), "-q"]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_PERTURB_": str(fill)}
        command = [sys.executable, "-m", "samic_vos", "track", *args]
        return subprocess.Popen([*command, "--overlay", str(out) + ".mp4"], env=env)

    straight, split = tmp_path / "straight", tmp_path / "split"
    assert track(straight, 37).wait(timeout=300) == 0
    process = track(split, 101)
    deadline = time.monotonic() + 300
    while not (split / "masks" / "00004.png").exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert 5 <= len(_records(split)) < 12
    assert track(split, 211).wait(timeout=300) == 0
    assert _files(split) == _files(straight)
    assert Path(f"{split}.mp4").read_bytes() == Path(f"{straight}.mp4").read_bytes()
