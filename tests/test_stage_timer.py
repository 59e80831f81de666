"""Stage timer: exclusive seconds of nested stages, each thread nesting on its own."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import pytest

from samic_vos.runtime import stage_timer
from samic_vos.runtime.stage_timer import StageTimer

WAIT = 30.0  # seconds: a generous bound for an event a thread sets, never a timing


class Clock:
    """A fake ``perf_counter`` the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(stage_timer.time, "perf_counter", fake)
    return fake


class Work:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def outer(self, seconds_before: float, seconds_after: float) -> None:
        self.clock.now += seconds_before
        self.inner(4.0)
        self.clock.now += seconds_after

    def inner(self, seconds: float) -> None:
        self.clock.now += seconds


def test_a_nested_stage_is_counted_once_for_the_innermost(clock):
    timer, work = StageTimer(), Work(clock)
    timer.wrap(work, "outer", "prompter")
    timer.wrap(work, "inner", "decoder")
    work.outer(1.0, 2.0)
    assert dict(timer.seconds) == {"prompter": 3.0, "decoder": 4.0}


def test_stages_in_two_threads_do_not_split_each_other(clock):
    """Thread A is inside "encoder" from t=0 to t=10 while the caller runs "decoder" from 1
    to 3: A's stage keeps its 10 s (one stack for both threads would give it 8)."""
    timer = StageTimer()
    entered, release = threading.Event(), threading.Event()

    class Encoder:
        def embed(self) -> None:
            entered.set()
            assert release.wait(WAIT)

    class Decoder:
        def segment(self) -> None:
            clock.now = 3.0

    encoder, decoder = Encoder(), Decoder()
    timer.wrap(encoder, "embed", "encoder")
    timer.wrap(decoder, "segment", "decoder")
    worker = threading.Thread(target=encoder.embed)
    worker.start()
    assert entered.wait(WAIT)
    clock.now = 1.0
    decoder.segment()
    clock.now = 10.0
    release.set()
    worker.join(WAIT)
    assert dict(timer.seconds) == {"encoder": 10.0, "decoder": 2.0}


def test_a_record_cut_by_a_killed_process_is_not_summed(tmp_path):
    """A process killed (SIGKILL) while writing its timing record leaves the atomic write's
    temporary file beside the records, cut short (``.<ns>.<8 characters>.part.json``): a
    rerun's scoring sums the records and skips it, rather than failing on it every time."""
    stages = ("encoder", "other")
    for count, wall, encoder in ((3, 5.0, 2.0), (2, 4.0, 1.5)):
        timer = StageTimer()
        timer.seconds["encoder"] = encoder
        stage_timer.save_timings(tmp_path, timer, stages, count, wall)
    folder = tmp_path / stage_timer.TIMINGS
    record = next(folder.iterdir()).read_bytes()
    fd, cut = tempfile.mkstemp(prefix=".1765000000000000000.", suffix=".part.json", dir=folder)
    os.write(fd, record[: len(record) // 2])
    os.close(fd)
    assert stage_timer.total_timings(tmp_path, stages) == (
        5,
        9.0,
        {"encoder": 3.5, "other": 5.5},
    )
    assert Path(cut).is_file()  # not the scoring's to remove: another shard may be writing it
