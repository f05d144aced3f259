"""The network loop: blocking calls go to a few worker threads, however many are asked."""

from __future__ import annotations

import threading
import time

from agent_sandbox._net.loop import MAX_THREADS, InThread, Loop, Task


def test_many_blocking_calls_share_a_few_threads() -> None:
    loop = Loop()
    lock = threading.Lock()
    busy, peak, done = [0], [0], []

    def call() -> int:
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(0.01)
        with lock:
            busy[0] -= 1
        return 1

    def task() -> Task[None]:
        done.append((yield InThread(call)))
        if len(done) == 100:
            loop.stop()

    for _ in range(100):
        loop.spawn(task())
    runner = threading.Thread(target=loop.run)
    runner.start()
    runner.join(30)
    assert not runner.is_alive()
    assert done == [1] * 100
    assert 1 < peak[0] <= MAX_THREADS  # in parallel, and bounded
