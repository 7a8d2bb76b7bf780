"""The main screen's play keys: ``p`` play mode (place discs with the board's cursor), ``m`` the
model's move, ``u`` undo. A move other than the game's own next one branches the game there.

:class:`PlayKeys` is one of the main screen's base classes, kept apart so that the main screen
stays a readable size; it reads and changes the state the main screen owns (declared below).
"""

from __future__ import annotations

from collections.abc import Callable

from textual import work
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget

from othello_tui.game.rules import Game, IllegalMoveError
from othello_tui.game.squares import square_name
from othello_tui.tui.messages import ModelChose
from othello_tui.tui.session import Session
from othello_tui.tui.shown import Shown
from othello_tui.tui.views import PositionView
from othello_tui.tui.widgets.board import Board
from othello_tui.tui.widgets.features import FeatureList


class PlayKeys(Screen):
    """Play mode and the moves played in it, for the main screen to inherit."""

    play_mode: reactive[bool] = reactive(False, init=False)

    session: Session
    shown: Shown
    current_view: PositionView | None
    board: Board
    feature_list: FeatureList
    _undo: list[Shown]
    say: Callable[..., None]  # the main screen's one line of news
    go: Callable[..., None]  # show another game or branch (remember: on the undo stack)
    focus_on: Callable[[Widget, str], None]

    def action_toggle_play(self) -> None:
        self.play_mode = not self.play_mode

    def action_leave_play(self) -> None:
        self.play_mode = False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """In play mode the arrows move the board's cursor: stepping leaves the keys and the
        footer (``u`` takes a move back)."""
        return not (action == "step" and self.play_mode)

    def watch_play_mode(self, play: bool) -> None:
        self.refresh_bindings()
        self.board.play = play
        if play:
            legal = self.current_view.legal if self.current_view else ()
            if legal and self.board.cursor not in legal:
                self.board.cursor = legal[0]
            self.focus_on(
                self.board, "Play mode: arrows or hjkl move, Enter places, m model move, u undo, Esc leaves."
            )
        else:
            self.focus_on(self.feature_list, "")

    def action_model_move(self) -> None:
        view = self.current_view
        if view is None or view.to_move == 0:
            self.say("The game is over.")
        elif view.n_moves == 0:
            self.say("The model predicts from move 2 on: play move 1 yourself (p, then Enter).")
        elif not self.session.model_ready:
            self.say(self.session.model_error or "The model is still loading…")
        else:
            self.choose_model_move(self.shown.game, self.shown.n_moves)

    def action_undo(self) -> None:
        if not self._undo:
            self.say("Nothing to undo.")
            return
        self.go(self._undo.pop(), remember=False)
        self.say("Undone.")

    @work(thread=True, exclusive=True, group="model-move")
    def choose_model_move(self, game: Game, n_moves: int) -> None:
        self.post_message(ModelChose(game, n_moves, self.session.model_choice(game, n_moves)))

    def on_model_chose(self, message: ModelChose) -> None:
        if message.game is not self.shown.game or message.n_moves != self.shown.n_moves:
            return  # the user moved on meanwhile
        if message.square is None:
            self.say("The model has no move to play here.")
            return
        probs = self.session.view(message.game, message.n_moves).probs
        percent = f" ({100 * probs[message.square]:.1f}%)" if probs is not None else ""
        self.place(message.square, f"The model played {square_name(message.square)}{percent}.")

    def place(self, square: int, note: str | None = None) -> None:
        """Play ``square`` at the position shown; a different move from the game's own next move
        branches the game there."""
        game, n = self.shown.game, self.shown.n_moves
        if n < len(game.moves) and game.moves[n].square == square:
            self.go(Shown(game, n + 1, self.shown.source, self.shown.index))
            self.say(note or f"Played {square_name(square)}, the game's own move.")
            return
        branch = game.truncated(n)
        try:
            branch.play(square)
        except IllegalMoveError as error:
            self.say(f"{error.move}: {error.reason}.", "Not played: ")
            return
        source = self.shown.source
        if n < len(game.moves) and "branched" not in source:
            source = f"{source}, branched at move {n}"
        self.go(Shown(branch, n + 1, source, self.shown.index))
        self.say(note or f"Played {square_name(square)}.")

    def on_board_placed(self, message: Board.Placed) -> None:
        self.place(message.square)
