"""Pilot tests of `othello-tui play`: every flow of issue 7, asserting on what the widgets show."""

from __future__ import annotations

import asyncio
import io
import re
import threading

import numpy as np
import pytest
import torch
from rich.console import Console

from othello_tui.game.generator import generate_games
from othello_tui.game.rules import Game
from othello_tui.game.squares import SQUARE_TO_TOKEN, TOKEN_TO_SQUARE, square_name
from othello_tui.tui.app import OthelloApp, make_app
from othello_tui.tui.engine import ModelEngine
from othello_tui.tui.screens.feature import FeatureScreen
from othello_tui.tui.screens.help import HelpScreen
from othello_tui.tui.screens.main import MainScreen
from othello_tui.tui.screens.prompt import PromptScreen
from othello_tui.tui.session import Session
from othello_tui.tui.widgets.board import LABEL_WIDTH, Board
from othello_tui.tui.widgets.cursor_list import CursorList
from othello_tui.tui.widgets.examples import ExampleList
from othello_tui.tui.widgets.features import FeatureList
from othello_tui.tui.widgets.footer import Footer
from othello_tui.tui.widgets.move_list import ENTRY_WIDTH, MoveList
from othello_tui.tui.widgets.predictions import Predictions

MOVES = "e-5 d-5 c-3 d-2 e-1 f-5 f-6 e-2 g-5 c-4 d-6 c-5"  # the first 12 moves of game 0, seed 0


@pytest.fixture(scope="module")
def engine(tiny_model, tiny_dictionaries):
    return ModelEngine(tiny_model, tiny_dictionaries)


def app_on(engine, game: Game | None = None, game_index: int = 0, loader=None) -> OthelloApp:
    return make_app(Session(loader or (lambda: engine)), game, game_index)


def run(app: OthelloApp, scenario, size=(120, 40), wait: bool = True) -> None:
    """Run ``scenario(pilot)`` once the model and the first game are in (unless ``wait`` is off)."""

    async def main():
        async with app.run_test(size=size) as pilot:
            if wait:
                await settle(app, pilot)
            else:
                await pilot.pause()
            await scenario(pilot)

    asyncio.run(main())


async def settle(app: OthelloApp, pilot) -> None:
    """Until no worker runs and the position shown is analysed (or cannot be)."""
    for _ in range(200):
        await app.workers.wait_for_complete()
        await pilot.pause()
        view = app.main_screen.current_view
        if not app.workers and view is not None and not view.pending:
            return
    raise AssertionError("the app did not settle")


def shows(app: OthelloApp, widget) -> str:
    """The text the screen shows inside ``widget``'s region."""
    lines = [strip.text for strip in app.screen._compositor.render_strips()]
    region = widget.region
    return "\n".join(line[region.x : region.right] for line in lines[region.y : region.bottom])


def main_parts(app: OthelloApp):
    screen = app.main_screen
    return screen, screen.query_one(Board), screen.query_one("#title"), screen.query_one("#message")


def model_probs(model, squares: list[int]) -> np.ndarray:
    """P(next move = square) from a separate forward pass over ``squares``."""
    tokens = torch.from_numpy(SQUARE_TO_TOKEN[np.array(squares)].astype(np.int64))[None]
    with torch.no_grad():
        probs = torch.softmax(model(tokens)[0, -1], -1).numpy()
    out = np.zeros(64)
    out[TOKEN_TO_SQUARE[1:]] = probs[1:]
    return out


async def resize(pilot, width: int, height: int) -> None:
    """Resize and wait out the app's resize debounce timer."""
    await pilot.resize_terminal(width, height)
    while pilot.app.screen.size != (width, height):
        await pilot.pause(0.01)
    await pilot.pause()


async def move_cursor(pilot, board: Board, target: int) -> None:
    """Arrow keys from the board's cursor to ``target`` (the cursor wraps at the edges)."""
    row, col = divmod(board.cursor, 8)
    t_row, t_col = divmod(target, 8)
    await pilot.press(*(["down"] * ((t_row - row) % 8) + ["right"] * ((t_col - col) % 8)))
    assert board.cursor == target


def test_board_is_on_screen_before_the_model_and_predictions_fill_in(engine):
    release = threading.Event()

    def slow_loader():
        release.wait(10)
        return engine

    app = app_on(engine, Game.from_text(MOVES), loader=slow_loader)

    async def scenario(pilot):
        screen, board, title, _ = main_parts(app)
        drawn = shows(app, board)
        assert drawn.splitlines()[0].split() == list("01234567")
        assert [line[0] for line in drawn.splitlines()[1:] if line[0] != " "] == list("abcdefgh")
        assert "move 12 of 12" in shows(app, title)
        assert "Loading the model" in shows(app, screen.query_one(Predictions))
        release.set()
        await settle(app, pilot)
        predictions = shows(app, screen.query_one(Predictions))
        assert "Predictions for move 13" in predictions and "%" in predictions
        assert "L0A" in shows(app, screen.query_one(FeatureList))

    run(app, scenario, wait=False)


def test_stepping_home_end_and_the_move_list(engine):
    app = app_on(engine, Game.from_text(MOVES))

    async def scenario(pilot):
        screen, board, title, _ = main_parts(app)
        await pilot.press("home")
        assert "move 0 of 12" in shows(app, title) and "black to move" in shows(app, title)
        assert "● 2  ○ 2" in shows(app, title)
        await pilot.press("right", "right", "right")
        await settle(app, pilot)
        assert "move 3 of 12" in shows(app, title) and "white to move" in shows(app, title)
        row_c = next(line for line in shows(app, board).splitlines() if line.startswith("c"))  # c-3: move 3
        assert row_c.startswith("c") and "[●]" in row_c
        assert "[3●c-3]" in shows(app, screen.query_one(MoveList))
        assert "Predictions for move 4" in shows(app, screen.query_one(Predictions))
        await pilot.press("end")
        assert "move 12 of 12" in shows(app, title)
        await pilot.press("left")
        assert "move 11 of 12" in shows(app, title)
        moves = screen.query_one(MoveList)
        assert "[11●d-6]" in shows(app, moves)
        await pilot.click(MoveList, offset=(moves.gutter.left + 4 * ENTRY_WIDTH + 2, 0))
        assert "move 5 of 12" in shows(app, title) and "[5●e-1]" in shows(app, moves)

    run(app, scenario)


def test_playing_a_legal_move_branches_and_undo_restores(engine):
    game = Game.from_text(MOVES)
    app = app_on(engine, game)

    async def scenario(pilot):
        screen, board, title, message = main_parts(app)
        await pilot.press("home", *["right"] * 4, "p")
        assert board.play and "PLAY MODE" in shows(app, title)
        legal = game.truncated(4).legal
        target = next(s for s in legal if s != game.moves[4].square)
        await move_cursor(pilot, board, target)
        await pilot.press("enter")
        await settle(app, pilot)
        assert "move 5 of 5" in shows(app, title) and "branched at move 4" in shows(app, title)
        assert f"Played {square_name(target)}" in shows(app, message)
        assert board.view.last_move == target and screen.shown.game.squares == game.squares[:4] + [target]
        await pilot.press("u")
        assert screen.shown.game is game and "move 4 of 12" in shows(app, title)

    run(app, scenario)


def test_in_play_mode_the_footer_names_the_cursor_keys_not_stepping(engine):
    app = app_on(engine, Game.from_text(MOVES))

    async def scenario(pilot):
        screen, board, title, _ = main_parts(app)
        footer = screen.query_one(Footer)
        assert "← back" in shows(app, footer) and "→ next" in shows(app, footer)
        await pilot.press("p")
        await pilot.pause()
        shown = shows(app, footer)
        assert "←↑↓→ cursor" in shown and "back" not in shown and "next" not in shown
        cursor = board.cursor
        await pilot.press("left")
        assert board.cursor == cursor - 1 and "move 12 of 12" in shows(app, title)
        await pilot.press("comma")  # no stepping in play mode: u takes a move back
        assert "move 12 of 12" in shows(app, title)
        await pilot.press("escape", "comma")
        await pilot.pause()
        assert "move 11 of 12" in shows(app, title) and "← back" in shows(app, footer)

    run(app, scenario)


def test_an_illegal_move_is_refused_with_the_reason(engine):
    game = Game.from_text(MOVES)
    app = app_on(engine, game)

    async def scenario(pilot):
        screen, board, title, message = main_parts(app)
        await pilot.press("p")
        await move_cursor(pilot, board, 27)  # d-3: occupied from the start
        await pilot.press("enter")
        said = shows(app, message)
        assert "Not played" in said and "d-3" in said and "not legal" in said
        assert screen.shown.game is game and "move 12 of 12" in shows(app, title)

    run(app, scenario)


def test_a_click_places_a_disc_in_play_mode_only(engine):
    game = Game.from_text(MOVES)
    app = app_on(engine, game)

    async def scenario(pilot):
        screen, board, title, _ = main_parts(app)
        target = game.legal[0]
        cell_w, cell_h = board.cell
        offset = (LABEL_WIDTH + (target % 8) * cell_w + 1, 1 + (target // 8) * cell_h)
        await pilot.click(Board, offset=offset)
        assert len(screen.shown.game.moves) == 12  # view mode: a click does nothing
        await pilot.press("p")
        await pilot.click(Board, offset=offset)
        assert screen.shown.game.squares == game.squares + [target]
        assert "move 13 of 13" in shows(app, title)

    run(app, scenario)


def test_the_model_plays_its_most_probable_legal_move(engine, tiny_model):
    game = Game.from_text(MOVES)
    app = app_on(engine, game)

    async def scenario(pilot):
        screen, board, _, message = main_parts(app)
        await pilot.press("home", *["right"] * 6, "m")
        await settle(app, pilot)
        probs = model_probs(tiny_model, game.squares[:6])
        legal = game.truncated(6).legal
        expected = max(legal, key=lambda s: probs[s])
        assert screen.shown.n_moves == 7 and board.view.last_move == expected
        assert square_name(expected) in shows(app, message)

    run(app, scenario)


def test_new_game_and_game_by_index_come_from_the_seeded_dataset(engine):
    app = app_on(engine, game_index=0)
    games = generate_games(6, 0)

    def squares(k):
        return [int(s) for s in games.squares[k] if s >= 0]

    async def scenario(pilot):
        screen, _, title, _ = main_parts(app)
        assert "game 0 (seed 0)" in shows(app, title) and screen.shown.game.squares == squares(0)
        await pilot.press("n")
        await settle(app, pilot)
        assert "game 1 (seed 0)" in shows(app, title) and screen.shown.game.squares == squares(1)
        await pilot.press("g")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"x1", "enter")
        assert "'x1' is not a number" in str(app.screen.query_one("#error").content)
        await pilot.press("backspace", "backspace", "5", "enter")
        await settle(app, pilot)
        assert "game 5 (seed 0)" in shows(app, title) and screen.shown.game.squares == squares(5)

    run(app, scenario)


@pytest.mark.parametrize(
    "text, reason",
    [("f-4 e-9", "move 2 'e-9': not a square"), ("f-4 f-4", "move 2 'f-4': not legal for white")],
)
def test_a_bad_pasted_move_list_gets_a_clear_message(engine, text, reason):
    game = Game.from_text(MOVES)
    app = app_on(engine, game)

    async def scenario(pilot):
        await pilot.press("colon")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*text, "enter")
        assert isinstance(app.screen, PromptScreen)
        assert reason in str(app.screen.query_one("#error").content)
        await pilot.press("escape")
        assert app.screen is app.main_screen and app.main_screen.shown.game is game

    run(app, scenario)


def test_a_good_pasted_move_list_opens_at_its_end(engine):
    app = app_on(engine, Game.from_text(MOVES))

    async def scenario(pilot):
        await pilot.press("colon", *"f-4, f-5", "enter")
        await settle(app, pilot)
        _, _, title, _ = main_parts(app)
        assert "pasted moves · move 2 of 2" in shows(app, title)
        assert app.main_screen.shown.game.squares == [44, 45]

    run(app, scenario)


def test_enter_on_a_feature_opens_its_page(engine):
    app = app_on(engine, Game.from_text(MOVES))

    async def scenario(pilot):
        screen = app.main_screen
        features = screen.query_one(FeatureList)
        assert features.has_focus
        await pilot.press("enter")  # expand L0A
        listed = shows(app, features)
        first = screen.current_view.features[0].features()[0]
        assert re.search(rf"{first.feature_id}\s+{first.activation:.2f}", listed)
        await pilot.press("down", "enter")
        assert isinstance(app.screen, FeatureScreen) and app.screen.feature_id == first.feature_id
        page = shows(app, app.screen)
        assert f"{first.feature_id} · feature {first.index} of L0A, the attention output of layer 0" in page
        assert "no feature cache" in page.lower()  # this engine has none: the page says so
        await pilot.press("escape")
        assert app.screen is screen
        await pilot.press("right")  # stepping keeps the cursor on L0A's first feature (move 12 = end)
        assert features.current.module == "L0A" and features.current.rank == 0
        await pilot.press("left", "space")  # collapse: the cursor goes to the header
        assert features.current.feature is None and len(features.rows) == len(screen.current_view.features)
        assert not re.search(r"L0A\d", shows(app, features))

    run(app, scenario)


def test_help_lists_every_key(engine):
    app = app_on(engine, Game.from_text(MOVES))

    async def scenario(pilot):
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        console = Console(width=100, record=True, file=io.StringIO())
        console.print(app.screen.query_one("#help-keys").content)
        rows = console.export_text()
        every = (
            *(MainScreen.BINDINGS, Board.BINDINGS, FeatureList.BINDINGS),
            *(CursorList.BINDINGS, FeatureScreen.BINDINGS, ExampleList.BINDINGS, OthelloApp.BINDINGS),
        )
        for bindings in every:
            for binding in bindings:
                assert (binding.tooltip or binding.description) in rows
                for key in binding.key.split(","):
                    assert app.get_key_display(type(binding)(key, "")) in rows
        await pilot.press("escape")
        assert app.screen is app.main_screen

    run(app, scenario)


def test_a_too_small_terminal_says_so_and_resizing_is_safe(engine):
    app = app_on(engine, Game.from_text(MOVES))

    async def scenario(pilot):
        screen = app.main_screen
        assert screen.has_class("-too-small")
        assert "too small (50×15)" in str(screen.query_one("#too-small").content)
        for size in ((120, 40), (80, 24), (10, 5), (160, 50)):
            await resize(pilot, *size)
            assert screen.has_class("-too-small") == (size == (10, 5))
        board = screen.query_one(Board)
        assert board.cell == (7, 3) and shows(app, board).splitlines()[2].startswith("a")
        await resize(pilot, 80, 24)
        assert board.cell == (3, 1)

    run(app, scenario, size=(50, 15))


def test_the_command_palette_loads_moves_and_jumps(engine):
    app = app_on(engine, Game.from_text(MOVES))

    async def scenario(pilot):
        _, _, title, _ = main_parts(app)
        await pilot.press("ctrl+p", *"move 3")
        await pilot.pause(0.3)
        await pilot.press("enter")
        assert "move 3 of 12" in shows(app, title)
        await pilot.press("ctrl+p", *"move 99")
        await pilot.pause(0.3)
        assert "Go to move 12: the game has 12 moves" in shows(app, app.screen)
        await pilot.press("enter")
        assert "move 12 of 12" in shows(app, title)
        await pilot.press("ctrl+p", *"f-4 f-5 e-5")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.main_screen.shown.game.squares == [44, 45, 37]

    run(app, scenario)


def test_missing_weights_are_explained_not_a_traceback(tmp_path):
    app = make_app(Session.from_weights(tmp_path / "no-weights"), Game.from_text(MOVES))

    async def scenario(pilot):
        screen, board, _, message = main_parts(app)
        # the panel's own lines (the error toast covers part of it on screen)
        assert "othello-tui train model" in screen.query_one(Predictions).render().plain.replace("\n", " ")
        assert "No model" in shows(app, message)
        await pilot.press("left", "m")  # the board still works; the model move explains itself
        assert "othello-tui train model" in shows(app, message)
        assert board.view.n_moves == 11

    run(app, scenario)


def test_the_overlay_toggle_hides_the_probabilities(engine):
    app = app_on(engine, Game.from_text(MOVES))

    async def scenario(pilot):
        _, board, _, _ = main_parts(app)
        cells = "\n".join(line[LABEL_WIDTH:] for line in shows(app, board).splitlines()[1:9])
        assert re.search(r"\d", cells)  # the tiny model spreads its bets: numbers on the board
        await pilot.press("o")
        cells = "\n".join(line[LABEL_WIDTH:] for line in shows(app, board).splitlines()[1:9])
        assert not re.search(r"\d", cells) and "+" in cells and "[" in cells

    run(app, scenario)
