"""Going back through screens.

Screens pushed on top of each other go back by popping (Esc or Backspace). Enter on a feature's
top example is the one move *down* the stack: the main screen, at the bottom, shows the example's
game, so the screens above it close. A :class:`Detour` remembers them and what the main screen
showed before, so that Backspace on the main screen goes back up. A screen comes back as the copy
its ``reopen()`` made when it closed (a closed screen cannot be shown again, see
:class:`Reopenable`); one without ``reopen()`` is not restored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, runtime_checkable

from textual.app import App
from textual.screen import Screen

Shown = TypeVar("Shown")  # what the main screen shows


@runtime_checkable
class Reopenable(Protocol):
    def reopen(self) -> Screen:
        """A fresh, unmounted copy of this screen in its present state."""
        ...


@dataclass(frozen=True)
class Detour(Generic[Shown]):
    shown: Shown  # what the main screen showed before
    screens: tuple[Screen, ...]  # copies of the screens that were above it, bottom first


class History(Generic[Shown]):
    """The detours down to the main screen, newest last (at most ``limit``)."""

    def __init__(self, limit: int = 32):
        self._detours: list[Detour[Shown]] = []
        self._limit = limit

    def __len__(self) -> int:
        return len(self._detours)

    def leave(self, app: App, shown: Shown) -> None:
        """Close every screen above the main screen, remembering them and ``shown``."""
        above = app.screen_stack[1:]
        copies = tuple(screen.reopen() for screen in above if isinstance(screen, Reopenable))
        self._detours = [*self._detours, Detour(shown, copies)][-self._limit :]
        for _ in above:
            app.pop_screen()

    def back(self, app: App) -> Shown | None:
        """Reopen the screens of the newest detour and return what the main screen showed then
        (None: no detour to go back from)."""
        if not self._detours:
            return None
        detour = self._detours.pop()
        for screen in detour.screens:
            app.push_screen(screen)
        return detour.shown
