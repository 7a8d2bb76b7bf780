"""A contributor tree as an attribution graph in the JSON that Neuronpedia's graph viewer and
circuit-tracer read (``graph-schema.json`` in the Neuronpedia repository; formats.md).

Top level ``metadata``, ``qParams``, ``nodes``, ``links``. A node reached by two paths of the
tree is one node; each (contributor, parent) pair is one link whose ``weight`` is the exact
direct contribution. Field by field:

- ``node_id``/``jsNodeId``: our node id (``P7L1M379``, ``P2embed``, ``P12logit:e-1``), the form
  ``trace``/``intervene`` take; ``ctx_idx``: the position; ``layer``: ``"E"`` for the embeddings,
  the block of a module's nodes and of ``blocks.{l}…`` parameters, ``n_layers`` for the final
  LayerNorm, the unembedding and probes (the viewer draws logits above every other layer).
- ``feature``: the dictionary feature index, the vocabulary index of a logit, else null.
- ``feature_type``: the viewer's vocabulary where one fits — ``"lorsa"``/``"lorsa error"`` for
  attention-output dictionaries (drawn as attention features), ``"cross layer transcoder"``/
  ``"mlp reconstruction error"`` for MLP-output ones, ``"embedding"``, ``"logit"``, ``"bias"``
  (decoder biases and bias parameters) — and ours otherwise (``"positional embedding"``,
  ``"attention output"``/``"mlp output"`` for a module without a dictionary, ``"feature
  pre-activation"`` … for a non-logit root).
- ``clerp``: the feature's id and label; a logit's reads ``Output "e-1" (p=0.312)``, the form the
  viewer parses the probability from.
- ``activation``: the exact value — a feature's activation (= its pre-activation, being active),
  the root's value; null for vector nodes (embeddings, errors, biases).
- ``influence``: circuit-tracer's pruning score, the cumulative share of influence of the nodes
  at least as influential, with influence ``w·(I − A)⁻¹`` (A: |link weights| normalised per
  target, w: the root's weight; with one root the shares do not depend on it). Counting the
  identity term keeps the root first (circuit-tracer always keeps its logits), so no viewer
  filter drops it.
- ours, beside the schema's: ``others`` and ``sum`` on each expanded node (links in + ``others``
  = ``sum`` = all contributions, ≈ ``activation``), and ``metadata.provenance``.

Neuronpedia's viewer refuses a graph with no node above layer 0 (its ``maxLayer`` check), which
a tree rooted at an L0 feature or score is; any other tree opens there.

A score root carries its (query node, key node) pairs in Neuronpedia's ``qk_tracing_results``
form (pairs, and each side's exact marginal sums); every node they name, none of which has links,
is in the top-level ``qk_only_nodes``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

import numpy as np

from othello_tui import __version__
from othello_tui.circuits.export import LabelOf, node_label
from othello_tui.circuits.nodes import Node, Target
from othello_tui.circuits.provenance import Provenance
from othello_tui.circuits.tree import Expansion
from othello_tui.game.squares import square_name

GENERATOR = {"name": "othello-tui", "version": __version__}
QKMarginals = dict[str, list[tuple[Node, float]]]  # top_q/top_k_marginal_contributors
_BLOCK_RE = re.compile(r"(?:blocks\.|^L)(\d+)")
_ROOT_TYPES = {
    "feature": "feature pre-activation",
    "score": "attention score",
    "probe": "probe logit difference",
}


def _layer(node: Node, n_layers: int) -> str | int:
    if node.kind in ("embed", "pos"):
        return "E"
    match = _BLOCK_RE.search(node.module or node.id.removeprefix(f"P{node.position}"))
    return int(match[1]) if match else n_layers


def _feature_type(node: Node) -> str:
    attention = node.module is not None and node.module.endswith("A")
    return {
        "embed": "embedding",
        "pos": "positional embedding",
        "feature": "lorsa" if attention else "cross layer transcoder",
        "error": "lorsa error" if attention else "mlp reconstruction error",
        "output": "attention output" if attention else "mlp output",
    }.get(node.kind, "bias")


def _node_entry(node: Node, n_layers: int, activation: float | None, label_of: LabelOf | None) -> dict:
    label = node_label(node, label_of)
    clerp = node.feature_id if node.feature_id is not None else node.id.removeprefix(f"P{node.position}")
    return {
        "node_id": node.id,
        "jsNodeId": node.id,
        "feature": node.feature,
        "layer": _layer(node, n_layers),
        "ctx_idx": node.position,
        "feature_type": _feature_type(node),
        "clerp": clerp if label is None else f"{clerp}: {label}",
        "activation": activation,
    }


def _root_entry(expansion: Expansion, n_layers: int, probability: float | None) -> dict:
    target = expansion.target
    entry = {
        "node_id": target.id,
        "jsNodeId": target.id,
        "ctx_idx": target.position,
        "activation": expansion.value,
    }
    if target.kind == "logit":
        square = square_name(target.board_square)
        return {
            **entry,
            "feature": target.token,
            "layer": n_layers,
            "feature_type": "logit",
            "clerp": f'Output "{square}" (p={probability:.3f})',
            "token_prob": probability,
            "is_target_logit": True,
        }
    layer = {"feature": target.module and int(target.module[1:-1]), "score": target.layer}.get(target.kind)
    return {
        **entry,
        "feature": target.feature,
        "layer": n_layers if layer is None else layer,
        "feature_type": _ROOT_TYPES[target.kind],
        "clerp": target.spec,
    }


def _influence(ids: list[str], links: list[dict], root: str) -> list[float]:
    """circuit-tracer's cumulative influence share per node (see the module docstring)."""
    index = {node_id: n for n, node_id in enumerate(ids)}
    adjacency = np.zeros((len(ids), len(ids)))  # rows: targets
    for link in links:
        adjacency[index[link["target"]], index[link["source"]]] = abs(link["weight"])
    totals = adjacency.sum(1, keepdims=True)
    normalised = np.divide(adjacency, totals, out=np.zeros_like(adjacency), where=totals > 0)
    w = np.zeros(len(ids))
    w[index[root]] = 1.0
    influence = np.linalg.solve((np.eye(len(ids)) - normalised).T, w)  # w·(I − A)⁻¹
    order = np.argsort(-influence, kind="stable")
    shares = np.empty(len(ids))
    cumulative = np.cumsum(influence[order])
    # over the last running sum, not a separate sum() that may round apart from it: the least
    # influential node's share, all the influence, is exactly 1
    shares[order] = np.minimum(cumulative / cumulative[-1], 1.0)
    return shares.tolist()


def expansion_to_graph(
    expansion: Expansion,
    provenance: Provenance,
    n_layers: int,
    activations: Mapping[str, float],
    probability: float | None = None,
    qk: QKMarginals | None = None,
    label_of: LabelOf | None = None,
) -> dict:
    """The graph of a tree. ``activations``: node id -> activation of its feature nodes;
    ``probability``: a logit root's; ``qk``: a score root's marginal contributors (its
    ``qk_tracing_results`` take the pairs from the tree)."""
    target = expansion.target
    root = _root_entry(expansion, n_layers, probability)
    nodes: dict[str, dict] = {target.id: root}
    links: dict[tuple[str, str], dict] = {}
    pair_parts: dict[str, Node] = {}

    def walk(parent: dict, level: Expansion) -> None:
        parent["others"], parent["sum"] = level.rest, level.total
        for branch in level.branches:
            node = branch.node
            if node.parts is not None:
                pair_parts.update((part.id, part) for part in node.parts)
                continue
            if node.id not in nodes:
                nodes[node.id] = _node_entry(node, n_layers, activations.get(node.id), label_of)
            links.setdefault(
                (node.id, parent["node_id"]),
                {"source": node.id, "target": parent["node_id"], "weight": branch.contribution},
            )
            if branch.expansion is not None:
                walk(nodes[node.id], branch.expansion)

    walk(root, expansion)
    if qk is not None:
        pairs = [
            [b.node.pair_parts[0].id, b.node.pair_parts[1].id, b.contribution] for b in expansion.branches
        ]
        root["qk_tracing_results"] = {"pair_wise_contributors": pairs}
        for side, contributors in qk.items():
            pair_parts.update((node.id, node) for node, _ in contributors)
            root["qk_tracing_results"][side] = [[node.id, value] for node, value in contributors]
    ids = list(nodes)
    for entry, share in zip(nodes.values(), _influence(ids, list(links.values()), target.id), strict=True):
        entry["influence"] = share
    graph = {
        "metadata": _metadata(expansion, provenance),
        "qParams": {
            "pinnedIds": [target.id],
            "supernodes": [],
            "linkType": "both",
            "clickedId": target.id,
            "sg_pos": "",
        },
        "nodes": list(nodes.values()),
        "links": list(links.values()),
    }
    if pair_parts:
        graph["qk_only_nodes"] = {
            node_id: _node_entry(node, n_layers, activations.get(node_id), label_of)
            for node_id, node in pair_parts.items()
        }
    return graph


def _metadata(expansion: Expansion, provenance: Provenance) -> dict:
    target = expansion.target
    moves = provenance.moves.split()[: target.position + 1]
    return {
        "slug": provenance.file_stem(target.id) + ".graph",  # the app writes {slug}.json, as viewers read
        "scan": f"othello-gpt-{provenance.model_fingerprint}",
        "prompt_tokens": moves,
        "prompt": " ".join(moves),
        "node_threshold": 1.0,  # the tree is pruned already (top, threshold): show all of it
        "info": {
            "description": f"{target.spec} at P{target.position} (move {target.position + 1}) = "
            f"{expansion.value:.6g}: exact direct contributions (othello-tui trace); model "
            f"{provenance.model_fingerprint}, dictionaries {provenance.dictionaries_hash}",
            "generator": GENERATOR,
            "create_time_ms": int(time.time() * 1000),
        },
        "generation_settings": {
            "top": provenance.top,
            "threshold": provenance.threshold,
            "depth": provenance.depth,
        },
        "provenance": provenance.to_dict(),
    }


def trace_graph(
    trace, expansion: Expansion, provenance: Provenance, label_of: LabelOf | None = None, qk_top: int = 10
) -> dict:
    """:func:`expansion_to_graph` with the facts read from a
    :class:`~othello_tui.circuits.trace.GameTrace`: activations, the root logit's probability and
    a score root's QK marginals (each side's ``qk_top`` largest by |sum|)."""
    target = expansion.target
    qk = _qk_marginals(trace, target, qk_top) if target.kind == "score" else None
    nodes = [node for contributors in (qk or {}).values() for node, _ in contributors]
    pending = [expansion]
    while pending:
        level = pending.pop()
        for branch in level.branches:
            nodes += branch.node.parts or (branch.node,)
            if branch.expansion is not None:
                pending.append(branch.expansion)
    activations = {
        node.id: trace.activation(node.position, node.module, node.feature)
        for node in nodes
        if node.kind == "feature"
    }
    probability = None
    if target.kind == "logit":
        probability = float(trace.logits_TV[target.position].softmax(-1)[target.token])
    return expansion_to_graph(
        expansion, provenance, trace.model.cfg.n_layers, activations, probability, qk, label_of
    )


def _qk_marginals(trace, target: Target, top: int) -> QKMarginals:
    """Each query node's contribution summed over every key node, and each key node's over every
    query node: exact, unlike sums over the pairs shown."""
    attribution = trace.contributions(target)
    pairs_QK = attribution.values_N.view(-1, attribution.n_keys)

    def largest(sums, part_of) -> list:
        order = sums.abs().argsort(descending=True)[:top]
        return [(part_of(int(n)), float(sums[n])) for n in order]

    return {
        "top_q_marginal_contributors": largest(
            pairs_QK.sum(1), lambda a: attribution.node_at(a * attribution.n_keys).parts[0]
        ),
        "top_k_marginal_contributors": largest(pairs_QK.sum(0), lambda b: attribution.node_at(b).parts[1]),
    }
