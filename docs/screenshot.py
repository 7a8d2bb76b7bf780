"""Render the README screenshot: the main screen with the shipped weights, as an SVG.

python docs/screenshot.py [--moves N] [--out docs/play.svg]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from othello_tui.cli.groups import DEFAULT_CACHE_DIR, DEFAULT_WEIGHTS
from othello_tui.tui.app import make_app
from othello_tui.tui.session import Session


async def render(moves: int, out: Path) -> None:
    session = Session.from_weights(DEFAULT_WEIGHTS, cache_dir=DEFAULT_CACHE_DIR, seed=3)
    app = make_app(session, None, 17)
    async with app.run_test(size=(120, 36)) as pilot:
        for _ in range(200):  # wait for the model to load in its worker
            await pilot.pause(0.05)
            if not app.workers._workers:
                break
        for _ in range(moves):
            await pilot.press("right")
        await pilot.pause(0.5)
        out.write_text(app.export_screenshot(title="othello-tui play"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--moves", type=int, default=23)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("play.svg"))
    args = parser.parse_args()
    asyncio.run(render(args.moves, args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
