"""Run-ahead: same items and results as in order, one item ahead at most, errors in order.

On a CPU the worker is a thread (CUDA adds a stream, not testable here); the ordering and
identity logic is the same.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
import torch

from samic_vos.jobs.track import TrackConfig
from samic_vos.model.checkpoint import save_samic
from samic_vos.model.samic_net import SamicNetConfig, build_samic
from samic_vos.pipelines.track import TrackInputs, run_track
from samic_vos.sam.encoder import EncoderConfig
from samic_vos.sam.models import build_sam, save_sam
from samic_vos.sam.run_ahead import run_ahead, run_ahead_enabled

WAIT = 30.0  # seconds: a generous bound for an event the worker sets, never a timing


class Counted:
    """An iterable of ``0..count-1`` that records how many items were pulled from it."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.pulled = 0

    def __iter__(self):
        for index in range(self.count):
            self.pulled += 1
            yield index


@pytest.mark.parametrize("enabled", [False, True])
def test_same_items_and_results_in_order(enabled):
    out = list(run_ahead(range(7), lambda i: i * i, enabled=enabled))
    assert out == [(i, i * i) for i in range(7)]


def test_next_item_is_worked_on_while_the_caller_holds_this_one():
    started = {i: threading.Event() for i in range(5)}
    workers = set()

    def work(i):
        workers.add(threading.current_thread().name)
        started[i].set()
        return -i

    items = Counted(5)
    for index, result in run_ahead(items, work, enabled=True):
        assert result == -index
        if index + 1 < 5:  # item t+1 starts while the caller still handles item t
            assert started[index + 1].wait(WAIT)
        assert items.pulled <= index + 2  # never more than one item ahead: O(1) memory
    assert items.pulled == 5
    assert workers and threading.current_thread().name not in workers


def test_off_runs_in_the_callers_thread_on_demand():
    items = Counted(4)
    threads = set()

    def work(i):
        threads.add(threading.current_thread().name)
        return i

    for index, _ in run_ahead(items, work, enabled=False):
        assert items.pulled == index + 1
    assert threads == {threading.current_thread().name}


@pytest.mark.parametrize("enabled", [False, True])
def test_an_error_reaches_the_caller_at_its_item(enabled):
    def work(i):
        if i == 3:
            raise ValueError("bad frame 3")
        return i

    seen = []
    with pytest.raises(ValueError, match="bad frame 3"):
        for index, _ in run_ahead(range(6), work, enabled=enabled):
            seen.append(index)
    assert seen == [0, 1, 2]


def test_closing_early_stops_the_worker():
    items = Counted(100)
    stream = run_ahead(items, lambda i: i, enabled=True)
    assert next(stream) == (0, 0)
    stream.close()
    assert items.pulled <= 2
    assert not [t for t in threading.enumerate() if t.name.startswith("run-ahead")]


def test_enabled_by_config():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not run_ahead_enabled(EncoderConfig(), cpu)
    assert run_ahead_enabled(EncoderConfig(), cuda)
    assert run_ahead_enabled(EncoderConfig(run_ahead="on"), cpu)
    assert not run_ahead_enabled(EncoderConfig(run_ahead="off"), cuda)


@pytest.mark.slow
def test_track_with_run_ahead_equals_in_order(tmp_path, shared_data):
    """The whole track job on tiny models: masks and prompts byte-identical either way."""
    torch.manual_seed(0)
    save_sam(tmp_path / "sam.pt", build_sam("tiny", random_init=True), "tiny")
    net = SamicNetConfig(input_size=(64, 64), backbone="random", channels=(8, 16, 32))
    save_samic(tmp_path / "samic.pt", build_samic(net))
    frames = tmp_path / "frames"
    frames.mkdir()
    for path in sorted((shared_data / "DAVIS/JPEGImages/480p/bmx-trees").glob("*.jpg"))[:6]:
        shutil.copy(path, frames / path.name)
    outputs = {}
    for mode in ("off", "on"):
        inputs = TrackInputs(
            video=frames,
            first_mask=shared_data / "multiobject/bmx-trees/00000.png",
            out_dir=tmp_path / mode,
            samic_checkpoint=tmp_path / "samic.pt",
            sam_checkpoint=tmp_path / "sam.pt",
        )
        config = TrackConfig(sam_model="tiny", encoder=EncoderConfig(run_ahead=mode))
        assert run_track(inputs, config, progress=False).computed == 6
        outputs[mode] = {
            p.relative_to(tmp_path / mode): p.read_bytes()
            for p in sorted((tmp_path / mode).rglob("*"))
            if p.is_file() and p.name not in {"config.yaml", "run.json"}
        }
    assert len(outputs["on"]) == 7 and Path("prompts.jsonl") in outputs["on"]
    assert outputs["on"] == outputs["off"]
