"""Notes on features in the app, through Textual's Pilot on the tiny model and its feature cache:
N writes a note on the feature under the cursor; it shows in the features panel and on the
feature page (marked ✎), the palette finds it, a tree export carries it, and a corrupt notes
file is reported at start and left alone."""

from __future__ import annotations

import json

import pytest
from test_tui_app import MOVES, run, settle
from textual.command import CommandPalette
from textual.widgets import Input, Static

from othello_tui.features import open_cache
from othello_tui.game.rules import Game
from othello_tui.notes import Note, notes_path
from othello_tui.tui.app import make_app
from othello_tui.tui.engine import ModelEngine
from othello_tui.tui.screens.feature import FeatureScreen
from othello_tui.tui.screens.note import NoteScreen
from othello_tui.tui.screens.tree import TreeScreen
from othello_tui.tui.session import Session


@pytest.fixture(scope="module")
def engine(tiny_model, tiny_dictionaries, tiny_cache):
    return ModelEngine(tiny_model, tiny_dictionaries, feature_cache=open_cache(tiny_cache))


async def write_note(pilot, label: str, notes: str) -> None:
    """Fill the open note dialog and press Enter."""
    dialog = pilot.app.screen
    assert isinstance(dialog, NoteScreen)
    dialog.query_one("#note-label", Input).value = label
    dialog.query_one("#note-notes", Input).value = notes
    await pilot.press("enter")
    await pilot.pause()


async def open_tree(pilot) -> None:
    """``t``: the top prediction's contributors, once computed."""
    app = pilot.app
    await pilot.press("t")
    for _ in range(200):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if isinstance(app.screen, TreeScreen) and app.screen.contributors.expansion is not None:
            return


def test_a_note_shows_in_the_panel_and_on_the_page_and_the_palette_finds_it(engine, tmp_path):
    app = make_app(Session(lambda: engine, notes_dir=tmp_path), Game.from_text(MOVES))
    main = app.main_screen

    async def scenario(pilot):
        await pilot.press("enter", "down")  # open the first module; the cursor on its first feature
        feature_id = main.feature_list.current.feature.feature_id
        await pilot.press("N")
        await write_note(pilot, "diagonal flipper", "seen in game 7")
        assert app.screen is main
        panel = main.feature_list
        assert panel.current.feature.label == "✎ diagonal flipper"
        assert f"{feature_id} " in panel.render_line(panel.cursor - panel.scroll_offset.y).text
        assert "✎ diagonal flipper" in panel.render_line(panel.cursor - panel.scroll_offset.y).text
        assert "diagonal flipper" in str(main.query_one("#message").render())
        saved = json.loads(notes_path(tmp_path, engine.identity[1]).read_text())
        assert saved["notes"] == {feature_id: {"label": "diagonal flipper", "notes": "seen in game 7"}}

        await pilot.press("enter")  # its page
        page = app.screen
        assert isinstance(page, FeatureScreen) and page.feature_id == feature_id
        assert "diagonal flipper · seen in game 7" in str(page.query_one("#feature-yours", Static).render())
        await pilot.press("N")
        assert app.screen.query_one("#note-label", Input).value == "diagonal flipper"  # filled in
        await write_note(pilot, "corner watcher", "seen in game 7")
        assert "✎ yours: corner watcher · seen in game 7" in str(page.query_one("#feature-yours").render())
        await pilot.press("escape")
        await settle(app, pilot)
        assert main.feature_list.current.feature.label == "✎ corner watcher"

        await pilot.press("ctrl+p", *"label", "space", *"watcher")
        await pilot.pause(0.5)
        assert isinstance(app.screen, CommandPalette)
        shown = [str(option.prompt) for option in app.screen.query_one("CommandList").options]
        assert f"{feature_id}  ✎ corner watcher\nseen in game 7" in shown  # the notes as its help

    run(app, scenario)


def test_a_tree_export_carries_the_notes_on_its_features(engine, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    session = Session(lambda: engine, notes_dir=tmp_path / "cache")
    app = make_app(session, Game.from_text(MOVES))

    async def scenario(pilot):
        await open_tree(pilot)
        branches = app.screen.contributors.expansion.branches
        noted = next(b.node for b in branches if b.node.feature_id is not None)
        session.set_note(noted.feature_id, Note("my feature", "why it matters"))
        await pilot.press("e", "enter")
        for _ in range(200):
            await app.workers.wait_for_complete()
            await pilot.pause()
            if len(list((tmp_path / "exports").glob("*"))) == 4:  # .json, .graph.json, .dot, .svg
                break
        (exported,) = [f for f in (tmp_path / "exports").glob("*.json") if not f.name.endswith(".graph.json")]
        (item,) = [c for c in json.loads(exported.read_text())["contributions"] if c["node"] == noted.id]
        assert item["note"] == {"label": "my feature", "notes": "why it matters"}
        assert item["label"] == "✎ my feature"
        others = [c for c in json.loads(exported.read_text())["contributions"] if c["node"] != noted.id]
        assert all("note" not in c for c in others)
        (dot,) = (tmp_path / "exports").glob("*.dot")
        assert "✎ my feature" in dot.read_text()

    run(app, scenario)


def test_a_corrupt_notes_file_is_reported_and_left_alone(engine, tmp_path):
    path = notes_path(tmp_path, engine.identity[1])
    path.parent.mkdir()
    path.write_text("{half a file")
    app = make_app(Session(lambda: engine, notes_dir=tmp_path), Game.from_text(MOVES))
    main = app.main_screen

    async def scenario(pilot):
        notices = [n.message for n in app._notifications]
        assert any("cannot read the notes file" in n and str(path) in n for n in notices)
        await pilot.press("enter", "down", "N")
        assert app.screen is main  # no dialog: nothing to save into
        assert "No notes: cannot read the notes file" in str(main.query_one("#message").render())
        assert path.read_text() == "{half a file"

    run(app, scenario)


def test_n_in_the_contributor_tree_writes_a_note_and_relabels_the_row(engine, tmp_path):
    session = Session(lambda: engine, notes_dir=tmp_path)
    app = make_app(session, Game.from_text(MOVES))

    async def scenario(pilot):
        await open_tree(pilot)
        tree = app.screen.contributors
        row = next(
            n for n in tree.nodes_below(tree.root) if n.data.branch and n.data.branch.node.kind == "feature"
        )
        tree.move_cursor(row)
        await pilot.pause()
        await pilot.press("N")
        await write_note(pilot, "tree note", "written from the tree")
        assert session.notes.get(row.data.branch.node.feature_id).label == "tree note"
        assert "✎ tree note" in str(row.label)

    run(app, scenario)
