"""Every head's attention at one query position as a grid: a row per head (``L3H2``), a column
per key position, each cell shaded by the attention weight — by a glyph (``·░▒▓█``) as well as
a colour, so that it reads on ``NO_COLOR`` terminals too. A ``DataTable`` gives the cell cursor
and the scrolling.

Shape legend: L layer, H head, S key position.
"""

from __future__ import annotations

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable

#: (lower bound of the weight, glyph, background): the first level whose bound the weight reaches
LEVELS = (
    (0.7, "█", "#3b6fd1"),
    (0.4, "▓", "#2d5599"),
    (0.2, "▒", "#24406f"),
    (0.05, "░", "#1c2c47"),
    (0.0, "·", ""),
)


def shade(weight: float) -> Text:
    for bound, glyph, background in LEVELS:
        if weight >= bound:
            return Text(glyph * 2, Style(color="#e8e8e8", bgcolor=background or None))
    raise AssertionError("weights are ≥ 0")


class AttentionGrid(DataTable):
    DEFAULT_CSS = """
    AttentionGrid { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None):
        super().__init__(cell_padding=0, cursor_background_priority="css", id=id)
        self.pattern_LHS: np.ndarray | None = None

    def show_pattern(self, pattern_LHS: np.ndarray) -> None:
        """Rows L0H0, L0H1, …; columns key positions 0…S−1 (labelled 0, 5, 10, …)."""
        self.clear(columns=True)
        self.pattern_LHS = pattern_LHS
        n_layers, n_heads, n_keys = pattern_LHS.shape
        for key in range(n_keys):  # a label every fifth column: two cells are too narrow for more
            self.add_column(f"{key:<2}" if key % 5 == 0 else "", key=str(key), width=2)
        for layer in range(n_layers):
            for head in range(n_heads):
                cells = [shade(float(w)) for w in pattern_LHS[layer, head]]
                self.add_row(*cells, key=f"{layer}.{head}", label=f"L{layer}H{head} ")

    def cell(self) -> tuple[int, int, int] | None:
        """(layer, head, key position) under the cursor."""
        if self.pattern_LHS is None or not self.row_count:
            return None
        row, key = self.cursor_coordinate
        return *divmod(row, self.pattern_LHS.shape[1]), key

    def weight(self, layer: int, head: int, key: int) -> float:
        assert self.pattern_LHS is not None
        return float(self.pattern_LHS[layer, head, key])
