"""Background jobs: in order, off the caller's thread, bounded, errors stop what follows; and
the tracking loop's writes through them (a failed mask write leaves only whole frames)."""

from __future__ import annotations

import shutil
import threading

import pytest

from samic_vos.commands.cli import main
from samic_vos.runtime.background_jobs import BackgroundJobs
from samic_vos.runtime.errors import UserError

WAIT = 30.0  # seconds: a generous bound for an event a thread sets, never a timing


def test_jobs_run_in_order_in_one_worker_thread():
    ran, threads = [], set()

    def job(i):
        def run():
            ran.append(i)
            threads.add(threading.current_thread())

        return run

    with BackgroundJobs(depth=3) as jobs:
        for i in range(20):
            jobs.submit(job(i))
    assert ran == list(range(20))  # all done when the block ends, in the order given
    assert len(threads) == 1 and threading.main_thread() not in threads


def test_submit_waits_for_the_oldest_job_beyond_depth():
    release, finished = threading.Event(), []

    def slow():
        assert release.wait(WAIT)
        finished.append(0)

    with BackgroundJobs(depth=2) as jobs:
        jobs.submit(slow)
        jobs.submit(lambda: finished.append(1))  # two given: depth reached, nothing waited
        assert finished == []
        threading.Thread(target=release.set).start()
        jobs.submit(lambda: finished.append(2))  # one over depth: waits for the oldest
        assert finished[:1] == [0]
        jobs.submit(lambda: finished.append(3))
    assert finished == [0, 1, 2, 3]


def test_a_failed_job_stops_the_later_ones_and_is_raised_to_the_caller():
    ran = []

    def fail():
        raise UserError("disk full")

    jobs = BackgroundJobs(depth=1)
    jobs.submit(lambda: ran.append(0))
    jobs.submit(fail)
    with pytest.raises(UserError, match="disk full"):
        jobs.submit(lambda: ran.append(2))  # the failure is raised here, or at close
        jobs.submit(lambda: ran.append(3))
    with pytest.raises(UserError, match="disk full"):
        jobs.close()
    assert ran == [0]


def test_leaving_by_an_exception_finishes_the_jobs_given_and_raises_the_blocks_own():
    release, ran = threading.Event(), []

    def slow():
        assert release.wait(WAIT)
        ran.append("slow")

    with pytest.raises(KeyboardInterrupt):
        with BackgroundJobs() as jobs:
            jobs.submit(slow)
            jobs.submit(lambda: ran.append("next"))
            threading.Thread(target=release.set).start()
            raise KeyboardInterrupt
    assert ran == ["slow", "next"]


def test_interrupted_while_waiting_it_drops_the_jobs_not_started_and_finishes_the_running_one():
    """A second Ctrl-C while the jobs are waited for: no job runs after ``close`` has returned,
    and the one running is not cut halfway."""
    started, release, ran = threading.Event(), threading.Event(), []

    def running():
        started.set()
        assert release.wait(WAIT)
        ran.append("running")

    jobs = BackgroundJobs(depth=5)
    jobs.submit(running)
    jobs.submit(lambda: ran.append("queued"))
    assert started.wait(WAIT)
    queued = jobs._pending[1]

    class Interrupted:  # the caller's wait for the first job, cut by Ctrl-C
        def result(self):
            raise KeyboardInterrupt

    def release_once_dropped():  # the running job ends once the queued one is dropped
        for _ in range(int(WAIT / 0.01)):
            if queued.cancelled():
                break
            threading.Event().wait(0.01)
        release.set()

    threading.Thread(target=release_once_dropped, daemon=True).start()
    jobs._pending.appendleft(Interrupted())
    with pytest.raises(KeyboardInterrupt):
        jobs.close()
    assert ran == ["running"]  # finished before close returned; the queued job never runs


def test_a_mask_write_failing_mid_video_leaves_whole_frames_only(
    tmp_path, shared_data, tiny_models, monkeypatch, capsys
):
    """Frame 3's mask cannot be written (a full disk): frames 0-2 keep a mask and a line each,
    frame 3 has neither, and the error is one line with exit status 2."""
    from samic_vos.jobs import track

    frames = tmp_path / "frames"
    frames.mkdir()
    for path in sorted((shared_data / "DAVIS/JPEGImages/480p/bear").glob("*.jpg"))[:6]:
        shutil.copy(path, frames / path.name)
    real, calls = track.write_mask, []

    def write_mask(path, ids):
        calls.append(path.name)
        if len(calls) == 4:
            raise UserError(f"{path}: no space left on device; free some space")
        real(path, ids)

    monkeypatch.setattr(track, "write_mask", write_mask)
    out = tmp_path / "out"
    first = shared_data / "DAVIS/Annotations/480p/bear/00000.png"
    models = ["--sam-checkpoint", str(tiny_models["sam"]), "--samic", str(tiny_models["samic"])]
    code = main(["track", str(frames), "--first-mask", str(first), "-o", str(out), *models])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("00003.png: no space left on device; free some space")
    lines = (out / "prompts.jsonl").read_text().splitlines()
    assert len(lines) == 3
    assert sorted(p.name for p in (out / "masks").iterdir()) == [
        "00000.png",
        "00001.png",
        "00002.png",
    ]
