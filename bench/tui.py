"""Latency of ``othello-tui play`` (issue 7 targets: step p95 ≤ 30 ms, board ≤ 1 s, model ≤ 3 s).

1. Key press -> updated screen, driven by Textual's Pilot after warm-up: the key goes in through
   the driver as a real key would; the clock stops when every widget has handled its messages and
   the compositor has rendered the changed lines and encoded them as terminal output (what a real
   terminal run writes). Pilot's own settling sleeps are outside the clock.
2. Cold start as a whole process in a real terminal (tmux): from spawning ``othello-tui play`` to
   the labelled board on screen, and to the predictions and features on screen.

    python bench/tui.py --weights /tmp/tinyw [--steps 200] [--starts 5]
    python bench/tui.py --synthetic          # full-size untrained model + 12 dictionaries of 1024

``--synthetic`` writes a model of the shipped size (6 layers, d_model 128) with random weights
and top-k dictionaries (1024 features, 64 active per token) to a temporary folder: the timings
of the real thing before the real weights exist.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from textual import events

from othello_tui.tui.app import make_app
from othello_tui.tui.session import Session


def percentiles(seconds: list[float]) -> str:
    if not seconds:
        return "never seen"
    ms = 1000 * np.asarray(seconds)
    return f"p50 {np.percentile(ms, 50):7.1f} ms   p95 {np.percentile(ms, 95):7.1f} ms   (n={len(ms)})"


async def settle(app, pilot) -> None:
    """Until the model is loaded and the shown position analysed."""
    while True:
        await app.workers.wait_for_complete()
        await pilot.pause()
        view = app.main_screen.current_view
        if app.main_screen.session.model_error or (view is not None and not view.pending and not app.workers):
            return


async def key_latency(weights: Path, steps: int) -> dict[str, list[float]]:
    app = make_app(Session.from_weights(weights, device="cpu"))
    encode = app._display

    def display_and_encode(screen, update) -> None:  # headless apps skip this; a terminal does not
        if update is not None and hasattr(update, "render_segments"):
            update.render_segments(app.console)
        encode(screen, update)

    app._display = display_and_encode
    times: dict[str, list[float]] = {"right": [], "left": [], "cpu": []}
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.main_screen.feature_list.focus()
        await pilot.press("enter", "end", "home")  # expand the first module; analyse the game
        await settle(app, pilot)

        async def press(key: str) -> float:
            start, cpu_start = time.perf_counter(), time.thread_time()
            app._driver.send_message(events.Key(key, None))
            await pilot._wait_for_screen()
            await pilot._wait_for_screen()
            app.screen._on_timer_update()
            times["cpu"].append(time.thread_time() - cpu_start)
            return time.perf_counter() - start

        for _ in range(10):  # warm-up
            await press("right")
        times["cpu"].clear()
        direction = "right"
        while len(times["right"]) + len(times["left"]) < steps:
            n, last = app.main_screen.shown.n_moves, len(app.main_screen.shown.game.moves)
            if (direction == "right" and n == last) or (direction == "left" and n == 1):
                direction = "left" if direction == "right" else "right"
            times[direction].append(await press(direction))
    return times


def board_drawn(screen: str) -> bool:
    """The column labels and the eight labelled rows are on screen."""
    lines = screen.splitlines()
    rows = [line[0] for line in lines if line[:2] in {f"{r} " for r in "abcdefgh"}]
    return any(line.split()[:8] == list("01234567") for line in lines) and rows == list("abcdefgh")


SIGNS = {
    "board": board_drawn,
    "game": lambda screen: "game 0 (seed 0) · move 1 of" in screen,
    "predictions": lambda screen: re.search(r"\d+\.\d%\s+(✓ legal|✗ illegal)", screen) is not None,
    "features": lambda screen: " active" in screen or "No dictionaries" in screen,
}


def cpu_seconds(root: int) -> float:
    """User + system CPU time of process ``root`` and its descendants, from /proc."""
    parent, used = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        pid = int(stat.parent.name)
        parent[pid], used[pid] = int(fields[1]), int(fields[11]) + int(fields[12])
    tree, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, ppid in parent.items() if ppid in frontier and pid not in tree]
        tree.update(children)
        frontier = children
    return sum(used.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def cold_start(weights: Path, runs: int, width: int = 120, height: int = 40) -> dict[str, list[float]]:
    """Seconds from spawning the command to each of :data:`SIGNS` on screen (tmux, polled), and
    the CPU seconds the process had used by then (``cpu <sign>``: the time on an idle machine,
    give or take what overlaps on two cores)."""
    results: dict[str, list[float]] = {key: [] for key in SIGNS} | {f"cpu {key}": [] for key in SIGNS}
    for _ in range(runs):
        socket = Path(tempfile.mkdtemp(prefix="othello-tui-bench-")) / "tmux.sock"  # a server of our own
        tmux = ["tmux", "-S", str(socket)]
        command = f"othello-tui play --weights {weights} --device cpu"
        start = time.perf_counter()
        subprocess.run([*tmux, "new-session", "-d", "-x", str(width), "-y", str(height), command], check=True)
        pane = subprocess.run([*tmux, "display-message", "-p", "#{pane_pid}"], capture_output=True, text=True)
        pid = int(pane.stdout)
        seen: dict[str, float] = {}
        try:
            while len(seen) < 2 * len(SIGNS) and time.perf_counter() - start < 60:
                screen = subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, text=True).stdout
                now = time.perf_counter() - start
                new = [key for key, sign in SIGNS.items() if key not in seen and sign(screen)]
                if new:
                    cpu = cpu_seconds(pid)
                    seen.update({key: now for key in new} | {f"cpu {key}": cpu for key in new})
                time.sleep(0.01)
        finally:
            subprocess.run([*tmux, "kill-server"], check=False)
            shutil.rmtree(socket.parent, ignore_errors=True)
        for key, value in seen.items():
            results[key].append(value)
    return results


def synthetic_weights(directory: Path, k: int = 64) -> Path:
    """A full-size random model and top-k dictionaries for every module, saved like real ones."""
    import torch

    from othello_tui.dictionary.io import save_dictionary
    from othello_tui.dictionary.sae import Dictionary, DictionaryConfig, hook_name_of, module_names
    from othello_tui.model.config import ModelConfig
    from othello_tui.model.transformer import OthelloGPT
    from othello_tui.model.weights import model_fingerprint, save_model

    model = OthelloGPT(ModelConfig())
    model.reset_parameters(seed=0)
    save_model(model, directory)
    generator = torch.Generator().manual_seed(0)
    for module in module_names(model.cfg.n_layers):
        dictionary = Dictionary(DictionaryConfig(module, hook_name_of(module), "topk", k=k))
        dictionary.reset_parameters(generator)
        save_dictionary(
            dictionary, directory / "dictionaries", {"model_fingerprint": model_fingerprint(model)}
        )
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--synthetic", action="store_true", help="full-size random weights (see above)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    if args.synthetic:
        args.weights = synthetic_weights(Path(tempfile.mkdtemp(prefix="othello-tui-bench-")))
        print(f"synthetic full-size weights in {args.weights}")
    elif args.weights is None:
        parser.error("give --weights DIR or --synthetic")
    times = asyncio.run(key_latency(args.weights, args.steps))
    print("key press -> updated screen (120×40, all panels, after warm-up); wall clock:")
    for key in ("right", "left"):
        print(f"  {key:>5}  {percentiles(times[key])}")
    print(f"  {'both':>5}  {percentiles(times['right'] + times['left'])}")
    print(
        f"  CPU time of the event loop's thread per key (what the app itself costs):\n"
        f"         {percentiles(times['cpu'])}"
    )
    print(f"  load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if shutil.which("tmux") is None:
        print("cold start: skipped (tmux is not installed)")
        return
    print("cold start, whole process in tmux (spawn -> on screen; game = game 0's moves shown)")
    for key, seconds in cold_start(args.weights, args.starts).items():
        print(f"  {key:>15}  {percentiles(seconds)}")
    print(f"  load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
