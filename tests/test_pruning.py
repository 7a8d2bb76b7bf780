"""circuit-tracer's influence and pruning (``circuits/pruning.py``) against an independent dense
transcription of ``circuit_tracer/graph.py`` (normalize_matrix, compute_influence as
``(I − A)⁻¹ − I``, find_threshold, prune_graph), on a hand-made graph."""

from __future__ import annotations

import numpy as np
import pytest

from othello_tui.circuits.pruning import (
    FEATURE,
    INPUT,
    OTHER,
    ROOT,
    Edges,
    GraphSettings,
    cumulative_shares,
    find_threshold,
    influence,
    normalised,
    prune,
    root_weights,
)

# circuit-tracer's node order: features, errors, tokens, logits
NAMES = ["f1", "f2", "f3", "f4", "e1", "e2", "t1", "t2", "L"]
CATEGORIES = np.array([FEATURE] * 4 + [OTHER] * 2 + [INPUT] * 2 + [ROOT])
LINKS = [  # (target, source, direct effect)
    ("L", "f1", 3.0), ("L", "f2", -1.0), ("L", "e1", 0.5), ("L", "t1", 0.2), ("L", "f4", 0.05),
    ("f1", "f3", 2.0), ("f1", "t1", 1.0), ("f1", "e2", 0.1),
    ("f2", "f3", 0.5), ("f2", "t2", -0.5),
    ("f3", "t1", 1.0), ("f3", "t2", 1.0),
    ("f4", "t2", 1.0),
]  # fmt: skip
INDEX = {name: n for n, name in enumerate(NAMES)}
ROOT_INDEX = INDEX["L"]


def edges() -> Edges:
    return Edges(
        np.array([INDEX[t] for t, _, _ in LINKS]),
        np.array([INDEX[s] for _, s, _ in LINKS]),
        np.array([w for _, _, w in LINKS]),
    )


def adjacency() -> np.ndarray:
    matrix = np.zeros((len(NAMES), len(NAMES)))  # rows: targets
    for target, source, weight in LINKS:
        matrix[INDEX[target], INDEX[source]] = weight
    return matrix


# -- circuit-tracer, transcribed to dense numpy ----------------------------------------------------


def ct_normalize(matrix: np.ndarray) -> np.ndarray:
    absolute = np.abs(matrix)
    return absolute / np.maximum(absolute.sum(1, keepdims=True), 1e-10)


def ct_influence(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    identity = np.eye(len(a))
    return w @ (np.linalg.inv(identity - a) - identity)


def ct_find_threshold(scores: np.ndarray, threshold: float) -> float:
    ordered = np.sort(scores.ravel())[::-1]
    cumulative = np.cumsum(ordered) / ordered.sum()
    return ordered[min(int(np.searchsorted(cumulative, threshold)), len(cumulative) - 1)]


def ct_prune(matrix, n_features, n_tokens, n_logits, w, node_threshold, edge_threshold):
    node_influence = ct_influence(ct_normalize(matrix), w)
    node_mask = node_influence >= ct_find_threshold(node_influence, node_threshold)
    node_mask[-n_logits - n_tokens :] = True
    pruned = matrix.copy()
    pruned[~node_mask] = 0
    pruned[:, ~node_mask] = 0
    a = ct_normalize(pruned)
    edge_scores = a * (ct_influence(a, w) + w)[:, None]
    edge_mask = edge_scores >= ct_find_threshold(edge_scores, edge_threshold)
    old = node_mask.copy()
    node_mask[: -n_logits - n_tokens] &= edge_mask[:, : -n_logits - n_tokens].any(0)
    node_mask[:n_features] &= edge_mask[:n_features].any(1)
    while not (node_mask == old).all():
        old[:] = node_mask
        edge_mask[~node_mask] = False
        edge_mask[:, ~node_mask] = False
        node_mask[: -n_logits - n_tokens] &= edge_mask[:, : -n_logits - n_tokens].any(0)
        node_mask[:n_features] &= edge_mask[:n_features].any(1)
    order = np.argsort(-node_influence, kind="stable")
    shares = np.zeros(len(node_influence))
    shares[order] = np.cumsum(node_influence[order]) / node_influence.sum()
    return node_mask, edge_mask, shares


# -- tests -------------------------------------------------------------------------------------


def test_influence_is_circuit_tracers_formula():
    n = len(NAMES)
    ours = influence(n, edges(), normalised(n, edges()), root_weights(n, ROOT_INDEX))
    expected = ct_influence(ct_normalize(adjacency()), root_weights(n, ROOT_INDEX))
    assert ours == pytest.approx(expected, abs=1e-12)
    # by hand: L's row sums to 4.75; f3 reaches L through f1 (2/3.1 of it) and f2 (0.5/1 of it)
    assert ours[INDEX["f1"]] == pytest.approx(3 / 4.75)
    assert ours[INDEX["f3"]] == pytest.approx(3 / 4.75 * 2 / 3.1 + 1 / 4.75 * 0.5)
    assert ours[ROOT_INDEX] == 0
    order = np.argsort(-expected, kind="stable")
    shares = np.empty(n)
    shares[order] = np.cumsum(expected[order]) / expected.sum()
    assert cumulative_shares(ours) == pytest.approx(shares)


@pytest.mark.parametrize(
    "node_threshold, edge_threshold",
    [(0.8, 0.98), (0.5, 0.9), (1.0, 1.0), (0.9, 0.7), (0.3, 0.5), (0.0, 0.0)],
)
def test_pruning_keeps_exactly_the_nodes_and_edges_circuit_tracer_keeps(node_threshold, edge_threshold):
    matrix, w = adjacency(), root_weights(len(NAMES), ROOT_INDEX)
    node_mask, edge_mask, shares = ct_prune(matrix, 4, 2, 1, w, node_threshold, edge_threshold)
    pruned = prune(CATEGORIES, edges(), ROOT_INDEX, node_threshold, edge_threshold)
    kept = {(NAMES[t], NAMES[s]) for t, s in zip(*np.nonzero(edge_mask & (matrix != 0)), strict=True)}
    kept = {(t, s) for t, s in kept if node_mask[INDEX[t]] and node_mask[INDEX[s]]}  # what it writes
    ours = {(LINKS[e][0], LINKS[e][1]) for e in np.flatnonzero(pruned.edge_mask_E)}
    assert ours == kept
    assert pruned.node_mask_N.tolist() == node_mask.tolist()
    assert pruned.shares_N == pytest.approx(shares)


def test_the_default_thresholds_keep_the_main_path():
    pruned = prune(CATEGORIES, edges(), ROOT_INDEX, 0.8, 0.98)
    kept = sorted((LINKS[e][0], LINKS[e][1]) for e in np.flatnonzero(pruned.edge_mask_E))
    assert kept == [("L", "f1"), ("L", "t1"), ("f1", "f3"), ("f1", "t1"), ("f3", "t1"), ("f3", "t2")]
    dropped = [NAMES[n] for n in np.flatnonzero(~pruned.node_mask_N)]
    assert dropped == ["f2", "f4", "e1", "e2"]  # the tokens and the root stay, as in circuit-tracer


def test_find_threshold_keeps_the_largest_up_to_the_share():
    scores = np.array([1.0, 4.0, 3.0, 2.0])  # shares 0.4, 0.7, 0.9, 1.0 in order
    assert [find_threshold(scores, t) for t in (0.3, 0.4, 0.5, 0.95, 1.0)] == [4.0, 4.0, 3.0, 1.0, 1.0]
    assert find_threshold(np.zeros(3), 0.8) == 0.0


def test_settings_refuse_shares_outside_0_1():
    with pytest.raises(ValueError, match="node_threshold"):
        GraphSettings(node_threshold=1.2)
    with pytest.raises(ValueError, match="edge_threshold"):
        GraphSettings(edge_threshold=-0.1)
    with pytest.raises(ValueError, match="max_features"):
        GraphSettings(max_features=-1)
