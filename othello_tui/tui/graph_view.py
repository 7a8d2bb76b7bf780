"""An attribution graph, read for the graph screen: its nodes ranked by influence and each node's
links in and out, largest |weight| first.

The graph is the JSON of :func:`othello_tui.circuits.graph_json.trace_attribution_graph` (what
``e`` exports), pruned already by the backend; nothing is computed here but the order. No Textual.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

_FEATURE_NODE = re.compile(r"^P\d+(L\d+[A-Z]\d+)$")


@dataclass(frozen=True)
class Link:
    other: str  # the node at the other end
    weight: float  # its exact direct contribution


class GraphView:
    """``nodes``: the root (no influence share) first, then by increasing cumulative influence
    share, i.e. most influential first; ``links(node_id)``: (in, out) of a node."""

    def __init__(self, graph: dict):
        self.graph = graph
        self.nodes = sorted(
            graph["nodes"], key=lambda node: -1.0 if node["influence"] is None else node["influence"]
        )
        self.row_of = {node["node_id"]: row for row, node in enumerate(self.nodes)}
        self._in: dict[str, list[Link]] = defaultdict(list)
        self._out: dict[str, list[Link]] = defaultdict(list)
        for link in graph["links"]:
            self._in[link["target"]].append(Link(link["source"], link["weight"]))
            self._out[link["source"]].append(Link(link["target"], link["weight"]))
        for links in (*self._in.values(), *self._out.values()):
            links.sort(key=lambda x: -abs(x.weight))

    def links(self, node_id: str) -> tuple[list[Link], list[Link]]:
        """(in, out) of ``node_id``: what contributes to it and what it contributes to."""
        return self._in.get(node_id, []), self._out.get(node_id, [])

    def clerp(self, node_id: str) -> str:
        return self.nodes[self.row_of[node_id]]["clerp"]


def feature_of(node: dict) -> str | None:
    """The feature id of a feature node (``P7L1M379`` -> ``L1M379``), else None."""
    found = _FEATURE_NODE.match(node["node_id"])
    return found[1] if found else None
