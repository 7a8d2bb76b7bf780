"""The graph screen (``G`` in the tree): the target's attribution graph built by the backend in a
worker, its nodes ranked by influence with their links in and out, the node and link thresholds
and the budget as keys, links to follow, feature pages to open and the JSON to export."""

from __future__ import annotations

import json

import pytest
from test_tui_app import run, settle
from test_tui_tree import GAME, to_feature

from othello_tui.circuits.graph import build_graph
from othello_tui.circuits.graph_json import trace_attribution_graph
from othello_tui.circuits.nodes import parse_target
from othello_tui.circuits.provenance import Provenance
from othello_tui.circuits.pruning import GraphSettings
from othello_tui.tui.app import make_app
from othello_tui.tui.engine import ModelEngine
from othello_tui.tui.graph_view import GraphView, Link, feature_of
from othello_tui.tui.screens.feature import FeatureScreen
from othello_tui.tui.screens.graph import GraphScreen
from othello_tui.tui.screens.prompt import PromptScreen, parse_count
from othello_tui.tui.screens.tree import TreeScreen
from othello_tui.tui.session import Session

GRAPH = {
    "nodes": [
        {"node_id": "P3L1M7", "influence": 0.9, "clerp": "L1M7: a label"},
        {"node_id": "P3logit:e-1", "influence": None, "clerp": 'Output "e-1" (p=0.500)'},
        {"node_id": "P2L0A5", "influence": 1.0, "clerp": "L0A5"},
        {"node_id": "P3embed", "influence": 0.75, "clerp": "embed"},
    ],
    "links": [
        {"source": "P3L1M7", "target": "P3logit:e-1", "weight": 0.5},
        {"source": "P3embed", "target": "P3logit:e-1", "weight": -2.0},
        {"source": "P2L0A5", "target": "P3L1M7", "weight": 0.1},
        {"source": "P3embed", "target": "P3L1M7", "weight": 0.3},
    ],
}


def test_nodes_rank_by_influence_with_their_links_largest_first():
    view = GraphView(GRAPH)
    assert [n["node_id"] for n in view.nodes] == ["P3logit:e-1", "P3embed", "P3L1M7", "P2L0A5"]
    assert view.row_of["P3L1M7"] == 2 and view.clerp("P3L1M7") == "L1M7: a label"
    incoming, outgoing = view.links("P3L1M7")
    assert [(x.other, x.weight) for x in incoming] == [("P3embed", 0.3), ("P2L0A5", 0.1)]
    assert [(x.other, x.weight) for x in outgoing] == [("P3logit:e-1", 0.5)]
    assert view.links("P2L0A5") == ([], [Link("P3L1M7", 0.1)])
    assert feature_of({"node_id": "P3L1M7"}) == "L1M7" and feature_of({"node_id": "P3embed"}) is None


def test_the_budget_prompt_takes_a_whole_number_within_its_range():
    assert parse_count(" 50 ") == 50 and parse_count("0") == 0
    for text, reason in (("x", "not a whole number"), ("2.5", "not a whole number"), ("1001", "0 to 1,000")):
        with pytest.raises(ValueError, match=reason):
            parse_count(text, 1000)


@pytest.fixture(scope="module")
def engine(tiny_model, tiny_dictionaries):
    return ModelEngine(tiny_model, tiny_dictionaries)


async def loaded(app, pilot) -> GraphScreen:
    """The graph screen once its worker has delivered."""
    for _ in range(200):
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        if isinstance(screen, GraphScreen) and screen.view is not None and not app.workers:
            return screen
    raise AssertionError("no graph arrived")


def test_g_opens_the_targets_graph_with_threshold_keys_links_to_follow_and_an_export(
    engine, tiny_model, tmp_path, monkeypatch
):
    session = Session(lambda: engine)
    app = make_app(session, GAME)
    monkeypatch.chdir(tmp_path)

    async def scenario(pilot):
        await to_feature(pilot, "L1M")
        await pilot.press("t")
        await settle(app, pilot)
        tree = app.screen
        assert isinstance(tree, TreeScreen)
        await pilot.press("G")
        screen = await loaded(app, pilot)
        target = tree.target
        # what the backend sent is the graph of the target, built and pruned with the defaults
        trace = session.circuits.trace(GAME.squares, target.position + 1)
        settings = GraphSettings()
        provenance = Provenance.of_graph(GAME.text, target.position, target.spec, settings, *engine.identity)
        expected = trace_attribution_graph(
            trace, build_graph(trace, target), provenance, settings, session.labels
        )
        got = screen.view.graph
        assert [n["node_id"] for n in got["nodes"]] == [n["node_id"] for n in expected["nodes"]]
        assert got["links"] == expected["links"]
        table = screen.query_one("#graph-nodes")
        assert table.row_count == len(got["nodes"]) and screen.view.nodes[0]["node_id"] == target.id
        links = screen.query_one("#graph-links")
        incoming, outgoing = screen.view.links(target.id)
        assert links.row_count == len(incoming) + len(outgoing) > 0

        await pilot.press("f")  # the node threshold: keep every node
        assert isinstance(app.screen, PromptScreen)
        await pilot.press("1", "enter")
        screen = await loaded(app, pilot)
        assert screen.settings.node_threshold == 1.0
        assert screen.view.graph["metadata"]["pruning_settings"]["node_threshold"] == 1.0
        assert len(screen.view.graph["nodes"]) >= len(expected["nodes"])
        await pilot.press("l", *"0.5", "enter")  # the link threshold
        screen = await loaded(app, pilot)
        assert screen.view.graph["metadata"]["pruning_settings"] == {
            "node_threshold": 1.0,
            "edge_threshold": 0.5,
        }
        assert len(screen.view.graph["links"]) < len(got["links"])
        await pilot.press("l", "1", "enter", "b", "5", "enter")  # five features expanded
        screen = await loaded(app, pilot)
        assert screen.view.graph["metadata"]["generation_settings"]["expanded_features"] == 5

        row = next(n for n, node in enumerate(screen.view.nodes) if feature_of(node) is not None)
        await pilot.press(*["down"] * row)
        node = screen.view.nodes[row]
        incoming, outgoing = screen.view.links(node["node_id"])
        assert node["node_id"] in str(screen.query_one("#graph-node").render())
        assert links.row_count == len(incoming) + len(outgoing)
        await pilot.press("tab", "enter")  # follow its largest link in
        nodes_table = screen.query_one("#graph-nodes")
        assert nodes_table.has_focus and nodes_table.cursor_row == screen.view.row_of[incoming[0].other]
        await pilot.press("up", *["down"] * (row - nodes_table.cursor_row + 1))  # back on the feature
        assert nodes_table.cursor_row == row

        await pilot.press("e")
        await pilot.press(*"out", "enter")
        for _ in range(100):
            await app.workers.wait_for_complete()
            await pilot.pause()
            if list((tmp_path / "out").glob("*.json")):
                break
        [written] = (tmp_path / "out").glob("*.json")
        assert written.name == screen.view.graph["metadata"]["slug"] + ".json" and written.name.startswith(
            "graph-"
        )
        assert json.loads(written.read_text()) == screen.view.graph

        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, FeatureScreen) and app.screen.feature_id == feature_of(node)

    run(app, scenario)


def test_a_score_tree_says_why_it_has_no_graph(engine):
    session = Session(lambda: engine)
    app = make_app(session, GAME)

    async def scenario(pilot):
        await app.push_screen(TreeScreen(session, GAME, parse_target("score:L1H0:3", 9), "score", print))
        await settle(app, pilot)
        await pilot.press("G")
        for _ in range(100):
            await app.workers.wait_for_complete()
            await pilot.pause()
            if isinstance(app.screen, GraphScreen) and not app.workers:
                break
        assert "a graph starts from a logit, a feature or a probe" in str(
            app.screen.query_one("#graph-message").render()
        )

    run(app, scenario)


def test_keys_on_a_tree_screen_that_never_got_its_widgets_do_nothing(engine):
    """A tree pushed while the app quits has no contributor tree: its keys are off, not a traceback."""
    screen = TreeScreen(Session(lambda: engine), GAME, parse_target("logit:e-1", 9), "logit", print)
    assert not screen.check_action("ablate", ())
    screen.contributors = object()  # what on_mount sets once the widgets exist
    assert screen.check_action("ablate", ())
