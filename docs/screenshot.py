"""Render the README screenshots with the shipped weights, as SVGs.

The game and position take the options of `othello-tui trace`: --seed S --game-index K (game K
of seed S) or --moves "f-4 f-5 …", and --pos P (position P, which holds move P+1).

python docs/screenshot.py [--pos P] [--out docs/play.svg]       the main screen
python docs/screenshot.py --tree [--pos P] [--out docs/tree.svg]  the contributor tree of the
    top prediction there, its strongest contributor expanded
python docs/screenshot.py --attention --seed 0 --game-index 0 --pos 30   the attention view at
    move 31 with the QK table of layer 0, head 0 and the key two moves back
python docs/screenshot.py --target feature:L3A17 --seed 0 --game-index 17598 --pos 39   the
    contributor tree of a feature or logit (logit:d-5) at move 40 [--out docs/feature-tree.svg]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from othello_tui.circuits.nodes import parse_target
from othello_tui.cli.groups import DEFAULT_CACHE_DIR, DEFAULT_WEIGHTS
from othello_tui.game.rules import Game
from othello_tui.tui.app import make_app
from othello_tui.tui.screens.tree import TreeScreen
from othello_tui.tui.session import Session


async def settle(app, pilot) -> None:
    """Wait until no worker runs (the model loading, an analysis, a tree being computed)."""
    for _ in range(400):
        await pilot.pause(0.05)
        if not any(w.is_running for w in app.workers._workers):
            break


async def render(
    game: Game | None,
    index: int,
    position: int,
    out: Path,
    tree: bool,
    attention: bool,
    target: str | None,
    seed: int,
    beliefs: bool = False,
) -> None:
    session = Session.from_weights(DEFAULT_WEIGHTS, cache_dir=DEFAULT_CACHE_DIR, seed=seed)
    app = make_app(session, game, index)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press("home")  # the start position, then position P: P + 1 moves
        for _ in range(position + 1):
            await pilot.press("right")
        await settle(app, pilot)
        if beliefs:
            await pilot.press("b")
            await settle(app, pilot)
        if tree:
            await pilot.press("t")
            await settle(app, pilot)
            await pilot.press("down", "space")
            await settle(app, pilot)
        if target:
            main_screen = app.screen
            app.push_screen(
                TreeScreen(
                    session,
                    main_screen.shown.game,
                    parse_target(target, position),
                    main_screen.shown.source,
                    main_screen.action_jump,
                )
            )
            await settle(app, pilot)
        if attention:
            await pilot.press("w")
            await settle(app, pilot)
            await pilot.press("left", "left", "enter")
            await settle(app, pilot)
        await pilot.pause(0.5)
        out.write_text(app.export_screenshot(title="othello-tui play"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=3, help="seed of the dataset games")
    parser.add_argument("--game-index", type=int, default=17, help="game K of the dataset")
    parser.add_argument("--moves", help='a move list instead of --game-index, e.g. "f-4 f-5 c-3"')
    parser.add_argument("--pos", type=int, default=23, help="position P (move P+1), 0-based")
    parser.add_argument("--tree", action="store_true", help="the contributor tree instead")
    parser.add_argument("--attention", action="store_true", help="the attention view instead")
    parser.add_argument(
        "--target", help="the contributor tree of this target (feature:L3A17, logit:d-5) instead"
    )
    parser.add_argument("--beliefs", action="store_true", help="with the believed board (b)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    game = Game.from_text(args.moves) if args.moves else None
    name = (
        "tree.svg" if args.tree else "attention.svg" if args.attention
        else "feature-tree.svg" if args.target else "beliefs.svg" if args.beliefs else "play.svg"
    )  # fmt: skip
    args.out = args.out or Path(__file__).with_name(name)
    asyncio.run(
        render(
            game,
            args.game_index,
            args.pos,
            args.out,
            args.tree,
            args.attention,
            args.target,
            args.seed,
            args.beliefs,
        )  # fmt: skip
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
