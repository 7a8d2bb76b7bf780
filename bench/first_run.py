"""The first run of ``othello-tui play``: how long until feature labels, and until the full cache.

    python bench/first_run.py [--weights weights] [--games 20000]

Runs what ``play`` runs on a machine with no feature cache, with the shipped weights and an empty
cache folder (a temporary one): the session loads the model, then the feature library builds the
missing caches in the niced child process the app uses (``cache build --progress-lines``), first
the small one (``FIRST_CACHE_GAMES``), then the full one. Prints the seconds from the start to
the model loaded, to the first labels, and to the full cache, with each build's own wall time.
The previous behaviour (one full build, labels when it ends) took the full build's time to the
first labels: the full build's own time here is that figure, measured in the same run.
Nothing else should run meanwhile: the builds are niced, and a busy machine slows them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from othello_tui.features.format import BuildSettings
from othello_tui.tui import engine as engine_module
from othello_tui.tui.session import Session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=Path("weights"))
    parser.add_argument("--games", type=int, default=BuildSettings.n_games, help="the full cache's games")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        session = Session.from_weights(
            args.weights, device="cpu", cache_dir=Path(cache_dir), build_settings=BuildSettings(args.games)
        )
        session.load()
        loaded = time.perf_counter() - start
        library = session.library
        stages: list[tuple[str, float]] = []  # (stage, seconds since the start) as each build ends
        began = time.perf_counter() - start

        def progress(status) -> None:
            if status.state == "done" and not status.final:
                stages.append((status.stage, time.perf_counter() - start))

        final = library.build(progress)
        if final.state != "done":
            raise SystemExit(f"the build {final.describe()}")
        stages.append((final.stage or "the full cache", time.perf_counter() - start))
        print(f"first-run bench: {args.weights}, full cache {args.games:,} games, first cache "
              f"{engine_module.FIRST_CACHE_GAMES:,} games, empty cache folder")  # fmt: skip
        print(f"  model loaded            {loaded:7.1f} s")
        previous = began
        for stage, at in stages:
            print(f"  {stage:<60} ready at {at:7.1f} s (its build {at - previous:6.1f} s)")
            previous = at
        if len(stages) == 2:
            full_alone = stages[1][1] - stages[0][1]
            print(f"  labels after {stages[0][1]:.1f} s; one full build first (the previous behaviour): "
                  f"{began + full_alone:.1f} s ({(began + full_alone) / stages[0][1]:.1f}× later)")  # fmt: skip


if __name__ == "__main__":
    main()
