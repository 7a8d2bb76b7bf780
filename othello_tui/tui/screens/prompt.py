"""A one-line prompt (a move list, a game index, a factor, a folder) that parses what is typed and explains why
when it cannot: the dialog stays open with the parser's message until the input is good."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from othello_tui.circuits.edits import MAX_EDIT_NUMBER
from othello_tui.game.generator import MAX_GAME_INDEX

T = TypeVar("T")


def parse_game_index(text: str) -> int:
    """A non-negative game index; ``ValueError`` with a readable message otherwise."""
    try:
        index = int(text.strip())
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a number") from None
    if index < 0:
        raise ValueError("game indices start at 0")
    if index > MAX_GAME_INDEX:
        raise ValueError(f"game indices go up to {MAX_GAME_INDEX:,} (game k is generated after games 0…k−1)")
    return index


def parse_factor(text: str) -> float:
    """A finite number (a feature's scale factor); ``ValueError`` with a readable message otherwise."""
    try:
        factor = float(text.strip())
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a number (e.g. 0.5, 2 or -1)") from None
    if not abs(factor) <= MAX_EDIT_NUMBER:  # also catches inf and nan
        raise ValueError(f"the factor must be a number within ±{MAX_EDIT_NUMBER:,.0f}")
    return factor


def parse_share(text: str) -> float:
    """A share between 0 and 1 (a node threshold); ``ValueError`` with a readable message otherwise."""
    share = parse_factor(text)
    if not 0 < share <= 1:
        raise ValueError("a share lies between 0 (exclusive) and 1, e.g. 0.8")
    return share


def parse_count(text: str, most: int = 2000) -> int:
    """A whole number from 0 to ``most`` (a graph's feature budget); ``ValueError`` with a readable
    message otherwise."""
    try:
        count = int(text.strip())
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a whole number") from None
    if not 0 <= count <= most:
        raise ValueError(f"a number from 0 to {most:,}")
    return count


def parse_threshold(text: str) -> float:
    """A non-negative number; 0 for an empty input (no threshold: |contribution| ≥ 0 keeps all).
    Never None, which is the prompt's answer to Escape (the threshold stays as it was)."""
    if not text.strip():
        return 0.0
    threshold = parse_factor(text)
    if threshold < 0:
        raise ValueError("a threshold on |contribution| is 0 or more")
    return threshold


def parse_folder(text: str, default: Path = Path("exports")) -> Path:
    """A folder to write into (``default`` for an empty input); it need not exist yet."""
    folder = Path(text.strip()).expanduser() if text.strip() else default
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file, not a folder")
    return folder


class PromptScreen(ModalScreen[T], Generic[T]):
    """Dismisses with ``parse(text)``, or None on Escape; ``parse`` raises ValueError to refuse."""

    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    #dialog { width: 70; height: auto; border: round $accent; padding: 0 1; background: $surface; }
    #error { color: $text-error; height: auto; }
    #hint { color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "cancel", "cancel", id="prompt.cancel")]

    def __init__(self, title: str, placeholder: str, parse: Callable[[str], T]):
        super().__init__()
        self._title, self._placeholder, self._parse = title, placeholder, parse

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(self._title, style="bold"))
            yield Input(placeholder=self._placeholder, id="prompt-input")
            yield Static(id="error")
            yield Label("Enter accepts · Esc cancels", id="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            value = self._parse(event.value)
        except ValueError as error:
            self.query_one("#error", Static).update(Text(str(error)))
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
