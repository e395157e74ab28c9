"""Durable writes: the directory fsync shared by threads that need it at the same time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mailmoat import durable


def test_one_fsync_covers_every_caller_that_was_waiting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[float] = []
    real = durable.fsync_dir

    def slow_fsync(path: Path) -> None:
        started.append(time.monotonic())
        time.sleep(0.02)  # long enough for the other threads to queue behind it
        real(path)

    monkeypatch.setattr(durable, "fsync_dir", slow_fsync)
    group = durable.GroupDirSync()
    calls: dict[int, tuple[float, float]] = {}

    def caller(i: int) -> None:
        (tmp_path / f"f{i}").write_bytes(b"x")
        t0 = time.monotonic()
        group.sync(tmp_path)
        calls[i] = (t0, time.monotonic())

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 16
    assert len(started) < 16  # shared: fewer fsyncs than callers
    for t0, t1 in calls.values():
        # each caller waited for an fsync that started after it asked
        assert any(t0 <= s <= t1 for s in started)
    assert group._dirs == {}  # nothing kept once nobody waits


def test_a_failed_fsync_fails_its_caller_and_the_next_one_tries_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[int] = []

    def flaky(path: Path) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError(5, "I/O error")

    monkeypatch.setattr(durable, "fsync_dir", flaky)
    group = durable.GroupDirSync()
    with pytest.raises(OSError):
        group.sync(tmp_path)
    group.sync(tmp_path)  # not treated as covered by the failed one
    assert len(attempts) == 2 and group._dirs == {}
