"""Rich renderables of a feature's statistics: coloured 8×8 boards with row and column labels,
sparklines, the label and the top examples. ``othello-tui feature`` prints :func:`feature_view`;
the TUI's feature page shows the pieces in Textual widgets as they are.
"""

from __future__ import annotations

import math
import re

import numpy as np
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from othello_tui.features.labels import CONJUNCTION_GAIN
from othello_tui.features.stats import FeatureStats
from othello_tui.game.squares import ROWS

SPARKS = " ▁▂▃▄▅▆▇█"
_DARK = (24, 24, 24)
_POSITIVE = (46, 160, 67)  # counts, "mine", raised logits
_NEGATIVE = (208, 64, 64)  # "theirs", lowered logits


def _blend(colour: tuple[int, int, int], weight: float) -> str:
    r, g, b = (round(d + (c - d) * weight) for c, d in zip(colour, _DARK, strict=True))
    return f"rgb({r},{g},{b})"


def _signed(value: float, width: int = 4) -> str:
    """At most ``width`` characters with the sign, as many decimals as fit: ``+.03``, ``-1.2``,
    ``+12``, ``-123`` (width 4); ``+.3``, ``-1``, ``+12`` (width 3)."""
    for decimals in range(width - 2, 0, -1):
        text = re.sub(r"^([+-])0\.", r"\1.", f"{value:+.{decimals}f}")
        if len(text) <= width:
            return text
    return f"{value:+.0f}"


def _scale(low: str, high: str, signed: bool) -> Text:
    """The colour scale of a heatmap, for its bottom edge: ``0 ░▒▓█ 87%``, or for signed values
    ``-1.2 █▓▒░ 0 ░▒▓█ +1.2`` (the darkest shade at the extremes)."""
    shades = (0.25, 0.5, 0.75, 1.0)
    scale = Text(f"{low} ")
    if signed:
        for weight in reversed(shades):
            scale.append("█", style=_blend(_NEGATIVE, weight))
        scale.append(" 0 ")
    for weight in shades:
        scale.append("█", style=_blend(_POSITIVE, weight))
    return scale.append(f" {high}")


def board(
    values: np.ndarray, title: str, signed: bool = False, total: int | None = None, cell: int = 5
) -> Panel:
    """An 8×8 heatmap, ``cell`` characters a square, with its colour scale below. Counts show as
    a percentage of ``total`` (· for none); signed values (−1…1 board means, logits) in green
    above zero and red below; NaN cells stay blank."""
    finite = values[np.isfinite(values)]
    scale = float(np.abs(finite).max()) if finite.size else 0.0
    text = Text("    " + "".join(f"{col:>{cell}}" for col in range(8)) + "\n")
    for row in range(8):
        text.append(f"  {ROWS[row]} ")
        for col in range(8):
            value = float(values[row, col])
            if math.isnan(value):
                text.append(" " * cell)
                continue
            if not value:
                shown = "·"
            elif signed:
                shown = _signed(value, cell - 1)
            else:
                shown = f"{_percent(value, total)}"
            weight = abs(value) / scale if scale else 0.0
            colour = _NEGATIVE if value < 0 else _POSITIVE
            text.append(f"{shown:>{cell}}", style=f"on {_blend(colour, weight)}" if value else "dim")
        text.append("\n")
    text.rstrip()
    if signed:
        legend = _scale(_signed(-scale, cell - 1), _signed(scale, cell - 1), signed=True)
    else:
        legend = _scale("0", f"{_percent(scale, total)}%", signed=False)
    return Panel(text, title=title, subtitle=legend, expand=False, padding=0)


def _percent(count: float, total: int | None) -> int:
    return round(100 * count / max(total or 1, 1))


def sparkline(counts: np.ndarray) -> str:
    """One character per bin, height relative to the largest."""
    top = counts.max() if len(counts) else 0
    return "".join(SPARKS[math.ceil(8 * c / top)] if top else " " for c in counts)


def label_line(stats: FeatureStats) -> Text:
    """The label with its precision, recall and F1 as a classifier of "the feature fires", or
    why there is none."""
    if stats.label is None:
        if not stats.candidates:
            return Text("unlabelled: no board predicate says anything about it", style="dim")
        best = stats.candidates[0]
        what = "candidate" if " & " in best.text else "single predicate"
        return Text(f"unlabelled: the best {what}, {best.text}, has F1 {best.f1:.2f}", style="dim")
    label = stats.label
    text = Text(label.text, style="bold cyan")
    text.append(f"  P {label.precision:.2f} · R {label.recall:.2f} · F1 {label.f1:.2f}")
    if label.top_share is not None:
        text.append(f" · holds on {label.top_share:.0%} of the top examples")
    return text


def candidates_line(stats: FeatureStats) -> Text:
    """The candidates after the first (the label, or the best of the unlabelled)."""
    others = "; ".join(f"{c.text} F1 {c.f1:.2f}" for c in stats.candidates[1:])
    text = Text(f"other candidates: {others or 'none informative'}", style="dim")
    if stats.candidates and any(c.f1 > stats.candidates[0].f1 for c in stats.candidates[1:]):
        text.append(f" (a conjunction wins only by F1 +{CONJUNCTION_GAIN})", style="dim")
    return text


def facts_line(stats: FeatureStats) -> Text:
    """Firing frequency, mean activation, and who moved at the top examples (panel 1 of §6)."""
    n, black = stats.n_examples, _percent(stats.player_black, stats.n_examples)
    if n == 0:
        return Text(f"never fires on the cache's {stats.n_tokens:,} tokens (a dead feature)")
    return Text(
        f"fires on {stats.frequency:.3%} of {stats.n_tokens:,} tokens · mean {stats.mean_activation:.3g} "
        f"when firing · top {n} examples moved by ● black {black}%, ○ white {100 - black}%"
    )


def board_panels(stats: FeatureStats, cell: int = 5) -> list[Panel]:
    """The five board panels over the top examples and the decoder's logit effect."""
    n = stats.n_examples
    return [
        board(stats.move, "move played (%)", total=n, cell=cell),
        board(stats.legal, "legal next moves (%)", total=n, cell=cell),
        board(stats.board, "board: +mine / −theirs", signed=True, cell=cell),
        board(stats.flipped, "flipped (%)", total=n, cell=cell),
        board(stats.empty, "empty (%)", total=n, cell=cell),
        board(stats.logit_effect, "logit effect W_dec·W_U", signed=True, cell=cell),
    ]


def belief_panel(reading: np.ndarray, cell: int = 5) -> Panel:
    """A residual feature's board: what its decoder row writes into the mine/theirs probe of its
    layer, per unit of activation (``probes.alignment.decoder_readings``; [64])."""
    return board(reading.reshape(8, 8), "writes belief: +mine / −theirs", signed=True, cell=cell)


def histogram_line(stats: FeatureStats, separator: str = ": ") -> Text:
    """The activation histogram over every firing token, cut to the bins in use."""
    used = np.flatnonzero(stats.histogram)
    lo, hi = (used[0], used[-1] + 1) if len(used) else (0, 0)
    edges = stats.histogram_edges
    return Text(
        f"activation histogram {edges[lo]:.3g} … {edges[hi]:.3g} (log bins){separator}"
        f"{sparkline(stats.histogram[lo:hi])}"
    )


def move_number_line(stats: FeatureStats, separator: str = ": ") -> Text:
    return Text(f"move number of the examples (1…60){separator}{sparkline(stats.move_number)}")


def feature_view(
    stats: FeatureStats, n_examples: int = 10, reading: np.ndarray | None = None
) -> RenderableType:
    """The whole page as the CLI prints it; ``reading``: a residual feature's :func:`belief_panel`."""
    header = Text(stats.feature_id + "  ", style="bold").append_text(label_line(stats))
    examples = Table("game", "move", "square", "activation", title="top examples", title_justify="left")
    for example in stats.examples[:n_examples]:
        examples.add_row(
            str(example.game), str(example.position + 1), example.move, f"{example.activation:.4g}"
        )
    return Group(
        header,
        facts_line(stats),
        candidates_line(stats),
        Columns(board_panels(stats) + ([belief_panel(reading)] if reading is not None else [])),
        histogram_line(stats),
        move_number_line(stats),
        examples,
    )
