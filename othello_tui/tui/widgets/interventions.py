"""The stack of interventions (feature and belief edits) on the game shown, in the forms
``othello-tui intervene --set`` and ``--believe`` read, so that a finding can be replayed from the command line."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from othello_tui.circuits.edits import BeliefEdit, Edit


def edit_note(edit: Edit | BeliefEdit) -> str:
    """``P7L1M379=0 (ablated)``, ``P7L1M379*2``, ``P7L1M379=1.5``; ``P11:L3:e-4=theirs (belief)``."""
    if isinstance(edit, BeliefEdit):
        return f"{edit.text} (belief)"
    return f"{edit.text} (ablated)" if edit.value == 0 else edit.text


def edits_text(edits: Sequence[Edit | BeliefEdit]) -> Text:
    """A heading and one line per edit (empty text without edits)."""
    text = Text()
    if edits:
        text.append("Interventions (c clears)\n", style="bold")
        text.append("\n".join(f" {edit_note(edit)}" for edit in edits))
    return text


class InterventionList(Widget):
    DEFAULT_CSS = """
    InterventionList { height: auto; }
    """

    edits: reactive[tuple[Edit | BeliefEdit, ...]] = reactive((), layout=True)

    def render(self) -> Text:
        return edits_text(self.edits) if self.edits else Text("No interventions (a ablates, x scales)", "dim")
