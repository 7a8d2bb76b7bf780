"""The attribution graph (``circuits/graph.py``) on the tiny model, checked against the trace's own
attributions: each node once, every link an exact direct contribution, every expanded node the
exact sum of its links (its remainder of unexpanded features included), and circuit-tracer's
frontier (the most influential features first)."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest

from othello_tui.circuits.graph import build_graph
from othello_tui.circuits.nodes import CircuitError, Target, parse_target
from othello_tui.circuits.trace import GameTrace
from othello_tui.game.generator import generate_games
from othello_tui.game.squares import SQUARE_TO_TOKEN

SQUARES = [int(s) for s in generate_games(1, 5).squares[0][:16]]
BUDGET = 40


@pytest.fixture(scope="module")
def trace(tiny_model, tiny_dictionaries):
    return GameTrace(tiny_model, tiny_dictionaries, [int(SQUARE_TO_TOKEN[s]) for s in SQUARES])


def feature_root(trace) -> Target:
    feature, _ = trace.active_features(13, "L1M")[0]
    return parse_target(f"feature:L1M{feature}", 13)


@pytest.fixture(scope="module", params=["logit", "feature"])
def built(request, trace):
    target = parse_target("logit:c-4", 12) if request.param == "logit" else feature_root(trace)
    return build_graph(trace, target, BUDGET)


def target_of(graph, n: int) -> Target:
    return graph.target if n == 0 else graph.nodes[n].as_target()


def links_into(graph) -> dict[int, dict[str, float]]:
    into: dict[int, dict[str, float]] = defaultdict(dict)
    for t, s, w in zip(graph.edges.target_E, graph.edges.source_E, graph.edges.weight_E, strict=True):
        assert graph.nodes[s].id not in into[int(t)]  # one link per (source, target)
        into[int(t)][graph.nodes[s].id] = float(w)
    return into


def test_ids_are_unique_and_every_expanded_feature_is_a_node_once(built):
    ids = [node.id for node in built.nodes]
    assert len(ids) == len(set(ids))
    assert len(built.expanded) == BUDGET + 1  # the root and the budget's features
    assert all(built.nodes[n].kind == "feature" for n in built.expanded if n != 0)
    assert {n for n, node in enumerate(built.nodes) if node.kind == "feature"} == set(built.expanded) - {0}


def test_links_into_an_expanded_node_are_its_exact_contributions_and_sum_to_its_value(trace, built):
    nodes = {node.id for node in built.nodes}
    into = links_into(built)
    for n in built.expanded:
        target = target_of(built, n)
        every = {node.id: (node, value) for node, value in trace.contributions(target).top(None)}
        outside = [value for node, value in every.values() if node.id not in nodes]
        assert all(
            every[node_id][0].kind == "feature" for node_id, _ in every.items() if node_id not in nodes
        )
        links = dict(into[n])
        rest = links.pop(f"{built.nodes[n].id}.rest", None)
        assert links == {node_id: every[node_id][1] for node_id in every if node_id in nodes}  # exact weights
        assert (rest is None) == (not outside)
        if outside:
            assert rest == pytest.approx(math.fsum(outside), rel=1e-9, abs=1e-12)
        total = math.fsum(into[n].values())
        assert total == pytest.approx(trace.target_value(target), rel=1e-5, abs=1e-5)
        assert built.expanded[n] == pytest.approx(trace.target_value(target))
    assert all(n in built.expanded for n in into)  # only expanded nodes have links in


def test_a_node_reached_by_two_paths_is_one_node_with_all_its_out_links(trace, built):
    ids = {node.id: n for n, node in enumerate(built.nodes)}
    expected: dict[str, set[str]] = defaultdict(set)  # node -> the expanded nodes it contributes to
    for n in built.expanded:
        for node, _ in trace.contributions(target_of(built, n)).top(None):
            if node.id in ids:
                expected[node.id].add(built.nodes[n].id)
    outgoing: dict[str, set[str]] = defaultdict(set)
    for t, s in zip(built.edges.target_E, built.edges.source_E, strict=True):
        outgoing[built.nodes[s].id].add(built.nodes[t].id)
    assert {k: v for k, v in outgoing.items() if not k.endswith(".rest")} == expected
    shared = [node_id for node_id, parents in expected.items() if len(parents) > 1]
    assert any(built.nodes[ids[node_id]].kind == "feature" for node_id in shared)


def test_the_first_features_expanded_are_the_roots_largest_feature_contributors(trace):
    target = parse_target("logit:c-4", 12)
    features = [
        (node.id, value) for node, value in trace.contributions(target).top(None) if node.kind == "feature"
    ]
    largest = {node_id for node_id, _ in sorted(features, key=lambda item: -abs(item[1]))[:5]}
    graph = build_graph(trace, target, 5)
    assert {graph.nodes[n].id for n in graph.expanded if n != 0} == largest
    alone = build_graph(trace, target, 0)
    assert list(alone.expanded) == [0]
    rest = links_into(alone)[0][f"{target.id}.rest"]
    assert rest == pytest.approx(math.fsum(value for _, value in features), rel=1e-9)
    assert alone.n_unexpanded == {
        alone.nodes.index(next(n for n in alone.nodes if n.kind == "rest")): len(features)
    }


def test_a_score_or_an_inactive_feature_has_no_graph(trace):
    with pytest.raises(CircuitError, match="score"):
        build_graph(trace, parse_target("score:L1H0:3", 9))
    inactive = next(f for f in range(64) if trace.activation(13, "L1M", f) == 0)
    with pytest.raises(CircuitError, match="not active"):
        build_graph(trace, parse_target(f"feature:L1M{inactive}", 13))
