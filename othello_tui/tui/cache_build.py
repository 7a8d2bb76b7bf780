"""The feature cache built in the background for ``othello-tui play``: ``othello-tui cache build``
in a niced child process, its progress read from the lines it prints.

A process rather than a thread, because torch's thread pool is global to a process: a build in a
thread would take the same threads as the app's own forward passes, and ``set_num_threads`` in
one thread changes them for all. A niced process yields the CPU to the app whenever the app wants
it. The command writes under a temporary name and renames when complete, and ends cleanly on
SIGINT, SIGTERM and SIGHUP, so a cancelled build, or a closed terminal, leaves no file behind.

No Textual and no torch here.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

NICENESS = 10  # the build's CPU priority below the app's
_PROGRESS = re.compile(r"^(games|panels) (\d+) (\d+)$")
PHASES = {"games": "model pass", "panels": "board panels"}


@dataclass(frozen=True)
class CacheRequest:
    """A feature cache that ``play`` would build: ``othello-tui cache build`` writing ``out``
    for the model in ``weights`` (and its ``dictionaries/``) on ``device``."""

    weights: Path
    out: Path
    device: str
    n_games: int
    seed: int
    top_k: int

    def argv(self) -> list[str]:
        """The command line, run by this interpreter at a lower priority."""
        nice = shutil.which("nice")
        command = [sys.executable, "-m", "othello_tui", "cache", "build", "--progress-lines"]
        command += ["--weights", str(self.weights), "--device", self.device, "--out", str(self.out)]
        command += ["--games", str(self.n_games), "--seed", str(self.seed), "--top-k", str(self.top_k)]
        return [nice, "-n", str(NICENESS), *command] if nice else command


@dataclass(frozen=True)
class BuildStatus:
    """Where a background build stands."""

    state: str  # "building", "done", "failed" or "cancelled"
    phase: str = "games"  # "games" (the model pass) or "panels"
    done: int = 0  # games of the phase done
    total: int = 0
    error: str | None = None  # why it failed

    @property
    def running(self) -> bool:
        return self.state == "building"

    def describe(self) -> str:
        """``"model pass 4,608/20,000 games (1 of 2)"``, or how it ended."""
        if self.state == "building":
            step = list(PHASES).index(self.phase) + 1
            return f"{PHASES[self.phase]} {self.done:,}/{self.total:,} games ({step} of 2)"
        if self.state == "failed":
            return f"failed: {self.error}"
        return self.state


class CacheBuild:
    """One run of a :class:`CacheRequest`. :meth:`run` blocks until the child ends (call it from
    a worker thread); :meth:`cancel` may be called from any thread."""

    def __init__(self, request: CacheRequest):
        self.request = request
        self._process: subprocess.Popen | None = None
        self._cancelled = False
        self._lock = threading.Lock()

    def run(self, report: Callable[[BuildStatus], None]) -> BuildStatus:
        """Run the command, calling ``report`` on every progress line; the final status says how
        it ended (a failure carries the command's last words)."""
        request = self.request
        with self._lock:
            if self._cancelled:
                return BuildStatus("cancelled")
            self._process = subprocess.Popen(
                request.argv(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # one pipe: nothing can fill up unread
                text=True,
                bufsize=1,
                env=os.environ | {"PYTHONUNBUFFERED": "1"},
            )
        report(BuildStatus("building", "games", 0, request.n_games))
        last_words: deque[str] = deque(maxlen=5)
        assert self._process.stdout is not None
        for line in self._process.stdout:
            progress = _PROGRESS.match(line.strip())
            if progress:
                report(BuildStatus("building", progress[1], int(progress[2]), int(progress[3])))
            elif line.strip():
                last_words.append(line.strip())
        code = self._process.wait()
        if self._cancelled:
            return BuildStatus("cancelled")
        if code != 0 or not request.out.exists():
            said = " ".join(last_words) or f"exit status {code}"
            return BuildStatus("failed", error=said.removeprefix("Error: "))
        return BuildStatus("done")

    def cancel(self) -> None:
        """Stop the child as Ctrl-C would (it removes its temporary file)."""
        with self._lock:
            self._cancelled = True
            process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
