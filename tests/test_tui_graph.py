"""The graph screen (``G`` in the tree): the tree merged into an attribution graph, nodes ranked
by influence and pruned at a node threshold, each node's links in and out."""

from __future__ import annotations

import pytest
from test_tui_app import run, settle
from test_tui_tree import GAME, to_feature, to_node

from othello_tui.tui.app import make_app
from othello_tui.tui.engine import ModelEngine
from othello_tui.tui.graph_view import feature_of, links_of, ranked_nodes
from othello_tui.tui.screens.feature import FeatureScreen
from othello_tui.tui.screens.graph import GraphScreen
from othello_tui.tui.screens.tree import TreeScreen
from othello_tui.tui.session import Session

GRAPH = {
    "nodes": [
        {"node_id": "P3L1M7", "influence": 0.9},
        {"node_id": "P3logit:e-1", "influence": 0.4},
        {"node_id": "P2L0A5", "influence": 1.0},
        {"node_id": "P3embed", "influence": 0.75},
    ],
    "links": [
        {"source": "P3L1M7", "target": "P3logit:e-1", "weight": 0.5},
        {"source": "P3embed", "target": "P3logit:e-1", "weight": -2.0},
        {"source": "P2L0A5", "target": "P3L1M7", "weight": 0.1},
        {"source": "P3embed", "target": "P3L1M7", "weight": 0.3},
    ],
}


def test_nodes_rank_by_influence_and_prune_at_the_threshold():
    assert [n["node_id"] for n in ranked_nodes(GRAPH)] == ["P3logit:e-1", "P3embed", "P3L1M7", "P2L0A5"]
    assert [n["node_id"] for n in ranked_nodes(GRAPH, 0.8)] == ["P3logit:e-1", "P3embed"]
    assert [n["node_id"] for n in ranked_nodes(GRAPH, 0.1)] == ["P3logit:e-1"]  # the root stays


def test_links_in_and_out_largest_first_and_only_between_kept_nodes():
    incoming, outgoing = links_of(GRAPH, "P3L1M7")
    assert [(x.other, x.weight) for x in incoming] == [("P3embed", 0.3), ("P2L0A5", 0.1)]
    assert [(x.other, x.weight) for x in outgoing] == [("P3logit:e-1", 0.5)]
    incoming, _ = links_of(GRAPH, "P3logit:e-1", {"P3logit:e-1", "P3embed"})
    assert [(x.other, x.weight) for x in incoming] == [("P3embed", -2.0)]
    assert feature_of({"node_id": "P3L1M7"}) == "L1M7" and feature_of({"node_id": "P3embed"}) is None


@pytest.fixture(scope="module")
def engine(tiny_model, tiny_dictionaries):
    return ModelEngine(tiny_model, tiny_dictionaries)


def test_g_merges_the_tree_into_a_graph_whose_links_are_the_trees_contributions(engine):
    app = make_app(Session(lambda: engine), GAME)

    async def scenario(pilot):
        await to_feature(pilot, "L1M")
        await pilot.press("t")
        await settle(app, pilot)
        tree = app.screen
        assert isinstance(tree, TreeScreen)
        child = next(
            c for c in tree.contributors.root.children if c.data.node and c.data.node.kind == "feature"
        )
        await to_node(pilot, tree.contributors, child)
        await pilot.press("space")
        await settle(app, pilot)
        await pilot.press("G")
        for _ in range(200):
            await app.workers.wait_for_complete()
            await pilot.pause()
            if isinstance(app.screen, GraphScreen):
                break
        graph_screen = app.screen
        assert isinstance(graph_screen, GraphScreen)
        expansion = tree.contributors.expansion
        root = expansion.target.id
        assert graph_screen.shown[0]["node_id"] == root
        await pilot.press("f", "1", "enter")  # every node
        ids = [n["node_id"] for n in graph_screen.shown]
        assert len(ids) == len(set(ids)) == len(graph_screen.graph["nodes"])
        incoming, _ = links_of(graph_screen.graph, root)
        got = {x.other: x.weight for x in incoming}
        assert got == pytest.approx({b.node.id: b.contribution for b in expansion.branches})
        links = str(graph_screen.query_one("#graph-links").render())
        assert root in links and f"in: its contributors ({len(expansion.branches)})" in links
        row = next(
            n for n, node in enumerate(graph_screen.shown) if feature_of(node) == child.data.node.feature_id
        )
        await pilot.press(*["down"] * row, "enter")
        await pilot.pause()
        assert isinstance(app.screen, FeatureScreen) and app.screen.feature_id == child.data.node.feature_id

    run(app, scenario)
