"""The model's top next-move predictions, each marked legal or illegal, and top-1 legality so far;
with interventions, their change (Δ, in percentage points) and the list of interventions."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from othello_tui.game.squares import square_name
from othello_tui.tui.views import PositionView
from othello_tui.tui.widgets.interventions import edits_text

LEGAL, ILLEGAL = "#87d787", "bold #ff8787"
UP, DOWN = "#87d787", "#ff8787"


def predictions_text(view: PositionView) -> Text:
    text = Text(overflow="fold")  # notes hold paths longer than the panel is wide
    text.append(f"Predictions for move {view.n_moves + 1}\n", style="bold")
    if view.to_move == 0:
        text.append("The game is over.\n", style="italic")
    elif view.predictions_note:
        text.append(view.predictions_note + "\n", style="italic")
    before = view.probs_before
    if before is not None:
        text.append("Δ: after − before, pts\n", style="italic")
    elif view.edits and view.probs is not None:
        first = min(edit.position for edit in view.edits)
        text.append(f"interventions act from move {first + 2} on\n", style="italic")
    for p in view.top:
        text.append(f" {square_name(p.square)}  {100 * p.probability:5.1f}%  ")
        if before is not None:  # no room for the words: the signs say it without colour
            delta = 100 * (p.probability - float(before[p.square]))
            text.append(f"{delta:+5.1f} ", style=UP if delta > 0 else DOWN if delta < 0 else "")
        # light colours: they stay readable when NO_COLOR turns them into shades of grey
        verdict = ("✓ legal", "✗ illegal")[not p.legal]
        text.append(f"{verdict if before is None else verdict[0]}\n", style=LEGAL if p.legal else ILLEGAL)
    if view.top1_legal is not None:
        hits, scored = view.top1_legal
        text.append(f"\ntop-1 legal so far {hits}/{scored}", style="bold")
    if view.edits:
        text.append("\n\n").append_text(edits_text(view.edits))
    return text


class Predictions(Widget):
    DEFAULT_CSS = """
    Predictions { width: 26; height: 1fr; padding: 0 1; }
    """

    view: reactive[PositionView | None] = reactive(None, always_update=True)

    def render(self) -> Text:
        return Text("") if self.view is None else predictions_text(self.view)
