"""The merged attribution graph of a contributor tree, read for the graph screen: its nodes ranked
by influence and pruned at a node threshold (circuit-tracer's rule: keep the most influential
nodes that together carry that share of the influence), and each node's links in and out.

The graph is the dict of :func:`othello_tui.circuits.graph_json.expansion_to_graph` (the JSON
that ``e`` exports): a node reached by two paths of the tree is one node here. No Textual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NODE_THRESHOLD = 0.8  # circuit-tracer's default node threshold
_FEATURE_NODE = re.compile(r"^P\d+(L\d+[A-Z]\d+)$")


@dataclass(frozen=True)
class Link:
    other: str  # the node at the other end
    weight: float  # its exact direct contribution


def ranked_nodes(graph: dict, threshold: float = 1.0) -> list[dict]:
    """Nodes by decreasing influence, those whose cumulative influence share is ≤ ``threshold``
    (the root always: its share counts itself first)."""
    nodes = sorted(graph["nodes"], key=lambda node: node["influence"])
    return [node for n, node in enumerate(nodes) if n == 0 or node["influence"] <= threshold + 1e-12]


def links_of(graph: dict, node_id: str, kept: set[str] | None = None) -> tuple[list[Link], list[Link]]:
    """(in, out) of ``node_id``: what contributes to it and what it contributes to, largest
    |weight| first; with ``kept``, only links between kept nodes (a pruned graph)."""
    incoming, outgoing = [], []
    for link in graph["links"]:
        if kept is not None and not (link["source"] in kept and link["target"] in kept):
            continue
        if link["target"] == node_id:
            incoming.append(Link(link["source"], link["weight"]))
        if link["source"] == node_id:
            outgoing.append(Link(link["target"], link["weight"]))
    return sorted(incoming, key=lambda x: -abs(x.weight)), sorted(outgoing, key=lambda x: -abs(x.weight))


def feature_of(node: dict) -> str | None:
    """The feature id of a feature node (``P7L1M379`` -> ``L1M379``), else None."""
    found = _FEATURE_NODE.match(node["node_id"])
    return found[1] if found else None
