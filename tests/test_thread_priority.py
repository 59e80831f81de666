"""The foreground gate: background threads pause at their pause points while foreground work
runs and ``linger`` seconds after; any other thread never pauses."""

from __future__ import annotations

import threading
import time

from samic_vos.runtime.thread_priority import ForegroundGate


def _background(gate: ForegroundGate, passed: list[float]) -> threading.Thread:
    def run() -> None:
        gate.mark_background()
        gate.pause_point()
        passed.append(time.monotonic())

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_background_thread_waits_for_the_foreground_and_its_linger() -> None:
    gate, passed = ForegroundGate(linger=0.3), []
    with gate.foreground():
        gate.pause_point()  # this thread is not a background one: it passes at once
        thread = _background(gate, passed)
        time.sleep(0.5)
        assert passed == []
        ended = time.monotonic()
    thread.join(timeout=10)
    assert passed and passed[0] - ended >= 0.3
    assert gate.paused_s >= 0.8


def test_without_foreground_work_a_background_thread_passes_at_once() -> None:
    gate, passed = ForegroundGate(linger=30.0), []
    started = time.monotonic()
    _background(gate, passed).join(timeout=10)
    assert passed and passed[0] - started < 5.0 and gate.paused_s < 5.0


def test_stopping_lets_a_paused_thread_go_on_at_once() -> None:
    gate, passed = ForegroundGate(linger=30.0), []
    with gate.foreground():
        thread = _background(gate, passed)
        time.sleep(0.2)
        assert passed == []
        gate.stop_pausing()
        thread.join(timeout=10)
        assert passed  # while the foreground still runs
