"""One daemon thread that takes items off a queue and ticks now and then.

The controllers, the garbage collector and the kubelet each run on one: store events (or
keys) are put on the queue by a store listener, `handle` takes them one at a time, and `tick`
runs when the queue was idle for `interval`, when None was put to wake the thread, or at
least every `interval` while items keep coming (a resync, a sweep, a scheduling pass).
An exception in either is printed and the thread goes on, as a controller's worker does.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Worker(Generic[T]):
    def __init__(self, name: str, interval: float) -> None:
        self.interval = interval
        self._queue: queue.Queue[T | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(10)

    def wake(self) -> None:
        """Tick soon, without an item."""
        self._queue.put(None)

    def handle(self, item: T) -> None:
        raise NotImplementedError

    def tick(self) -> None:
        """What is done between items (nothing unless a subclass says)."""

    def _loop(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=self.interval)
            except queue.Empty:
                item = None
            if self._stop.is_set():
                break
            if item is not None:
                self._guarded(self.handle, item)
            now = time.monotonic()
            if item is None or now - last >= self.interval:
                last = now
                self._guarded(self.tick)

    @staticmethod
    def _guarded(func: Callable[..., None], *args: object) -> None:
        try:
            func(*args)
        except Exception:
            traceback.print_exc()
