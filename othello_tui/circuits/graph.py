"""The attribution graph of a target: the exact direct contributions among the nodes that matter
to it, each node once (a node reached by two paths is one node with both out-links), where a tree
repeats it. Built on the same attributions as the trees (:meth:`GameTrace.contributions`).

Which features are expanded (the frontier rule, circuit-tracer's ``attribute``): the root is
expanded first, into every one of its contributors. Then, ``RERANK_EVERY`` at a time, the
unexpanded active features with the largest influence on the root *in the graph built so far*
are expanded, until ``max_features`` have been or no unexpanded feature has any influence.
Influence is circuit-tracer's (``circuits/pruning.py``): ``w·(A + A² + …)`` with A the
|contributions| of each expanded node divided by the sum of all of them. A feature reached by
several paths adds up its influence along each, so a feature that feeds many expanded nodes a
little can come before one that feeds one node a lot. Each feature is expanded once.

What the graph keeps, so that every expanded node stays an exact sum: the root; every expanded
feature; every other contributor of an expanded node (embeddings, errors, decoder biases,
parameter terms, whole outputs of modules without a dictionary) as a node; and, for each expanded
node that has contributors among the features *not* expanded, one remainder node
``{node id}.rest`` carrying their summed contribution. So the links into an expanded node are all
of its contributions, ``Σ links = Σ contributions = its value`` (to float rounding), and every link
weight is an exact direct contribution (the remainder's is an exact sum of them).

Shape legend: N decomposition rows (every node of the game), K contributors of one target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from othello_tui.circuits.attribution import Attribution
from othello_tui.circuits.decomposition import FEATURE as FEATURE_KIND
from othello_tui.circuits.nodes import CircuitError, Node, Target
from othello_tui.circuits.pruning import (
    FEATURE,
    INPUT,
    MAX_FEATURES,
    OTHER,
    ROOT,
    Edges,
    influence,
    root_weights,
)
from othello_tui.circuits.trace import GameTrace
from othello_tui.dictionary.sae import is_residual

RERANK_EVERY = 16  # features expanded between two influence rankings


@dataclass
class AttributionGraph:
    """Node 0 is the root (kind ``"target"``); ``expanded`` maps an expanded node's index to its
    value (the target in the forward pass); ``edges`` index ``nodes``."""

    target: Target
    nodes: list[Node]
    category_N: np.ndarray  # int: pruning.ROOT / INPUT / FEATURE / OTHER
    edges: Edges
    expanded: dict[int, float]
    n_unexpanded: dict[int, int] = field(default_factory=dict)  # remainder node -> features it sums


@dataclass
class _Row:
    """One expanded node's contributions: decomposition rows (features, then the others) and
    parameter nodes."""

    node: Node
    value: float
    feature_rows_K: np.ndarray
    feature_values_K: np.ndarray  # float64
    other_rows_K: np.ndarray
    other_values_K: np.ndarray
    params: list[tuple[Node, float]]
    feature_a_K: np.ndarray  # |feature contributions| / Σ|all contributions| (circuit-tracer's A)


def _row(trace: GameTrace, node: Node, target: Target, is_feature_N: np.ndarray) -> _Row:
    attribution: Attribution = trace.contributions(target)
    if attribution.rows_N is None:
        raise CircuitError(
            f"{target.spec}: a graph starts from a logit, a feature or a probe (a score's "
            "contributors are (query, key) pairs, not single nodes)"
        )
    values_K = attribution.values_N.double().cpu().numpy()
    rows_K = attribution.rows_N.numpy()
    node_values_K = values_K[: len(rows_K)]
    features_K = is_feature_N[rows_K]
    params = [(attribution.node_at(n), float(values_K[n])) for n in range(len(rows_K), len(values_K))]
    feature_values_K = node_values_K[features_K]
    a_K = np.abs(feature_values_K) / max(float(np.abs(values_K).sum()), 1e-10)
    return _Row(
        node,
        attribution.value,
        rows_K[features_K],
        feature_values_K,
        rows_K[~features_K],
        node_values_K[~features_K],
        params,
        a_K,
    )


def _ranking(rows: list[_Row], expanded_N: np.ndarray, count: int) -> np.ndarray:
    """Decomposition rows of the ``count`` unexpanded features of largest influence (> 0), most
    influential first. ``expanded_N``: the index in ``rows`` of each decomposition row's
    expansion (−1: none)."""
    lengths = [len(row.feature_rows_K) for row in rows]
    owner_K = np.repeat(np.arange(len(rows)), lengths)
    columns_K = np.concatenate([row.feature_rows_K for row in rows])
    a_K = np.concatenate([row.feature_a_K for row in rows])
    # influence among the expanded nodes first (a graph of len(rows) nodes), then on every column
    inner_K = expanded_N[columns_K] >= 0
    inner = Edges(owner_K[inner_K], expanded_N[columns_K[inner_K]], a_K[inner_K])
    weights_R = root_weights(len(rows), 0)
    reach_R = weights_R + influence(len(rows), inner, a_K[inner_K], weights_R)
    influence_N = np.bincount(columns_K, reach_R[owner_K] * a_K, minlength=len(expanded_N))
    candidates = np.flatnonzero((influence_N > 0) & (expanded_N < 0))
    if len(candidates) > count:  # a partial sort: the candidates can be tens of thousands
        candidates = candidates[np.argpartition(-influence_N[candidates], count - 1)[:count]]
    return candidates[np.argsort(-influence_N[candidates], kind="stable")]


def build_graph(trace: GameTrace, target: Target, max_features: int = MAX_FEATURES) -> AttributionGraph:
    """The graph of ``target`` with up to ``max_features`` expanded features (module docstring).
    Identity, per expanded node: ``Σ weights of the links into it == its value``."""
    if target.kind == "feature" and not is_residual(target.feature_key[0]):
        trace.feature_node(target.position, *target.feature_key)  # inactive: a clear error
    decomposition = trace.decomposition
    is_feature_N = (decomposition.kind_N == FEATURE_KIND).numpy()
    root = Node(target.id, target.position, "target", target.module, target.feature)
    rows = [_row(trace, root, target, is_feature_N)]
    expanded_N = np.full(len(is_feature_N), -1)
    while len(rows) <= max_features:
        pending = _ranking(rows, expanded_N, min(RERANK_EVERY, max_features + 1 - len(rows)))
        if len(pending) == 0:
            break
        for decomposition_row in pending.tolist():
            node = decomposition.node(decomposition_row)
            child = node.as_target()
            assert child is not None  # the ranking holds features only
            expanded_N[decomposition_row] = len(rows)
            rows.append(_row(trace, node, child, is_feature_N))
    return _assemble(target, rows, expanded_N, decomposition.node)


def _assemble(
    target: Target, rows: list[_Row], expanded_N: np.ndarray, node_of: Callable[[int], Node]
) -> AttributionGraph:
    """Nodes and links of the expanded rows (module docstring): expanded features keep their
    index in ``rows``, the other nodes are numbered as they are first met."""
    nodes = [row.node for row in rows]
    category = [ROOT] + [FEATURE] * (len(rows) - 1)
    index_N = expanded_N.copy()  # decomposition row -> node index (−1: not a node)
    named: dict[str, int] = {}  # parameter and remainder nodes, by id
    targets, sources, weights = [], [], []
    n_unexpanded: dict[int, int] = {}

    def add(node: Node) -> int:
        nodes.append(node)
        category.append(INPUT if node.kind in ("embed", "pos") else OTHER)
        return len(nodes) - 1

    def named_node(node: Node) -> int:
        if node.id not in named:
            named[node.id] = add(node)
        return named[node.id]

    def link(t: int, sources_K: np.ndarray, weights_K: np.ndarray) -> None:
        targets.append(np.full(len(sources_K), t))
        sources.append(sources_K)
        weights.append(weights_K)

    for t, row in enumerate(rows):
        inside_K = index_N[row.feature_rows_K] >= 0
        link(t, index_N[row.feature_rows_K[inside_K]], row.feature_values_K[inside_K])
        for new in np.unique(row.other_rows_K[index_N[row.other_rows_K] < 0]).tolist():
            index_N[new] = add(node_of(new))
        link(t, index_N[row.other_rows_K], row.other_values_K)
        for node, value in row.params:
            link(t, np.array([named_node(node)]), np.array([value]))
        outside_K = ~inside_K
        if outside_K.any():
            rest = named_node(Node(f"{row.node.id}.rest", row.node.position, "rest", row.node.module))
            link(t, np.array([rest]), np.array([row.feature_values_K[outside_K].sum()]))
            n_unexpanded[rest] = int(outside_K.sum())
    edges = Edges(
        np.concatenate(targets).astype(np.int64),
        np.concatenate(sources).astype(np.int64),
        np.concatenate(weights).astype(np.float64),
    )
    values = {t: row.value for t, row in enumerate(rows)}
    return AttributionGraph(target, nodes, np.array(category), edges, values, n_unexpanded)
