"""What the command palette's providers need of the app, typed: ``OthelloApp`` imports them, so
they cannot import it back (tests/test_import_layers.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from textual.app import App

    from othello_tui.tui.screens.main import MainScreen


class Host(Protocol):
    """The parts of ``othello_tui.tui.app.OthelloApp`` the palette uses."""

    @property
    def main_screen(self) -> MainScreen: ...

    def action_help(self) -> None: ...


def host(app: App[object]) -> Host:
    """``app`` as the :class:`Host` it is (the palette only runs inside ``OthelloApp``)."""
    return cast(Host, app)
