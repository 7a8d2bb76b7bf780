"""Every key of the app, generated from the bindings themselves so it cannot drift from them."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

MOUSE = (
    ("click a square", "place a disc there (play mode)"),
    ("click a move", "jump to that move (move list)"),
    ("click a feature", "open it; a module: expand or collapse it"),
)
BOARD = (
    ("● ○", "black and white discs"),
    ("[●]", "the move just played"),
    ("(●)", "a disc that move flipped"),
    ("+", "a legal next move"),
    ("31", "the model's probability of this next move, in % (o toggles)"),
    ("12!", "probability on an illegal square: a wrong prediction"),
    ("›·‹", "the play-mode cursor"),
)

Section = tuple[str, Sequence[BindingType]]


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    #help { width: 90%; max-width: 90; height: 90%; border: round $accent; background: $surface;
            padding: 0 1; }
    """
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close help", id="help.close")]

    def __init__(self, sections: Sequence[Section]):
        super().__init__()
        self.sections = sections

    def keys_of(self, binding: Binding) -> str:
        """``"left,comma"`` -> ``"← ,"``: every key of a binding, as the footer writes keys."""
        return " ".join(self.app.get_key_display(Binding(key, "")) for key in binding.key.split(","))

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for title, bindings in self.sections:
            table.add_row(Text(title, style="bold underline"), "")
            for binding in bindings:
                if isinstance(binding, Binding):
                    table.add_row(self.keys_of(binding), binding.tooltip or binding.description)
            table.add_row("", "")
        for title, rows in (("Mouse", MOUSE), ("On the board", BOARD)):
            table.add_row(Text(title, style="bold underline"), "")
            for what, means in rows:
                table.add_row(what, means)
            table.add_row("", "")
        with VerticalScroll(id="help"):
            yield Static(table, id="help-keys")
            yield Static(Text("Esc, ? or q closes", style="dim"))
