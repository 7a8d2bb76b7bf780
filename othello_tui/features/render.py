"""Rich renderables of a feature's statistics: coloured 8×8 boards with row and column labels,
sparklines, the label and the top examples. Used by ``othello-tui feature``; Textual widgets can
show them as they are.
"""

from __future__ import annotations

import math

import numpy as np
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from othello_tui.features.stats import FeatureStats
from othello_tui.game.squares import ROWS

SPARKS = " ▁▂▃▄▅▆▇█"
_DARK = (24, 24, 24)
_POSITIVE = (46, 160, 67)  # counts, "mine", raised logits
_NEGATIVE = (208, 64, 64)  # "theirs", lowered logits


def _blend(colour: tuple[int, int, int], weight: float) -> str:
    r, g, b = (round(d + (c - d) * weight) for c, d in zip(colour, _DARK, strict=True))
    return f"rgb({r},{g},{b})"


def _signed(value: float) -> str:
    """Four characters, about two significant digits: ``+.03``, ``-1.2``, ``+12``, ``-123``."""
    if abs(value) < 0.995:
        return f"{value:+.2f}".replace("0.", ".")
    return f"{value:+.1f}" if abs(value) < 9.95 else f"{value:+.0f}"


def board(values: np.ndarray, title: str, signed: bool = False, total: int | None = None) -> Panel:
    """An 8×8 heatmap. Counts show as a percentage of ``total`` (· for none); signed values
    (−1…1 board means, logits) in green above zero and red below; NaN cells stay blank."""
    finite = values[np.isfinite(values)]
    scale = float(np.abs(finite).max()) if finite.size else 0.0
    text = Text("    " + "".join(f"{col:>5}" for col in range(8)) + "\n")
    for row in range(8):
        text.append(f"  {ROWS[row]} ")
        for col in range(8):
            value = float(values[row, col])
            if math.isnan(value):
                text.append("     ")
                continue
            if not value:
                cell = "·"
            elif signed:
                cell = _signed(value)
            else:
                cell = f"{round(100 * value / max(total or 1, 1))}"
            weight = abs(value) / scale if scale else 0.0
            colour = _NEGATIVE if value < 0 else _POSITIVE
            text.append(f"{cell:>5}", style=f"on {_blend(colour, weight)}" if value else "dim")
        text.append("\n")
    text.rstrip()
    return Panel(text, title=title, expand=False, padding=(0, 1))


def sparkline(counts: np.ndarray) -> str:
    """One character per bin, height relative to the largest."""
    top = counts.max() if len(counts) else 0
    return "".join(SPARKS[math.ceil(8 * c / top)] if top else " " for c in counts)


def feature_view(stats: FeatureStats, n_examples: int = 10) -> RenderableType:
    header = Text(stats.feature_id, style="bold")
    header.append(
        f"  {stats.label}" if stats.label else "  (unlabelled)", style="cyan" if stats.label else "dim"
    )
    facts = Text(
        f"fires on {stats.frequency:.3%} of {stats.n_tokens:,} tokens · mean activation when firing "
        f"{stats.mean_activation:.3g} · {stats.n_examples} top examples, black moved in {stats.player_black}"
    )
    alternatives = Text(
        "other candidates: " + "; ".join(f"{c} F1 {c.f1:.2f}" for c in stats.candidates[1:]), style="dim"
    )
    n = stats.n_examples
    boards = Columns(
        [
            board(stats.move, "move played (%)", total=n),
            board(stats.legal, "legal next moves (%)", total=n),
            board(stats.board, "board: +mine / −theirs", signed=True),
            board(stats.flipped, "flipped (%)", total=n),
            board(stats.empty, "empty (%)", total=n),
            board(stats.logit_effect, "logit effect W_dec·W_U", signed=True),
        ]
    )
    used = np.flatnonzero(stats.histogram)
    lo, hi = (used[0], used[-1] + 1) if len(used) else (0, 0)
    histogram = Text(
        f"activation histogram {stats.histogram_edges[lo]:.3g} … {stats.histogram_edges[hi]:.3g} (log bins): "
        f"{sparkline(stats.histogram[lo:hi])}"
    )
    move_numbers = Text(f"move number of the examples (1…60): {sparkline(stats.move_number)}")
    examples = Table("game", "move", "square", "activation", title="top examples", title_justify="left")
    for example in stats.examples[:n_examples]:
        examples.add_row(
            str(example.game), str(example.position + 1), example.move, f"{example.activation:.4g}"
        )
    return Group(header, facts, alternatives, boards, histogram, move_numbers, examples)
