"""Saving the app's session (``S``) and opening it again (``play --session FILE``): what is
shown on the board, the interventions, and the screen open over the board — a contributor tree
with its expanded nodes, a feature page, the attention view or an attribution graph — in the JSON of
:mod:`othello_tui.session_file`.

A restored session names whatever no longer applies (a feature the dictionaries lack, a position
past the game's end) instead of failing: the rest opens.
"""

from __future__ import annotations

from textual.screen import Screen

from othello_tui.circuits.nodes import CircuitError, parse_target
from othello_tui.session_file import SavedScreen, SavedSession, restore_interventions
from othello_tui.tui.screens.attention import AttentionScreen
from othello_tui.tui.screens.feature import FeatureScreen
from othello_tui.tui.screens.graph import GraphScreen
from othello_tui.tui.screens.main import MainScreen
from othello_tui.tui.screens.tree import TreeScreen
from othello_tui.tui.shown import Shown


def shown_of(saved: SavedSession) -> Shown:
    """What the board shows when ``saved`` opens."""
    index = saved.game_index
    source = "restored session" if index is None else f"game {index} (seed {saved.seed})"
    return Shown(saved.game, saved.n_moves, source, index)


def capture(main: MainScreen, top: Screen) -> SavedSession:
    """The session as it stands: ``main``'s game and interventions, ``top`` the screen in front."""
    shown, session = main.shown, main.session
    edits = session.circuits.edits(shown.game.squares)
    return SavedSession(
        session.seed,
        shown.dataset_index,
        shown.game.text,
        shown.n_moves,
        tuple(edit.text for edit in edits),
        saved_screen(top),
    )


def saved_screen(screen: Screen) -> SavedScreen | None:
    """What reopens ``screen`` (None: the board, or a screen not worth keeping, such as a prompt)."""
    if isinstance(screen, TreeScreen):
        target = screen.target
        paths = frozenset(screen.contributors.open_paths())
        return SavedScreen("tree", target.spec, target.position, screen.top, screen.threshold, paths)
    if isinstance(screen, FeatureScreen):
        return SavedScreen("feature", screen.feature_id)
    if isinstance(screen, AttentionScreen):
        return SavedScreen("attention", position=screen.position)
    if isinstance(screen, GraphScreen):
        return SavedScreen("graph", screen.target.spec, screen.target.position, graph=screen.settings)
    return None


def restore_edits(main: MainScreen, texts: tuple[str, ...]) -> list[str]:
    """Put the saved interventions back on ``main``'s game; why each of the others was left out."""
    squares = main.shown.game.squares
    edits, problems = restore_interventions(texts, main.session.n_features, len(squares))
    for edit in edits:
        main.session.circuits.add_edit(squares, edit)
    return problems


def reopen(saved: SavedScreen, main: MainScreen) -> Screen | str:
    """The saved screen over ``main``'s game, or why it cannot open."""
    session, shown = main.session, main.shown
    n_moves = len(shown.game.moves)
    if saved.name == "feature":
        try:
            feature_id = session.library.parse(saved.target)
        except ValueError as error:
            return f"feature page {saved.target}: {error}"
        return FeatureScreen(session, feature_id, shown.game, shown.n_moves, shown.source)
    if (why := session.circuits.unavailable()) is not None:
        return f"{saved.name} view: {why}"
    if not 0 <= saved.position < n_moves:
        return f"{saved.name} view at P{saved.position}: the game has {n_moves} moves"
    if saved.name == "attention":
        return AttentionScreen(session, shown.game, saved.position, shown.source, main.action_jump)
    try:
        target = parse_target(saved.target, saved.position)
    except CircuitError as error:
        return f"tree: {error}"
    if target.kind == "feature":
        module, feature = target.feature_key
        if not 0 <= feature < session.n_features.get(module, 0):
            return f"{saved.name} of {saved.target}: the loaded dictionaries have no such feature"
    if saved.name == "graph":
        return GraphScreen(session, shown.game, target, shown.source, shown.dataset_index, saved.graph)
    return TreeScreen(
        session, shown.game, target, shown.source, main.action_jump, saved.top, saved.threshold,
        saved.open_paths, shown.dataset_index,
    )  # fmt: skip
