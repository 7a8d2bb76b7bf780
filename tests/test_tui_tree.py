"""Pilot tests of the circuit screens of `othello-tui play`: the contributor tree (`t`), the
attention view (`w`), interventions (`a`, `x`, `c`) and export (`e`), asserting on what the
widgets show against direct calls of the circuits package and the CLI."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from rich.console import Console
from test_graph_json import tree_links
from test_tui_app import app_on, move_cursor, run, settle, shows

from othello_tui.circuits.edits import Edit
from othello_tui.circuits.intervention import intervene
from othello_tui.circuits.nodes import Target
from othello_tui.circuits.trace import GameTrace
from othello_tui.cli import main as cli
from othello_tui.game.rules import Game
from othello_tui.game.squares import TOKEN_TO_SQUARE, square_name, tokens_of
from othello_tui.tui.engine import ModelEngine
from othello_tui.tui.screens.attention import AttentionScreen
from othello_tui.tui.screens.feature import FeatureScreen
from othello_tui.tui.screens.prompt import PromptScreen, parse_factor, parse_folder, parse_threshold
from othello_tui.tui.screens.tree import TreeScreen
from othello_tui.tui.widgets.board import Board
from othello_tui.tui.widgets.contributor_tree import ContributorTree
from othello_tui.tui.widgets.features import FeatureList
from othello_tui.tui.widgets.predictions import Predictions
from othello_tui.tui.widgets.qk_table import QKTable

MOVES = "e-5 d-5 c-3 d-2 e-1 f-5 f-6 e-2 g-5 c-4 d-6 c-5"
GAME = Game.from_text(MOVES)
VALUE = re.compile(r"(P\d+\S+|… others)\s+([+−]\d+\.\d{4})")
MODULES = ["L0A", "L0M", "L1A", "L1M"]
SUM = re.compile(r"= (−?\d+\.\d{4}) · Σ (−?\d+\.\d{4}) ✓")


@pytest.fixture(scope="module")
def engine(tiny_model, tiny_dictionaries):
    return ModelEngine(tiny_model, tiny_dictionaries)


@pytest.fixture(scope="module")
def trace(tiny_model, tiny_dictionaries):
    return GameTrace(tiny_model, tiny_dictionaries, tokens_of(GAME.squares))


def number(text: str) -> float:
    return float(text.replace("−", "-"))


async def to_feature(pilot, module: str, rank: int = 0) -> None:
    """The features panel's cursor onto feature ``rank`` of ``module`` (its header, then Enter)."""
    features = pilot.app.main_screen.query_one(FeatureList)
    while features.current.module != module:
        await pilot.press("down")
    await pilot.press("enter", *["down"] * (rank + 1))
    assert features.current.feature is not None and features.current.rank == rank


async def to_node(pilot, tree: ContributorTree, tree_node) -> None:
    """The tree's cursor onto ``tree_node`` with the arrow keys."""
    steps = tree_node.line - tree.cursor_line
    await pilot.press(*(["down"] * steps if steps > 0 else ["up"] * -steps))
    assert tree.cursor_node is tree_node


def check_sums(tree: ContributorTree) -> int:
    """Every expanded level as labelled: its rows (shown contributions and '… others') add up
    to the value its parent's label shows (``= v · Σ s ✓``). Returns how many levels it checked."""
    checked = 0
    for tree_node in [tree.root, *tree.nodes_below(tree.root)]:
        explained = SUM.search(tree_node.label.plain)
        if explained is None:
            continue
        values = [number(VALUE.search(child.label.plain)[2]) for child in tree_node.children]
        value = number(explained[1])
        assert sum(values) == pytest.approx(value, abs=1e-4 * (len(values) + 1))
        assert number(explained[2]) == pytest.approx(value, abs=1e-3 * max(1.0, abs(value)))
        checked += 1
    return checked


def test_t_on_a_feature_opens_its_tree_and_expands_to_depth_3(engine, trace):
    app = app_on(engine, GAME)

    async def scenario(pilot):
        await to_feature(pilot, "L1M")
        feature = app.main_screen.feature_list.current.feature
        await pilot.press("t")
        await settle(app, pilot)
        assert isinstance(app.screen, TreeScreen)
        tree = app.screen.query_one(ContributorTree)
        target = Target("feature", 11, module="L1M", feature=feature.index)
        expected = trace.expand(target, 1, 8)
        root_line = shows(app, tree).splitlines()[0]
        assert f"feature:{feature.feature_id} at P11 = {expected.value:.4f}" in root_line
        await pilot.press("plus", "plus")  # top 8 -> 15: room for features among errors and biases
        await settle(app, pilot)
        assert app.screen.top == 15 and "top 15 per level" in shows(app, app.screen.query_one("#tree-title"))
        parent = tree.root
        for level in (1, 2):  # two expansions under the root: three levels, as --depth 3
            features = [
                c for c in parent.children if c.data.node is not None and c.data.node.kind == "feature"
            ]
            assert features, f"a feature among the top 15 at level {level}"
            child = max(features, key=lambda c: MODULES.index(c.data.node.module))  # one with features below
            await to_node(pilot, tree, child)
            await pilot.press("space")
            await settle(app, pilot)
            got, node = child.data.branch.expansion, child.data.node
            want = trace.expand(node.as_target(), 1, 15)
            assert [(b.node.id, b.contribution) for b in got.branches] == [
                (b.node.id, b.contribution) for b in want.branches
            ]
            parent = child
        assert any(c.data.node is not None for c in parent.children)  # level 3 is on screen
        assert check_sums(tree) == 3  # the root and the two expanded features
        await pilot.press("enter")  # on the last expanded feature: its page, as from the features panel
        await pilot.pause()
        assert isinstance(app.screen, FeatureScreen) and app.screen.feature_id == parent.data.node.feature_id

    run(app, scenario)


def test_t_explains_the_top_prediction_or_the_board_cursors_square(engine, trace):
    app = app_on(engine, GAME)

    async def scenario(pilot):
        view = app.main_screen.current_view
        top = view.top[0].square
        await pilot.press("t")  # the cursor is on a module header, not a feature
        await settle(app, pilot)
        tree = app.screen.query_one(ContributorTree)
        target = Target("logit", 11, square=top)
        expected = trace.expand(target, 1, 8)
        text = shows(app, tree)
        assert text.startswith(f"▼ logit:{square_name(top)} at P11 = {expected.value:.4f}")
        rows = [(m[1], number(m[2])) for m in map(VALUE.search, text.splitlines()[1:]) if m]
        assert rows == [(b.node.id, pytest.approx(b.contribution, abs=5e-5)) for b in expected.branches] + [
            ("… others", pytest.approx(expected.rest, abs=5e-5))
        ]
        assert check_sums(tree) == 1
        assert "error" in text or "bias" in text  # the nodes that are not features are shown too
        await pilot.press("escape", "p")
        board = app.main_screen.board
        square = next(s for s in GAME.truncated(12).legal if s != top)
        await move_cursor(pilot, board, square)
        await pilot.press("t")
        await settle(app, pilot)
        assert f"logit:{square_name(square)} at P11" in shows(app, app.screen.query_one(ContributorTree))

    run(app, scenario)


def test_the_circuit_keys_explain_why_they_cannot_act(engine):
    app = app_on(engine, GAME)

    async def scenario(pilot):
        message = app.main_screen.query_one("#message")
        await pilot.press("a")
        assert "cursor on a feature" in shows(app, message)
        await pilot.press("home", "t")
        assert app.screen is app.main_screen and "move 1 first" in shows(app, message)
        await pilot.press("end", "p")
        await move_cursor(pilot, app.main_screen.board, 27)  # d-3
        await pilot.press("t")
        assert "d-3 is a centre square" in shows(app, message)
        await pilot.press("escape")
        await to_feature(pilot, "L0A")
        await pilot.press("x", *"two", "enter")
        assert isinstance(app.screen, PromptScreen)
        assert "'two' is not a number" in str(app.screen.query_one("#error").content)
        await pilot.press("escape")
        assert app.main_screen.current_view.edits == ()

    run(app, scenario)


def test_the_qk_table_sums_to_the_attention_score(engine, trace, tiny_model):
    app = app_on(engine, GAME)

    async def scenario(pilot):
        await pilot.press("w")
        await settle(app, pilot)
        assert isinstance(app.screen, AttentionScreen)
        grid = app.screen.grid
        assert grid.row_count == tiny_model.cfg.n_layers * tiny_model.cfg.n_heads
        pattern = trace.attention_pattern(11)
        await pilot.press("down", "down", "down", "down", "down", "left", "left", "left")  # L1H1, key P8
        cell = shows(app, app.screen.query_one("#attention-cell"))
        assert f"L1H1 from P11 to key P8 (move 9, g-5): {100 * float(pattern[1, 1, 8]):.1f}%" in cell
        await pilot.press("enter")
        await settle(app, pilot)
        score = trace.target_value(Target("score", 11, layer=1, head=1, key=8))
        title = shows(app, app.screen.query_one("#qk-title"))
        assert f"QK of L1H1, query P11 → key P8: pre-softmax score = {score:.4f}" in title and "✓" in title
        table = app.screen.query_one(QKTable)
        column = [table.get_row_at(r)[3].plain for r in range(table.row_count)]
        assert len(column) == 31 and table.get_row_at(30)[1].plain == "… others"
        assert sum(number(v) for v in column) == pytest.approx(score, abs=1e-4 * len(column))
        expected = trace.expand(Target("score", 11, layer=1, head=1, key=8), 1, 30)
        first = table.get_row_at(0)
        query, key = expected.branches[0].node.parts
        assert (first[1], first[2]) == (query.id, key.id)

    run(app, scenario)


def test_ablation_changes_the_predictions_and_clearing_restores_them(engine, trace):
    app = app_on(engine, GAME)

    async def scenario(pilot):
        predictions = app.main_screen.query_one(Predictions)
        clean = shows(app, predictions)
        await to_feature(pilot, "L1A", rank=1)
        feature = app.main_screen.feature_list.current.feature
        await pilot.press("a")
        await settle(app, pilot)
        edit = Edit(11, "L1A", feature.index, value=0.0)
        probs = torch.softmax(intervene(trace, [edit]).logits_after_TV[11], -1)
        before = torch.softmax(trace.logits_TV[11], -1)
        shown = shows(app, predictions)
        assert "Δ: after − before" in shown and f"{edit.node_id}=0 (ablated)" in shown
        rows = re.findall(r"([a-h]-\d)\s+(\d+\.\d)%\s+([+−-]\d+\.\d)", shown)
        assert len(rows) == 8
        for name, percent, delta in rows:
            token = next(t for t in range(1, 61) if square_name(int(TOKEN_TO_SQUARE[t])) == name)
            assert float(percent) == pytest.approx(100 * float(probs[token]), abs=0.051)
            assert number(delta) == pytest.approx(100 * float(probs[token] - before[token]), abs=0.051)
        assert "INTERVENED ×1" in shows(app, app.main_screen.query_one("#title"))
        await pilot.press("c")
        await settle(app, pilot)
        assert shows(app, predictions) == clean

    run(app, scenario)


def test_interventions_from_the_tree_stack_and_show_changed_values(engine, trace):
    app = app_on(engine, GAME)

    async def scenario(pilot):
        await to_feature(pilot, "L1M")
        await pilot.press("t")
        await settle(app, pilot)
        tree = app.screen.query_one(ContributorTree)
        features = [
            c for c in tree.root.children if c.data.node is not None and c.data.node.kind == "feature"
        ]
        first, second = features[0].data.node, features[1].data.node
        await to_node(pilot, tree, features[0])
        await pilot.press("a")
        await settle(app, pilot)
        await to_node(pilot, tree, features[1])
        await pilot.press("x", *"0.5", "enter")
        await settle(app, pilot)
        edits = [Edit(first.position, first.module, first.feature, value=0.0)]
        edits.append(Edit(second.position, second.module, second.feature, scale=0.5))
        root = tree.expansion.target
        expected = intervene(trace, edits, [first.id, second.id, root.id]).features
        text = shows(app, tree)
        for node in (first, second):
            before, after = expected[node.id]
            assert re.search(rf"{node.id}\s+\S+\s+c {before:.3f}→{after:.3f}", text)
        assert (
            f"→ {'+' if expected[root.id][1] >= 0 else '−'}{abs(expected[root.id][1]):.4f} intervened" in text
        )
        listed = shows(app, app.screen.query_one("#tree-edits"))
        assert f"{first.id}=0 (ablated)" in listed and f"{second.id}*0.5" in listed
        board = app.screen.query_one("#tree-board", Board).view  # the tree's own board, intervened too
        shown_probs = intervene(trace, edits).logits_after_TV[root.position].softmax(-1)
        assert board.probs_before is not None
        assert board.probs[TOKEN_TO_SQUARE[1:]] == pytest.approx(shown_probs[1:].numpy(), abs=1e-5)
        await pilot.press("c")
        await settle(app, pilot)
        assert "→" not in shows(app, tree) and "No interventions" in shows(
            app, app.screen.query_one("#tree-edits")
        )
        assert app.screen.query_one("#tree-board", Board).view.probs_before is None
        await pilot.press("escape")
        assert app.main_screen.current_view.edits == ()

    run(app, scenario)


def test_j_shows_the_source_position_of_an_ov_contributor(engine):
    app = app_on(engine, GAME)

    async def scenario(pilot):
        await to_feature(pilot, "L1A")
        await pilot.press("t", "plus", "plus", "plus")  # top 20: contributors at earlier positions
        await settle(app, pilot)
        tree = app.screen.query_one(ContributorTree)
        earlier = next(c for c in tree.root.children if c.data.node is not None and c.data.node.position < 11)
        await to_node(pilot, tree, earlier)
        await pilot.press("j")
        position = earlier.data.node.position
        assert f"Board at move {position + 1} (P{position})" in shows(
            app, app.screen.query_one("#tree-board-title")
        )
        assert app.screen.query_one("#tree-board").view.n_moves == position + 1
        await pilot.press("escape")
        assert app.main_screen.shown.n_moves == position + 1

    run(app, scenario)


def test_the_threshold_keeps_only_large_contributions(engine, trace):
    app = app_on(engine, GAME)

    async def scenario(pilot):
        await pilot.press("t")
        await settle(app, pilot)
        tree = app.screen.query_one(ContributorTree)
        target = tree.expansion.target
        cut = f"{0.999 * abs(trace.expand(target, 1, 8).branches[3].contribution):.5f}"
        await pilot.press("f", *cut, "enter")
        await settle(app, pilot)
        rows = [m[1] for m in map(VALUE.search, shows(app, tree).splitlines()[1:]) if m]
        expected = trace.expand(target, 1, 8, threshold=float(cut))
        assert rows == [b.node.id for b in expected.branches] + ["… others"] and len(rows) == 5
        assert f"|contribution| ≥ {float(cut):g}" in shows(app, app.screen.query_one("#tree-title"))
        await pilot.press("f", *"-1", "enter")
        assert "0 or more" in str(app.screen.query_one("#error").content)
        await pilot.press("escape")  # a cancelled prompt keeps the threshold
        await settle(app, pilot)
        assert app.screen.threshold == float(cut)
        assert f"|contribution| ≥ {float(cut):g}" in shows(app, app.screen.query_one("#tree-title"))
        await pilot.press("f", *"99999", "enter")  # above every contribution
        await settle(app, pilot)
        assert "… others" in shows(app, tree) and "none reaches the threshold" in shows(app, tree)
        await pilot.press("f", "enter")  # an empty entry: no threshold
        await settle(app, pilot)
        assert app.screen.threshold is None
        assert "|contribution| ≥" not in shows(app, app.screen.query_one("#tree-title"))

    run(app, scenario)


def test_export_writes_what_the_cli_prints_and_a_dot_file(engine, trace, weights_dir, tmp_path, monkeypatch):
    app = app_on(engine, GAME)
    monkeypatch.chdir(tmp_path)  # a short relative folder to type: every key press takes a while
    folder = tmp_path / "out"

    async def scenario(pilot):
        await to_feature(pilot, "L1M")
        feature = app.main_screen.feature_list.current.feature
        await pilot.press("t")
        await settle(app, pilot)
        await pilot.press("minus")  # top 5 per level
        await settle(app, pilot)
        tree = app.screen.query_one(ContributorTree)
        features = [c for c in tree.root.children if c.data.node and c.data.node.kind == "feature"]
        for child in reversed(features):  # bottom up: an expansion does not move the nodes above it
            await to_node(pilot, tree, child)
            await pilot.press("space")
            await settle(app, pilot)
        assert features and all(c.data.branch.expansion is not None for c in features)
        await pilot.press("e")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"out", "enter")
        await settle(app, pilot)
        message = shows(app, app.screen.query_one("#tree-message"))
        stem = f"tree-moves{len(GAME.moves)}-{hashlib.sha256(MOVES.encode()).hexdigest()[:8]}-P11{feature.feature_id}"
        assert "Exported" in message and f"{stem}.json" in message
        args = ["trace", "--moves", MOVES, "--pos", "11", "--target", f"feature:{feature.feature_id}"]
        args += ["--depth", "2", "--top", "5", "--weights", str(weights_dir)]
        as_json = CliRunner().invoke(cli, [*args, "--json"])
        assert as_json.exit_code == 0, as_json.output
        assert (folder / f"{stem}.json").read_text() == as_json.output
        assert json.loads(as_json.output)["contributions"][0]["node"] == tree.expansion.branches[0].node.id
        graph = json.loads((folder / f"{stem}.graph.json").read_text())  # the tree as a graph
        links = {(link["source"], link["target"]): link["weight"] for link in graph["links"]}
        assert (
            links == tree_links(tree.expansion) and graph["nodes"][0]["node_id"] == tree.expansion.target.id
        )
        assert graph["metadata"]["slug"] == f"{stem}.graph"  # the file is {slug}.json
        [command] = graph["metadata"]["provenance"]["commands"]
        assert command.endswith(f"--pos 11 --target feature:{feature.feature_id} --depth 2 --top 5 --json")
        as_dot = CliRunner().invoke(cli, [*args, "--dot"])
        assert (folder / f"{stem}.dot").read_text() == as_dot.output
        svg = (folder / f"{stem}.svg").read_text()
        assert svg.startswith("<svg") and "Contributor&#160;tree" in svg
        assert f"<desc>moves: {MOVES}" in svg and "reproduce: othello-tui trace --moves" in svg
        assert not list(folder.glob(".*"))  # the atomic writes left no temporary file
        before = {path: path.read_text() for path in folder.iterdir()}
        await pilot.press("e", *"out", "enter")  # again: new files, the old ones untouched
        await settle(app, pilot)
        assert {path: path.read_text() for path in before} == before
        assert sorted(p.name for p in set(folder.iterdir()) - set(before)) == [
            f"{stem}-2{suffix}" for suffix in (".dot", ".graph.json", ".json", ".svg")
        ]

    run(app, scenario)


def test_the_palette_exports_the_tree_and_clears_interventions(engine, tmp_path, monkeypatch):
    app = app_on(engine, GAME)
    monkeypatch.chdir(tmp_path)

    async def palette(pilot, query: str) -> None:
        await pilot.press("ctrl+p", *query)
        await pilot.pause(0.3)
        await pilot.press("enter")

    async def scenario(pilot):
        await palette(pilot, "export tree")
        assert "Open a contributor tree first" in shows(app, app.main_screen.query_one("#message"))
        await pilot.press("t")
        await settle(app, pilot)
        await palette(pilot, "export tree")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press("enter")  # the default folder
        await settle(app, pilot)
        assert sorted("".join(path.suffixes) for path in (tmp_path / "exports").iterdir()) == [
            ".dot",
            ".graph.json",
            ".json",
            ".svg",
        ]
        tree = app.screen.query_one(ContributorTree)
        await to_node(pilot, tree, next(c for c in tree.root.children if c.data.node.kind == "feature"))
        await pilot.press("a")
        await settle(app, pilot)
        circuits = app.main_screen.session.circuits
        assert len(circuits.edits(GAME.squares)) == 1 and "→" in shows(app, tree)
        await palette(pilot, "clear int")
        await settle(app, pilot)
        assert circuits.edits(GAME.squares) == () and "→" not in shows(app, tree)

    run(app, scenario)


def test_help_lists_the_tree_and_attention_keys(engine):
    app = app_on(engine, GAME)

    async def scenario(pilot):
        await pilot.press("t")
        await settle(app, pilot)
        await pilot.press("question_mark")
        console = Console(width=100, record=True, file=io.StringIO())
        console.print(app.screen.query_one("#help-keys").content)
        rows = console.export_text()
        for binding in (*ContributorTree.BINDINGS, *TreeScreen.BINDINGS, *AttentionScreen.BINDINGS):
            assert binding.tooltip in rows
            for key in binding.key.split(","):
                assert app.get_key_display(type(binding)(key, "")) in rows

    run(app, scenario)


def test_the_prompts_refuse_bad_input_with_a_reason(tmp_path):
    assert parse_factor(" 0.5 ") == 0.5 and parse_factor("-2") == -2.0
    for text, reason in (("two", "not a number"), ("inf", "within"), ("nan", "within"), ("1e40", "within")):
        with pytest.raises(ValueError, match=reason):
            parse_factor(text)
    assert parse_threshold("") == 0.0 and parse_threshold("0.05") == 0.05
    with pytest.raises(ValueError, match="0 or more"):
        parse_threshold("-1")
    assert parse_folder("") == Path("exports") and parse_folder(str(tmp_path / "new")) == tmp_path / "new"
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        parse_folder(str(tmp_path / "file"))


def test_a_threshold_keeps_the_expanded_nodes_and_a_on_a_bias_node_says_why(engine):
    app = app_on(engine, GAME)

    async def scenario(pilot):
        await to_feature(pilot, "L1M")
        await pilot.press("t")
        await settle(app, pilot)
        tree = app.screen.query_one(ContributorTree)
        child = max(
            (c for c in tree.root.children if c.data.node is not None and c.data.node.kind == "feature"),
            key=lambda c: abs(c.data.branch.contribution),
        )
        await to_node(pilot, tree, child)
        await pilot.press("space")
        await settle(app, pilot)
        opened = tree.open_paths()
        assert opened
        threshold = abs(child.data.branch.contribution) / 2  # the expanded node stays above it
        await pilot.press("f", *f"{threshold:.6f}", "enter")
        await settle(app, pilot)
        assert app.screen.threshold == pytest.approx(threshold, rel=1e-5)
        assert tree.open_paths() == opened
        await pilot.press("f", "0", "enter")  # 0: no threshold
        await settle(app, pilot)
        assert app.screen.threshold is None and tree.open_paths() == opened
        other = next(
            c for c in tree.root.children if c.data.node is not None and c.data.node.kind != "feature"
        )
        await to_node(pilot, tree, other)
        await pilot.press("a")
        message = shows(app, app.screen.query_one("#tree-message"))
        assert (
            f"{other.data.node.id} is not a feature" in message and app.main_screen.current_view.edits == ()
        )

    run(app, scenario)


def test_the_features_panel_shows_activations_before_and_after_the_interventions(engine, trace):
    app = app_on(engine, GAME)

    async def scenario(pilot):
        panel = app.main_screen.feature_list
        await to_feature(pilot, "L1A", rank=1)
        ablated = panel.current.feature
        await pilot.press("a")
        await settle(app, pilot)
        edit = Edit(11, "L1A", ablated.index, value=0.0)
        assert panel.current.feature.index == ablated.index  # the ablated feature keeps its row
        line = panel.render_line(panel.cursor - panel.scroll_offset.y).text
        assert f"{ablated.activation:.2f}→0.00" in line
        features = {f.feature_id: f for m in app.main_screen.current_view.features for f in m.features()}
        downstream = [
            f for f in features.values() if f.module in ("L1M", "L2A", "L2M") and f.before is not None
        ]
        assert downstream, "the ablation moves features above it"
        watch = [f"P11{f.feature_id}" for f in downstream]
        expected = intervene(trace, [edit], watch).features
        for feature, node in zip(downstream, watch, strict=True):
            assert (feature.before, feature.activation) == pytest.approx(expected[node], abs=1e-5)
        await pilot.press("c")
        await settle(app, pilot)
        features = [f for m in app.main_screen.current_view.features for f in m.features()]
        assert all(f.before is None for f in features)

    run(app, scenario)
