"""A feature's summary at the current position (the full feature page comes with issue 8)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from othello_tui.tui.session import FeatureSummary


def summary_text(summary: FeatureSummary) -> Text:
    # features exist only once the model is loaded, so torch (imported by sae) is already in
    from othello_tui.dictionary.sae import hook_name_of

    feature = summary.feature
    text = Text(f"{feature.feature_id}", style="bold")
    text.append(
        f"  feature {feature.index} of the {feature.module} dictionary ({hook_name_of(feature.module)})\n\n"
    )
    text.append(f"Activation at move {summary.position + 1} (P{summary.position}): ")
    text.append(f"{feature.activation:.3f}\n", style="bold")
    text.append("Label: ")
    text.append(
        f"{feature.label}\n" if feature.label else "none yet (needs the feature cache)\n", style="italic"
    )
    text.append(
        f"\nFires at {len(summary.firing)} of {summary.analysed_moves} moves of this game (move: activation):\n"
    )
    text.append("  ".join(f"{move}: {act:.2f}" for move, act in summary.firing))
    return text


class FeatureScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    FeatureScreen { align: center middle; }
    #summary { width: 80%; max-width: 100; height: auto; border: round $accent; padding: 0 1;
               background: $surface; }
    """
    BINDINGS = [Binding("escape,enter,q", "dismiss", "close", id="feature.close")]

    def __init__(self, summary: FeatureSummary):
        super().__init__()
        self.summary = summary

    def compose(self) -> ComposeResult:
        with Vertical(id="summary"):
            yield Static(summary_text(self.summary), id="summary-text")
            yield Static(Text("Esc closes", style="dim"))
