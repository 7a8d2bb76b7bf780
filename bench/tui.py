"""Latency of ``othello-tui play`` (issue 7 targets: step p95 ≤ 30 ms, board ≤ 1 s, model ≤ 3 s).

1. Key press -> updated screen, driven by Textual's Pilot after warm-up: the key goes in through
   the driver as a real key would; the clock stops when every widget has handled its messages and
   the compositor has rendered the changed lines and encoded them as terminal output (what a real
   terminal run writes). Pilot's own settling sleeps are outside the clock.
2. Cold start as a whole process in a real terminal (tmux): from spawning ``othello-tui play`` to
   the labelled board on screen, and to the predictions and features on screen.
3. Opening a feature page (issue 8 target ≤ 50 ms once the cache exists): from the message that
   opens it (what Enter on a feature posts) to the page rendered and encoded with its statistics;
   first opens (one HDF5 read in a worker) and re-opens (from memory) apart. Needs a feature
   cache: ``--cache FILE``, else a small one (``--cache-games``) is built for the weights first.
4. Circuits (issue 8 targets: expanding a tree node ≤ 50 ms, an intervention round trip ≤ 100 ms):
   Space on a feature node of the contributor tree -> its contributors drawn; ``a`` on a feature
   of the features panel -> the predictions panel drawn with the changed probabilities, and ``c``
   -> drawn without them again. The first ablation also builds the game's trace: counted apart.

    python bench/tui.py --weights /tmp/tinyw [--steps 200] [--starts 5] [--opens 40]
    python bench/tui.py --synthetic          # full-size untrained model + 12 dictionaries of 1024
    python bench/tui.py --shipped            # weights/ (random dictionaries if it has none)

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
from othello_tui.tui.idle_gc import CHECK_EVERY_SECONDS, IDLE_SECONDS
from othello_tui.tui.messages import OpenFeature
from othello_tui.tui.screens.feature import FeatureScreen
from othello_tui.tui.screens.tree import TreeScreen
from othello_tui.tui.session import Session
from othello_tui.tui.widgets.contributor_tree import ContributorTree

SHIPPED = Path(__file__).resolve().parents[1] / "weights"


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


def encode_like_a_terminal(app) -> None:
    """Make a headless app encode its updates as terminal output, as a real terminal run does."""
    encode = app._display

    def display_and_encode(screen, update) -> None:  # headless apps skip this; a terminal does not
        if update is not None and hasattr(update, "render_segments"):
            update.render_segments(app.console)
        encode(screen, update)

    app._display = display_and_encode


async def key_latency(weights: Path, steps: int, beliefs: bool = False) -> dict[str, list[float]]:
    """Stepping keys; with ``beliefs``, the believed board is on screen too and the layer keys
    ``[`` ``]`` are timed as well."""
    app = make_app(Session.from_weights(weights, device="cpu"))
    encode_like_a_terminal(app)
    times: dict[str, list[float]] = {"right": [], "left": [], "cpu": [], "layer": []}
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.main_screen.feature_list.focus()
        await pilot.press("enter", "end", "home")  # expand the first module; analyse the game
        await settle(app, pilot)
        if beliefs:
            await pilot.press("b")
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
        for k in range(steps if beliefs else 0):
            times["layer"].append(
                await press("right_square_bracket" if k % 12 < 6 else "left_square_bracket")
            )
    return times


async def feature_page_latency(
    weights: Path, cache: Path, opens: int, idle_gc: bool = True
) -> dict[str, list[float]]:
    """Seconds to open ``opens`` pages of distinct features (first opens), then the same again
    (re-opens), at 120×40 on game 0: wall clock, and the CPU time of the event loop's thread.
    ``idle_gc=False``: Python's automatic full collections instead of the app's idle ones."""
    from othello_tui.features import open_cache

    opened = open_cache(cache)
    rng = np.random.default_rng(0)
    ids = [f"{m}{rng.integers(opened.n_features[m])}" for m in rng.choice(opened.modules, opens)]
    app = make_app(Session.from_weights(weights, device="cpu", cache=cache, build=False))
    encode_like_a_terminal(app)
    times: dict[str, list[float]] = {"first open": [], "re-open": [], "first open CPU": [], "re-open CPU": []}
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        if not idle_gc:
            app.collector.stop()
            app.collector.collect_if_idle = lambda: False
        for kind in ("first open", "re-open"):
            for feature_id in dict.fromkeys(ids):
                start, cpu_start = time.perf_counter(), time.thread_time()
                app.post_message(OpenFeature(feature_id))
                while not (isinstance(app.screen, FeatureScreen) and app.screen.stats is not None):
                    await app.workers.wait_for_complete()
                    await pilot._wait_for_screen()
                app.screen._on_timer_update()  # render and encode now, as the refresh timer would
                times[kind].append(time.perf_counter() - start)
                times[f"{kind} CPU"].append(time.thread_time() - cpu_start)
                await pilot.press("escape")  # and let the main screen redraw outside the clock
                await pilot._wait_for_screen()
                app.screen._on_timer_update()
                # a reader's pause before the next page: the app's idle collector runs then
                await pilot.pause(IDLE_SECONDS + 2 * CHECK_EVERY_SECONDS)
    return times


async def circuit_latency(weights: Path, repeats: int) -> dict[str, list[float]]:
    """Seconds for ``repeats`` tree expansions and ablation round trips at 120×40 on game 0 at
    its last move (see the module docstring): wall clock, as the feature pages are timed, and the
    CPU time of the whole process (``… CPU``: the event loop and the worker thread that computes;
    what the wall clock would be on an idle machine, give or take the hops between threads)."""
    app = make_app(Session.from_weights(weights, device="cpu"))
    encode_like_a_terminal(app)
    times: dict[str, list[float]] = {}

    async def timed(kind: str, key: str, done) -> None:
        start, cpu_start = time.perf_counter(), time.process_time()
        app._driver.send_message(events.Key(key, None))
        while True:
            await app.workers.wait_for_complete()
            await pilot._wait_for_screen()
            if done() and not app.workers:
                break
        app.screen._on_timer_update()  # render and encode now, as the refresh timer would
        times.setdefault(kind, []).append(time.perf_counter() - start)
        times.setdefault(f"{kind} CPU", []).append(time.process_time() - cpu_start)

    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        main = app.main_screen
        await pilot.press("end", "pagedown", "pagedown", "enter")  # the top module's features listed
        await settle(app, pilot)
        for rank in range(repeats):
            await pilot.press("down")  # the next feature, outside the clock
            kind = "ablate" if rank else "first ablation"  # the first one builds the game's trace
            await timed(kind, "a", lambda: main.current_view.probs_before is not None)
            await timed("clear", "c", lambda: main.current_view.probs_before is None)
        await pilot.press("t")
        while not isinstance(app.screen, TreeScreen) or app.workers:
            await app.workers.wait_for_complete()
            await pilot.pause()
        tree = app.screen.query_one(ContributorTree)
        while len(times.get("expand node", ())) < repeats:
            closed = [
                n
                for n in tree.nodes_below(tree.root)
                if n.allow_expand and n.data.branch.expansion is None and not n.is_expanded
            ]
            if not closed:  # random dictionaries leave large error nodes: look further down the list
                if app.screen.top >= 50:
                    break
                await pilot.press("plus")
                while app.workers:
                    await app.workers.wait_for_complete()
                    await pilot.pause()
                continue
            tree.move_cursor(closed[0])
            await pilot._wait_for_screen()
            node = closed[0]
            await timed("expand node", "space", lambda n=node: n.data.branch.expansion is not None)
    return times


def small_cache(weights: Path, directory: Path, n_games: int) -> Path:
    """A feature cache of ``n_games`` games for the weights and their dictionaries."""
    from othello_tui.dictionary.io import load_dictionaries
    from othello_tui.features import build_cache
    from othello_tui.model.weights import load_model

    model, _ = load_model(weights, "cpu")
    dictionaries = load_dictionaries(weights / "dictionaries", model)
    return build_cache(model, dictionaries, n_games, 0, 256, directory / "features-bench.h5")


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
        command = f"othello-tui play --weights {weights} --device cpu --no-build"
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
    from othello_tui.model.config import ModelConfig
    from othello_tui.model.transformer import OthelloGPT
    from othello_tui.model.weights import save_model

    model = OthelloGPT(ModelConfig())
    model.reset_parameters(seed=0)
    save_model(model, directory)
    random_dictionaries(model, directory / "dictionaries", k)
    return directory


def random_dictionaries(model, directory: Path, k: int = 64) -> None:
    """``shipped.random_dictionaries`` (1024 random features per module) saved like real ones."""
    from shipped import random_dictionaries as build

    from othello_tui.dictionary.io import save_dictionary
    from othello_tui.model.weights import model_fingerprint

    for dictionary in build(model, k).values():
        save_dictionary(dictionary, directory, {"model_fingerprint": model_fingerprint(model)})


def shipped_weights(directory: Path) -> Path:
    """``weights/`` when it has dictionaries; else its model copied to ``directory`` with random
    dictionaries beside it (as bench/circuits.py does): the real model's timings either way."""
    from othello_tui.model.weights import load_model

    if (SHIPPED / "dictionaries").is_dir():
        return SHIPPED
    for path in SHIPPED.glob("othello_gpt.*"):
        shutil.copy(path, directory)
    model, _ = load_model(directory, "cpu")
    random_dictionaries(model, directory / "dictionaries")
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--synthetic", action="store_true", help="full-size random weights (see above)")
    parser.add_argument("--shipped", action="store_true", help="weights/, random dictionaries if none")
    parser.add_argument("--circuits", type=int, default=30, help="tree expansions and ablations (0: skip)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads [default: torch's]")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument(
        "--beliefs", action="store_true", help="time the keys with the believed board shown (b)"
    )
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--opens", type=int, default=40, help="feature pages to open (0: skip)")
    parser.add_argument("--cache", type=Path, help="feature cache for the pages (default: build one)")
    parser.add_argument("--cache-games", type=int, default=256, help="games of the cache built for the pages")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.synthetic:
        args.weights = synthetic_weights(Path(tempfile.mkdtemp(prefix="othello-tui-bench-")))
        print(f"synthetic full-size weights in {args.weights}")
    elif args.shipped:
        args.weights = shipped_weights(Path(tempfile.mkdtemp(prefix="othello-tui-bench-")))
        print(f"shipped model, dictionaries in {args.weights / 'dictionaries'}")
    elif args.weights is None:
        parser.error("give --weights DIR or --synthetic")
    times = asyncio.run(key_latency(args.weights, args.steps, args.beliefs))
    shown = ", the believed board shown" if args.beliefs else ""
    print(f"key press -> updated screen (120×40, all panels{shown}, after warm-up); wall clock:")
    for key in ("right", "left", "layer") if args.beliefs else ("right", "left"):
        print(f"  {key:>5}  {percentiles(times[key])}")
    print(f"  {'both':>5}  {percentiles(times['right'] + times['left'])}")
    print(
        f"  CPU time of the event loop's thread per key (what the app itself costs):\n"
        f"         {percentiles(times['cpu'])}"
    )
    print(f"  load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.opens:
        cache = args.cache or small_cache(
            args.weights, Path(tempfile.mkdtemp(prefix="othello-tui-bench-")), args.cache_games
        )
        print(f"feature page: message -> page drawn with its statistics (120×40; cache {cache}); wall clock:")
        for idle_gc in (True, False):
            print(
                "  full garbage collections "
                + ("while idle (the app)" if idle_gc else "automatic (baseline)")
            )
            for kind, seconds in asyncio.run(
                feature_page_latency(args.weights, cache, args.opens, idle_gc)
            ).items():
                print(f"  {kind:>14}  {percentiles(seconds)}, max {1e3 * max(seconds):.0f} ms")
        print(f"  load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.circuits:
        print("circuits: key -> screen drawn with the result (120×40, game 0, last move); wall clock:")
        for kind, seconds in asyncio.run(circuit_latency(args.weights, args.circuits)).items():
            print(f"  {kind:>18}  {percentiles(seconds)}")
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
