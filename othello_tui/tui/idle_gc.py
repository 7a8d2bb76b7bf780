"""Full garbage collections while the user is idle, not in the middle of a key press.

Python runs a full (generation 2) pass after every ten generation-1 passes once enough new
objects have survived. In the app that is 100–250 ms: Textual's render caches keep ~250,000
objects alive, and every pass walks them all. Triggered by allocation, these passes land on
whatever key press happens to cross the line, which made feature pages 150 ms at p95.

Here the automatic full pass is pushed far out (a safety valve), and a timer runs the pass that
is due once no key or mouse button has been pressed for ``IDLE_SECONDS``.
"""

from __future__ import annotations

import gc
import time

IDLE_SECONDS = 0.5
CHECK_EVERY_SECONDS = 0.25
FULL_PASS_DUE = 10  # generation-1 passes since the last full one: Python's default threshold
SAFETY_VALVE = 100  # the automatic full pass still runs after this many, idle or not


class IdleCollector:
    def __init__(self) -> None:
        self.last_input = time.monotonic()
        self._saved_threshold: tuple[int, int, int] | None = None

    def start(self) -> None:
        self._saved_threshold = gc.get_threshold()
        young, middle, _ = self._saved_threshold
        gc.set_threshold(young, middle, SAFETY_VALVE)

    def stop(self) -> None:
        if self._saved_threshold is not None:
            gc.set_threshold(*self._saved_threshold)
            self._saved_threshold = None

    def touch(self) -> None:
        """A key or a click: the user is busy."""
        self.last_input = time.monotonic()

    def collect_if_idle(self) -> bool:
        """Run the due full pass if the user has been idle long enough; whether it ran."""
        if gc.get_count()[2] < FULL_PASS_DUE or time.monotonic() - self.last_input < IDLE_SECONDS:
            return False
        gc.collect()
        return True
