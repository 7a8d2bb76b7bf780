"""circuit-tracer's influence and pruning on an attribution graph given as edge lists, and the
settings a graph is built and pruned with. numpy only (the app reads it without torch).

Read from ``circuit_tracer/graph.py`` (safety-research/circuit-tracer): ``normalize_matrix``,
``compute_influence``, ``compute_edge_influence``, ``find_threshold``, ``prune_graph``. With A
the direct effects (rows: targets) in absolute value, each row divided by its sum, and w the
root's weight (1: with one root the shares do not depend on it):

- a node's influence is ``w·(A + A² + …)`` (the root's own is 0);
- nodes are kept, most influential first, until their cumulative share of the total influence
  reaches ``node_threshold``; the root and the inputs (embeddings) are always kept;
- an edge's score is ``A'[t, s]·(w + w·(A' + A'² + …))[t]`` on the graph A' left by the node
  pruning (renormalised), and edges are kept likewise up to ``edge_threshold``;
- then, until nothing changes, a feature without a kept edge in or out, and any other node (an
  error, a bias, a remainder) without a kept edge out, is dropped with its edges.

Node categories: ``ROOT`` (circuit-tracer's logits), ``INPUT`` (its tokens: our ``embed`` and
``pos``), ``FEATURE`` (its features: every feature node here is expanded, so has edges in) and
``OTHER`` (its error nodes: leaves).

Shape legend: N nodes, E edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NODE_THRESHOLD = 0.8  # circuit-tracer's defaults (prune_graph, create_graph_files)
EDGE_THRESHOLD = 0.98
MAX_FEATURES = 200  # expanded feature nodes of a graph (see circuits/graph.py)
ROOT, INPUT, FEATURE, OTHER = range(4)


@dataclass(frozen=True)
class GraphSettings:
    """How a graph is built (``max_features`` expanded features) and pruned (the thresholds are
    cumulative shares in [0, 1])."""

    max_features: int = MAX_FEATURES
    node_threshold: float = NODE_THRESHOLD
    edge_threshold: float = EDGE_THRESHOLD

    def __post_init__(self) -> None:
        if self.max_features < 0:
            raise ValueError(f"max_features must be 0 or more, not {self.max_features}")
        for name in ("node_threshold", "edge_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {getattr(self, name)}")


@dataclass(frozen=True)
class Edges:
    """Direct effects: edge e carries ``weight_E[e]`` from node ``source_E[e]`` into node ``target_E[e]``."""

    target_E: np.ndarray  # int64
    source_E: np.ndarray  # int64
    weight_E: np.ndarray  # float64


@dataclass(frozen=True)
class Pruned:
    node_mask_N: np.ndarray  # bool: nodes kept
    edge_mask_E: np.ndarray  # bool: edges kept (both ends kept)
    shares_N: np.ndarray  # float64: cumulative influence share (circuit-tracer's ``influence``)


def normalised(n_nodes: int, edges: Edges) -> np.ndarray:
    """``|weight|`` over the sum of ``|weight|`` into the same target (``normalize_matrix``: the
    sum is clamped at 1e-10, so an all-zero row stays zero)."""
    abs_E = np.abs(edges.weight_E)
    totals_N = np.bincount(edges.target_E, abs_E, minlength=n_nodes)
    return abs_E / np.maximum(totals_N, 1e-10)[edges.target_E]


def influence(n_nodes: int, edges: Edges, a_E: np.ndarray, weights_N: np.ndarray) -> np.ndarray:
    """``w·(A + A² + …)`` with ``A[t, s] = a_E`` on the edges (``compute_influence``); the sum
    ends since the graph has no cycle (``ValueError`` if it had one)."""
    current_N: np.ndarray = weights_N.astype(np.float64)
    total_N = np.zeros(n_nodes)
    for _ in range(n_nodes + 1):
        current_N = np.bincount(edges.source_E, current_N[edges.target_E] * a_E, minlength=n_nodes)
        if not current_N.any():
            return total_N
        total_N += current_N
    raise ValueError("the graph has a cycle: influence does not converge")


def find_threshold(scores: np.ndarray, threshold: float) -> float:
    """The smallest score kept when the largest scores are kept until their cumulative share
    reaches ``threshold`` (``find_threshold``)."""
    sorted_scores = np.sort(scores)[::-1]
    total = sorted_scores.sum()
    if total <= 0:
        return 0.0
    cumulative = np.cumsum(sorted_scores) / total
    index = min(int(np.searchsorted(cumulative, threshold)), len(cumulative) - 1)
    return float(sorted_scores[index])


def cumulative_shares(influence_N: np.ndarray) -> np.ndarray:
    """Each node's cumulative share of the total influence, nodes taken most influential first
    (``prune_graph``'s ``cumulative_scores``, kept ≤ 1 against rounding; 1 for every node when
    there is no influence)."""
    order = np.argsort(-influence_N, kind="stable")
    cumulative = np.cumsum(influence_N[order])
    shares_N = np.ones(len(influence_N))
    if len(cumulative) and cumulative[-1] > 0:
        # over the last running sum, not a separate sum() that may round apart from it: the least
        # influential node's share, all the influence, is exactly 1
        shares_N[order] = np.minimum(cumulative / cumulative[-1], 1.0)
    return shares_N


def root_weights(n_nodes: int, root: int) -> np.ndarray:
    weights_N = np.zeros(n_nodes)
    weights_N[root] = 1.0
    return weights_N


def prune(
    category_N: np.ndarray, edges: Edges, root: int, node_threshold: float, edge_threshold: float
) -> Pruned:
    """``prune_graph`` (see the module docstring) on nodes of the given categories."""
    n = len(category_N)
    weights_N = root_weights(n, root)
    node_influence_N = influence(n, edges, normalised(n, edges), weights_N)
    node_mask_N = node_influence_N >= find_threshold(node_influence_N, node_threshold)
    node_mask_N |= (category_N == ROOT) | (category_N == INPUT)
    kept_E = node_mask_N[edges.target_E] & node_mask_N[edges.source_E]
    pruned = Edges(edges.target_E, edges.source_E, np.where(kept_E, edges.weight_E, 0.0))
    a_E = normalised(n, pruned)
    scores_E = a_E * (influence(n, pruned, a_E, weights_N) + weights_N)[edges.target_E]
    # the dense matrix circuit-tracer thresholds always holds zeros (its diagonal, at least)
    edge_mask_E = scores_E >= find_threshold(np.append(scores_E, 0.0), edge_threshold)
    needs_out_N = (category_N == FEATURE) | (category_N == OTHER)
    needs_in_N = category_N == FEATURE
    while True:
        before_N = node_mask_N.copy()
        has_out_N = np.bincount(edges.source_E[edge_mask_E], minlength=n) > 0
        has_in_N = np.bincount(edges.target_E[edge_mask_E], minlength=n) > 0
        node_mask_N &= ~needs_out_N | has_out_N
        node_mask_N &= ~needs_in_N | has_in_N
        edge_mask_E &= node_mask_N[edges.target_E] & node_mask_N[edges.source_E]
        if (node_mask_N == before_N).all():
            return Pruned(node_mask_N, edge_mask_E, cumulative_shares(node_influence_N))
