"""Pilot tests of the keys that take a finding out of the app: `y` copies the move list."""

from __future__ import annotations

import asyncio

import pytest

from othello_tui.game.generator import dataset_squares
from othello_tui.game.rules import Game
from othello_tui.tui.app import make_app
from othello_tui.tui.engine import ModelEngine
from othello_tui.tui.session import Session


@pytest.fixture(scope="module")
def engine(tiny_model, tiny_dictionaries):
    return ModelEngine(tiny_model, tiny_dictionaries)


def run(app, scenario, size=(120, 40)) -> None:
    async def main():
        async with app.run_test(size=size) as pilot:
            for _ in range(200):
                await app.workers.wait_for_complete()
                await pilot.pause()
                if not app.workers and app.main_screen.current_view is not None:
                    break
            await scenario(pilot)

    asyncio.run(main())


def message(app) -> str:
    return str(app.main_screen.query_one("#message").render())


def test_y_copies_the_moves_up_to_the_position_shown(engine):
    app = make_app(Session(lambda: engine, seed=2), None, 7)
    squares = dataset_squares(7, 2)

    async def scenario(pilot):
        await pilot.press("right", "right", "right", "right", "y")  # move 5 of game 7
        expected = Game.from_squares(squares[:5]).text
        assert app.clipboard == expected
        assert expected in message(app) and "--seed 2 --game-index 7" in message(app)
        await pilot.press("home", "y")
        assert "No moves to copy" in message(app) and app.clipboard == expected

    run(app, scenario)


def test_y_on_pasted_moves_names_no_game_index(engine):
    app = make_app(Session(lambda: engine), Game.from_text("f-4 f-5 e-5"), 0)

    async def scenario(pilot):
        await pilot.press("y")
        assert app.clipboard == "f-4 f-5 e-5"
        assert "Copied 3 moves" in message(app) and "--game-index" not in message(app)

    run(app, scenario)
