"""An attention score's QK decomposition as a ranked table: one row per (query node, key node)
pair, largest |contribution| first, then a row for the pairs not shown, so that the column sums
to the score exactly (DESIGN.md §3.7)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from othello_tui.circuits.export import LabelOf, node_label
from othello_tui.circuits.tree import Expansion
from othello_tui.tui.widgets.contributor_tree import signed


class QKTable(DataTable):
    DEFAULT_CSS = """
    QKTable { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None):
        super().__init__(cursor_type="row", id=id)
        for name in ("#", "query node", "key node", "contribution", "labels"):
            self.add_column(name, key=name)

    def show_expansion(self, expansion: Expansion, labels: LabelOf | None) -> None:
        self.clear()  # the rows: columns made anew would keep their first widths
        for rank, branch in enumerate(expansion.branches, start=1):
            query, key = branch.node.pair_parts
            names = [label for node in (query, key) if (label := node_label(node, labels)) is not None]
            self.add_row(str(rank), query.id, key.id, signed(branch.contribution), " · ".join(names))
        self.add_row("", Text("… others", "dim"), "", signed(expansion.rest), Text("pairs not shown", "dim"))
