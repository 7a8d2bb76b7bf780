"""Sessions in the app: ``S`` saves the game, the move, the interventions and the open screen (a
tree with its expanded nodes, a feature page); ``play --session`` opens the same again, and names
what no longer applies."""

from __future__ import annotations

import json

import pytest
from test_tui_app import run, settle
from test_tui_tree import to_feature, to_node

from othello_tui.game.generator import dataset_squares
from othello_tui.game.rules import Game
from othello_tui.session_file import SavedScreen, SavedSession, load_session, save_session
from othello_tui.tui.app import make_app
from othello_tui.tui.engine import ModelEngine
from othello_tui.tui.screens.feature import FeatureScreen
from othello_tui.tui.screens.tree import TreeScreen
from othello_tui.tui.session import Session


@pytest.fixture(scope="module")
def engine(tiny_model, tiny_dictionaries):
    return ModelEngine(tiny_model, tiny_dictionaries)


async def tree_settled(pilot) -> TreeScreen:
    app = pilot.app
    for _ in range(200):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if isinstance(app.screen, TreeScreen) and app.screen.contributors.expansion is not None:
            return app.screen
    raise AssertionError("no tree")


def test_a_saved_session_reopens_the_move_the_interventions_and_the_tree_with_its_expanded_nodes(
    engine, tmp_path
):
    path = tmp_path / "session.json"
    app = make_app(Session(lambda: engine, seed=2), None, 7, None, path)
    saved: dict = {}

    async def save(pilot):
        await pilot.press(*["right"] * 11)  # move 12 of game 7
        await settle(app, pilot)
        await to_feature(pilot, "L1M")
        await pilot.press("a")  # ablate it at P11
        await pilot.press("down", "t")  # the tree of the next feature
        tree = await tree_settled(pilot)
        child = next(
            c for c in tree.contributors.root.children if c.data.node and c.data.node.kind == "feature"
        )
        await to_node(pilot, tree.contributors, child)
        await pilot.press("space")
        await tree_settled(pilot)
        await pilot.press("S")
        saved.update(
            edits=[
                e.text for e in app.main_screen.session.circuits.edits(app.main_screen.shown.game.squares)
            ],
            target=tree.target,
            open=tree.contributors.open_paths(),
        )
        assert saved["open"] and len(saved["edits"]) == 1

    run(app, save)
    data = json.loads(path.read_text())
    assert (data["seed"], data["game_index"], data["n_moves"]) == (2, 7, 12)
    assert data["moves"] == Game.from_squares(dataset_squares(7, 2)).text
    assert data["screen"]["name"] == "tree" and data["screen"]["target"] == saved["target"].spec

    restored = make_app(Session(lambda: engine, seed=2), None, 0, load_session(path), path)

    async def check(pilot):
        tree = await tree_settled(pilot)
        await settle(restored, pilot)
        main = restored.main_screen
        assert (main.shown.n_moves, main.shown.index) == (12, 7)
        assert [e.text for e in main.session.circuits.edits(main.shown.game.squares)] == saved["edits"]
        assert "INTERVENED ×1" in str(main.query_one("#title").render())
        assert tree.target == saved["target"]
        for _ in range(200):  # the expanded nodes' children arrive from workers
            await restored.workers.wait_for_complete()
            await pilot.pause()
            if tree.contributors.open_paths() == saved["open"]:
                break
        assert tree.contributors.open_paths() == saved["open"]

    run(restored, check)


def test_s_on_a_feature_page_saves_it_and_never_overwrites_another_session(engine, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "othello-tui-session.json").write_text("someone else's")
    app = make_app(Session(lambda: engine), Game.from_text("f-4 f-5 e-5 f-3 g-4"))

    async def scenario(pilot):
        await to_feature(pilot, "L0A")
        feature_id = app.main_screen.feature_list.current.feature.feature_id
        await pilot.press("enter")
        assert isinstance(app.screen, FeatureScreen)
        await pilot.press("S")
        saved = load_session(tmp_path / "othello-tui-session-2.json")
        assert saved.screen == SavedScreen("feature", feature_id)
        assert (saved.game_index, saved.n_moves) == (None, 5)

    run(app, scenario)
    assert (tmp_path / "othello-tui-session.json").read_text() == "someone else's"


def test_a_stale_session_opens_what_still_applies_and_names_the_rest(engine, tmp_path):
    moves = "f-4 f-5 e-5 f-3 g-4"
    stale = SavedSession(
        0, None, moves, 4, ("P2L1M9999=0", "P1L0A0=0"), SavedScreen("tree", "feature:L1M9999", 3, 8, None)
    )
    path = tmp_path / "old.json"
    save_session(path, stale)
    app = make_app(Session(lambda: engine), None, 0, load_session(path), path)

    async def scenario(pilot):
        main = app.main_screen
        assert app.screen is main and main.shown.n_moves == 4
        assert [e.text for e in main.session.circuits.edits(main.shown.game.squares)] == ["P1L0A0=0"]
        message = str(main.query_one("#message").render())
        assert "P2L1M9999=0: feature L1M9999 is not in the loaded dictionaries" in message
        assert "tree of feature:L1M9999: the loaded dictionaries have no such feature" in message

    run(app, scenario)


def test_a_session_saved_on_the_graph_screen_reopens_it_with_its_settings(engine, tmp_path):
    from othello_tui.circuits.pruning import GraphSettings
    from othello_tui.tui.screens.graph import GraphScreen

    path = tmp_path / "graph-session.json"
    app = make_app(Session(lambda: engine), Game.from_text("f-4 f-5 e-5 f-3 g-4"), 0, None, path)
    saved: dict = {}

    async def save(pilot):
        await settle(app, pilot)
        await pilot.press("t")  # the top prediction's tree, then its graph
        tree = await tree_settled(pilot)
        await pilot.press("G")
        await settle(app, pilot)
        assert isinstance(app.screen, GraphScreen)
        app.screen.settings = GraphSettings(50, 0.7, 0.9)  # as f, l and b would set them
        await pilot.press("S")
        saved.update(target=tree.target)

    run(app, save)
    assert load_session(path).screen == SavedScreen(
        "graph", saved["target"].spec, saved["target"].position, graph=GraphSettings(50, 0.7, 0.9)
    )
    restored = make_app(Session(lambda: engine), None, 0, load_session(path), path)

    async def check(pilot):
        await settle(restored, pilot)
        screen = restored.screen
        assert isinstance(screen, GraphScreen)
        assert (screen.target, screen.settings) == (saved["target"], GraphSettings(50, 0.7, 0.9))

    run(restored, check)
