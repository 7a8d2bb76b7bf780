"""Render the README screenshots with the shipped weights, as SVGs.

python docs/screenshot.py [--moves N] [--out docs/play.svg]       the main screen
python docs/screenshot.py --tree [--moves N] [--out docs/tree.svg]  the contributor tree of the
    top prediction there, its strongest contributor expanded
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from othello_tui.cli.groups import DEFAULT_CACHE_DIR, DEFAULT_WEIGHTS
from othello_tui.tui.app import make_app
from othello_tui.tui.session import Session


async def settle(app, pilot) -> None:
    """Wait until no worker runs (the model loading, an analysis, a tree being computed)."""
    for _ in range(400):
        await pilot.pause(0.05)
        if not any(w.is_running for w in app.workers._workers):
            break


async def render(moves: int, out: Path, tree: bool) -> None:
    session = Session.from_weights(DEFAULT_WEIGHTS, cache_dir=DEFAULT_CACHE_DIR, seed=3)
    app = make_app(session, None, 17)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        for _ in range(moves):
            await pilot.press("right")
        await settle(app, pilot)
        if tree:
            await pilot.press("t")
            await settle(app, pilot)
            await pilot.press("down", "space")
            await settle(app, pilot)
        await pilot.pause(0.5)
        out.write_text(app.export_screenshot(title="othello-tui play"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--moves", type=int, default=23)
    parser.add_argument("--tree", action="store_true", help="the contributor tree instead")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.out = args.out or Path(__file__).with_name("tree.svg" if args.tree else "play.svg")
    asyncio.run(render(args.moves, args.out, args.tree))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
