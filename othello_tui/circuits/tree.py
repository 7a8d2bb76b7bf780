"""Attribution trees: a target, its top contributors, and under each contributing feature that
feature's own top contributors, down to the embeddings (DESIGN.md §1, item 4).

A feature node's contribution to its parent is linear in its activation c, and for an active
feature c equals its pre-activation h (ReLU, TopK and JumpReLU all pass h through), so a child
expansion explains exactly the quantity the parent's contribution scales with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from othello_tui.circuits.nodes import Node, Target

if TYPE_CHECKING:  # torch: the app's session reads trees before the model loads
    from othello_tui.circuits.attribution import Attribution


class Attributes(Protocol):
    """Anything that gives a target's contributions (:class:`~othello_tui.circuits.trace.GameTrace`)."""

    def contributions(self, target: Target) -> Attribution: ...


@dataclass
class Branch:
    """A contributor, its contribution to the parent, and its own expansion (None: not expanded)."""

    node: Node
    contribution: float
    expansion: Expansion | None = None


@dataclass
class Expansion:
    """The shown contributors of a target. ``total`` sums *all* contributions (≈ ``value``);
    ``rest`` is the part of it carried by contributors not shown."""

    target: Target
    value: float
    total: float
    branches: list[Branch]
    rest: float


def expand(
    trace: Attributes, target: Target, depth: int = 1, top: int | None = 8, threshold: float | None = None
) -> Expansion:
    """Contributors of ``target`` (top ``top`` by |contribution|, those ≥ ``threshold``), each
    feature among them expanded again, ``depth`` levels in all. Identity per level:
    ``sum(branch contributions) + rest == total``."""
    attribution = trace.contributions(target)
    shown = attribution.top(top, threshold)
    branches = []
    for node, contribution in shown:
        child = node.as_target()
        expansion = (
            expand(trace, child, depth - 1, top, threshold) if depth > 1 and child is not None else None
        )
        branches.append(Branch(node, contribution, expansion))
    total = attribution.sum()
    return Expansion(target, attribution.value, total, branches, total - sum(c for _, c in shown))
