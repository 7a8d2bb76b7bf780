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


def test_a_tree_export_of_a_dataset_game_names_it(engine, tmp_path, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    app = make_app(Session(lambda: engine, seed=2), None, 7)

    async def scenario(pilot):
        await pilot.press("right", "right", "right", "right", "t")  # the top prediction at P4
        for _ in range(200):
            await app.workers.wait_for_complete()
            await pilot.pause()
            if app.screen.contributors.expansion is not None:
                break
        await pilot.press("e", "enter")
        for _ in range(200):
            await app.workers.wait_for_complete()
            await pilot.pause()
            if (tmp_path / "exports").exists() and len(list((tmp_path / "exports").iterdir())) == 4:
                break
        (exported,) = (p for p in (tmp_path / "exports").glob("*.json") if not p.name.endswith(".graph.json"))
        assert exported.name.startswith("tree-s2g7-P4logit-")
        provenance = json.loads(exported.read_text())["provenance"]
        graph = json.loads(exported.with_name(exported.stem + ".graph.json").read_text())
        assert graph["metadata"]["provenance"] == provenance
        assert (provenance["seed"], provenance["game_index"], provenance["position"]) == (2, 7, 4)
        assert provenance["moves"] == Game.from_squares(dataset_squares(7, 2)).text
        assert "--seed 2 --game-index 7 --pos 4" in provenance["commands"][0]

    run(app, scenario)


def test_b_ablates_the_feature_under_the_cursor_over_games_in_a_panel(engine, tiny_model, tiny_dictionaries):
    from othello_tui.circuits.ablation import ablate_feature
    from othello_tui.tui.screens.ablation import AblationPanel

    app = make_app(Session(lambda: engine), Game.from_text("f-4 f-5 e-5 d-5 c-3"), 0)

    async def scenario(pilot):
        await pilot.press("enter", "down")  # open the first module; the cursor on its first feature
        feature = app.main_screen.feature_list.current.feature
        await pilot.press("A")
        panel = app.screen
        assert isinstance(panel, AblationPanel)
        for _ in range(400):
            await app.workers.wait_for_complete()
            await pilot.pause()
            if "Reproduce" in str(panel.query_one("#ablation-report").render()):
                break
        shown = str(panel.query_one("#ablation-report").render())
        report = ablate_feature(
            tiny_model, tiny_dictionaries, feature.module, feature.index, 0.0, None, 200, 0
        )
        assert report.lines(0)[1] in shown and f"--feature {feature.feature_id} --games 200" in shown
        await pilot.press("escape")
        assert app.screen is app.main_screen

    run(app, scenario)


def test_the_tree_legend_does_not_borrow_a_key():
    from othello_tui.tui.screens.tree import NOTES, TreeScreen

    keys = {key for binding in TreeScreen.BINDINGS for key in binding.key.split(",")}
    for line in NOTES.splitlines():
        first = line.split()[0]
        assert first not in keys, f"the legend line {line!r} starts with the key {first!r}"


@pytest.mark.parametrize(
    "typed, reason", [("L9Z9999", "modules L0A, L0M, L1A, L1M"), ("L0A99999", "L0A has features 0…63")]
)
def test_the_palette_explains_every_id_shaped_like_a_feature(engine, typed, reason):
    from textual.command import CommandPalette

    app = make_app(Session(lambda: engine), Game.from_text("f-4 f-5"), 0)

    async def scenario(pilot):
        await pilot.press("ctrl+p", *typed)
        await pilot.pause(0.5)
        palette = app.screen
        assert isinstance(palette, CommandPalette)
        shown = " ".join(str(option.prompt) for option in palette.query_one("CommandList").options)
        assert "Not a feature" in shown and reason in shown

    run(app, scenario)


def test_the_palette_screenshot_says_where_it_went_or_why_not(engine, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app(Session(lambda: engine), Game.from_text("f-4 f-5"), 0)

    async def scenario(pilot):
        app.action_screenshot()
        await pilot.pause()
        (saved,) = (tmp_path / "exports").glob("*.svg")
        assert saved.read_text().startswith("<svg")
        (note,) = [n for n in app._notifications if n.title == "Screenshot"]
        assert str(saved.name) in note.message
        app.action_screenshot(path=str(tmp_path / "exports" / saved.name))  # a file, not a folder
        await pilot.pause()
        (failed,) = [n for n in app._notifications if n.title == "Screenshot not saved"]
        assert saved.name in failed.message

    run(app, scenario)
