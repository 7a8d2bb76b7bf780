"""The feature cache built in the background for ``othello-tui play``: ``othello-tui cache build``
in a niced child process, its progress read from the lines it prints.

A process rather than a thread, because torch's thread pool is global to a process: a build in a
thread would take the same threads as the app's own forward passes, and ``set_num_threads`` in
one thread changes them for all. A niced process yields the CPU to the app whenever the app wants
it.

The build outlives the app: it runs in a session of its own (no terminal: neither Ctrl-C nor a
closed terminal reaches it) and prints into a log file beside the cache, not into a pipe the app
would close. Quitting only stops watching it (:meth:`CacheBuild.detach`); the next ``play`` finds
it running through its pid file and watches it again, or takes the finished cache. The command
writes under a temporary name and renames when complete, so a killed build leaves no cache.

No Textual and no torch here.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

NICENESS = 10  # the build's CPU priority below the app's
_PROGRESS = re.compile(r"^(games|panels) (\d+) (\d+)$")
POLL_SECONDS = 0.2  # how often the log is read for new progress lines


@dataclass(frozen=True)
class CacheRequest:
    """A feature cache that ``play`` would build: ``othello-tui cache build`` writing ``out``
    for the model in ``weights`` (and its ``dictionaries/``; ``config``: a checkpoint file's
    config JSON) on ``device``."""

    weights: Path
    out: Path
    device: str
    n_games: int
    seed: int
    top_k: int
    config: Path | None = None
    stage: str = ""  # what this build is among play's builds ("a first cache over 1,000 games")

    def argv(self) -> list[str]:
        """The command line, run by this interpreter at a lower priority."""
        nice = shutil.which("nice")
        command = [sys.executable, "-m", "othello_tui", "cache", "build", "--progress-lines"]
        command += ["--weights", str(self.weights), "--device", self.device, "--out", str(self.out)]
        command += ["--games", str(self.n_games), "--seed", str(self.seed), "--top-k", str(self.top_k)]
        if self.config is not None:
            command += ["--config", str(self.config)]
        return [nice, "-n", str(NICENESS), *command] if nice else command

    @property
    def log(self) -> Path:
        """Where the build prints its progress (hidden beside the cache; removed when it ends)."""
        return self.out.with_name(f".{self.out.name}.log")

    @property
    def pid_file(self) -> Path:
        """The running build's process id, for the next ``play`` to find it."""
        return self.out.with_name(f".{self.out.name}.pid")


@dataclass(frozen=True)
class BuildStatus:
    """Where a background build stands."""

    state: str  # "building", "done", "failed" or "detached" (left running when the app quit)
    phase: str = "games"  # "games" (pass 1: the model) or "panels" (pass 2: no model)
    done: int = 0  # games of the phase done
    total: int = 0
    error: str | None = None  # why it failed
    resumed: bool = False  # watching a build that an earlier session started
    stage: str = ""  # which of play's builds (its request's ``stage``)
    final: bool = True  # no build follows this one

    @property
    def running(self) -> bool:
        return self.state == "building"

    def describe(self) -> str:
        """``"pass 1 of 2, the model over 4,608/20,000 games"`` (after the stage, when there is
        one: ``"the full cache over 20,000 games: pass 1 of 2, …"``), or how it ended."""
        text = self._describe()
        return f"{self.stage}: {text}" if self.stage and self.state == "building" else text

    def _describe(self) -> str:
        if self.state == "building":
            earlier = " (started by an earlier session)" if self.resumed else ""
            if self.phase == "games":
                return f"pass 1 of 2, the model over {self.done:,}/{self.total:,} games{earlier}"
            if self.done < self.total:
                return f"pass 2 of 2, board panels of the top examples, {self.done:,}/{self.total:,} games{earlier}"
            return f"scoring the labels and writing the file{earlier}"
        if self.state == "failed":
            return f"failed: {self.error}"
        return self.state


class CacheBuild:
    """One run of a :class:`CacheRequest`, or the watch of one already running. :meth:`run`
    blocks until the build ends or :meth:`detach` is called (from any thread)."""

    def __init__(self, request: CacheRequest):
        self.request = request
        self._detached = threading.Event()

    def run(self, report: Callable[[BuildStatus], None]) -> BuildStatus:
        """Start the build (or find the one running), calling ``report`` on every progress line;
        the final status says how it ended (a failure carries the command's last words)."""
        request = self.request
        if self._detached.is_set():
            return BuildStatus("detached")
        pid = running_build(request)
        resumed = pid is not None
        process = None
        if pid is None:
            request.out.parent.mkdir(parents=True, exist_ok=True)
            with open(request.log, "w") as log:  # the child keeps its own handle
                process = subprocess.Popen(
                    request.argv(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # no terminal: Ctrl-C and hang-ups stay with the app
                    env=os.environ | {"PYTHONUNBUFFERED": "1"},
                )
            pid = process.pid
            request.pid_file.write_text(f"{pid}\n")
        report(BuildStatus("building", "games", 0, request.n_games, resumed=resumed))
        last_words: deque[str] = deque(maxlen=5)
        partial = ""  # a line the child is still writing
        with open(request.log) as log:
            while True:
                ended = (process.poll() is not None) if process else not _alive(pid)
                *lines, partial = (partial + log.read()).split("\n")
                for line in [*lines, partial] if ended else lines:
                    progress = _PROGRESS.match(line.strip())
                    if progress:
                        phase, done, total = progress[1], int(progress[2]), int(progress[3])
                        report(BuildStatus("building", phase, done, total, resumed=resumed))
                    elif line.strip():
                        last_words.append(line.strip())
                if ended:
                    break
                if self._detached.wait(POLL_SECONDS):
                    return BuildStatus("detached", resumed=resumed)
        for leftover in (request.pid_file, request.log):
            leftover.unlink(missing_ok=True)
        if not request.out.exists():
            code = process.returncode if process else None
            said = " ".join(last_words) or (f"exit status {code}" if code is not None else "it stopped")
            return BuildStatus("failed", error=said.removeprefix("Error: "), resumed=resumed)
        return BuildStatus("done", resumed=resumed)

    def detach(self) -> None:
        """Stop watching; the build goes on, and the next session finds it."""
        self._detached.set()


def running_build(request: CacheRequest) -> int | None:
    """The process id of a build of ``request.out`` still running, from its pid file (a stale pid
    file, whose process is gone or is another program, is ignored)."""
    try:
        pid = int(request.pid_file.read_text())
    except (OSError, ValueError):
        return None
    if not _alive(pid):
        return None
    with contextlib.suppress(OSError):  # where /proc exists: the pid must still be our build
        command = Path(f"/proc/{pid}/cmdline").read_bytes()  # empty for an instant after a start
        if command and str(request.out).encode() not in command:
            return None
    return pid


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (an exited child that nobody has waited for yet does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, but not ours
        return True
    with contextlib.suppress(OSError):  # where /proc exists
        if "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text():
            return False
    return True
