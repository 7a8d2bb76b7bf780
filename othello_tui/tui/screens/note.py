"""The user's label and notes on a feature: a small dialog with the two lines, filled with what was
saved before. Enter saves (both empty removes the note), Esc cancels. ``edit_note`` opens it and
saves what it returns through the session."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from othello_tui.notes import MARK, Note
from othello_tui.tui.session import Session


class NoteScreen(ModalScreen[Note | None]):
    """Dismisses with the note as typed, or None on Escape."""

    DEFAULT_CSS = """
    NoteScreen { align: center middle; }
    #note-dialog { width: 80; height: auto; border: round $accent; padding: 0 1; background: $surface; }
    #note-hint { color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "cancel", "cancel", id="note.cancel")]

    def __init__(self, feature_id: str, note: Note | None):
        super().__init__()
        self.feature_id, self.note = feature_id, note or Note("")

    def compose(self) -> ComposeResult:
        with Vertical(id="note-dialog"):
            yield Label(Text(f"{MARK} Your label and notes on {self.feature_id}", style="bold"))
            yield Input(
                self.note.label, placeholder="label, e.g. flips c-4 along the diagonal", id="note-label"
            )
            yield Input(self.note.notes, placeholder="notes (optional)", id="note-notes")
            yield Label("Enter saves · both empty removes the note · Esc cancels", id="note-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(
            Note(self.query_one("#note-label", Input).value, self.query_one("#note-notes", Input).value)
        )

    def action_cancel(self) -> None:
        self.dismiss(None)


def edit_note(app: App, session: Session, feature_id: str, done: Callable[[str], None]) -> None:
    """Open the dialog on ``feature_id``'s note and save what it returns; ``done`` is told what
    happened (saved, removed, or why not)."""
    why = session.notes_unavailable()
    if why is not None:
        done(why)
        return
    notes = session.notes
    assert notes is not None  # notes_unavailable() is None exactly when there are notes

    def save(note: Note | None) -> None:
        if note is None:
            return
        try:
            session.set_note(feature_id, note)
        except OSError as error:
            done(f"Note not saved: {error.strerror or error}: {error.filename or notes.path}")
            return
        kept = notes.get(feature_id)
        done(
            f"Saved {kept.shown()} on {feature_id} to {notes.path}"
            if kept
            else f"Removed the note on {feature_id}."
        )

    app.push_screen(NoteScreen(feature_id, notes.get(feature_id)), save)
