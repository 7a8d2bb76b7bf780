"""The main screen: the board, the move list, the model's predictions and the active features.

This screen owns the state (the game, the position shown, play mode, the overlay) and passes a
:class:`~othello_tui.tui.session.PositionView` down to its widgets; they post messages up. Anything
slow (loading torch and the model, running it, generating dataset games) runs in thread workers,
so a key press only ever reads the session's cache.
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static
from textual.worker import get_current_worker

from othello_tui.game.rules import COLOUR_NAMES, Game
from othello_tui.tui.analysis import ModelUnavailableError
from othello_tui.tui.messages import Analysed, CacheProgress, GameLoaded, ModelLoaded, OpenFeature
from othello_tui.tui.navigation import History
from othello_tui.tui.screens.circuit_keys import CIRCUIT_KEYS, CircuitKeys
from othello_tui.tui.screens.main_keys import MAIN_KEYS
from othello_tui.tui.screens.play_keys import PlayKeys
from othello_tui.tui.screens.prompt import PromptScreen, parse_game_index
from othello_tui.tui.session import Session
from othello_tui.tui.shown import Shown
from othello_tui.tui.views import PositionView
from othello_tui.tui.widgets.belief_board import BeliefBoard, beliefs_title
from othello_tui.tui.widgets.board import CELL_SIZES, DISC, Board
from othello_tui.tui.widgets.features import FeatureList
from othello_tui.tui.widgets.footer import Footer
from othello_tui.tui.widgets.move_list import MoveList
from othello_tui.tui.widgets.predictions import Predictions

MIN_SIZE = (72, 20)  # below this the screen says so instead of drawing a broken layout
NARROW_WITH_BELIEFS = 150  # below this width the believed board takes the predictions' place
LEGEND = "[●] last move (●) flipped\n +  legal      31 model %\n12! illegal %  ›·‹ cursor"
NARROW_LEGEND = "[●] last move (●) flipped\n +  legal      31 model %\n !  illegal ≥10%, 2! <10%"


def cell_size_for(width: int, height: int) -> tuple[int, int]:
    """The largest board cell that leaves room for the panels (board ≤ 40% of the width)."""
    body_height = height - 7  # title, move list, message and footer
    fitting = [(w, h) for w, h in CELL_SIZES if 2 + 8 * w <= 0.4 * width and 1 + 8 * h <= body_height]
    return fitting[-1] if fitting else CELL_SIZES[0]


class MainScreen(PlayKeys, CircuitKeys):  # a Screen, with the play keys and the circuit keys
    DEFAULT_CSS = """
    MainScreen { layout: vertical; }
    #title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    #body { height: 1fr; }
    #left { width: auto; height: 1fr; }
    #legend { color: $text-muted; margin-top: 1; width: 26; }
    Board:focus { background-tint: $foreground 5%; }
    #features { width: 1fr; height: 1fr; }
    #features-title { height: 1; padding: 0 1; }
    #features-note { height: auto; padding: 0 1; }
    #beliefs { width: auto; height: 1fr; display: none; margin-left: 1; }
    #beliefs-title { width: 26; height: auto; margin-top: 1; }
    MainScreen.-beliefs #beliefs { display: block; }
    MainScreen.-beliefs.-narrow #predictions { display: none; }
    #message { height: auto; max-height: 3; padding: 0 1; color: $text-warning; }
    #too-small { display: none; width: 1fr; height: 1fr; content-align: center middle; }
    MainScreen.-too-small > * { display: none; }
    MainScreen.-too-small > #too-small { display: block; }
    """
    AUTO_FOCUS = "FeatureList"
    BINDINGS = [*MAIN_KEYS, *CIRCUIT_KEYS]

    beliefs_shown: reactive[bool] = reactive(False, init=False)
    overlay: reactive[bool] = reactive(True, init=False)

    def __init__(
        self,
        session: Session,
        game: Game | None = None,
        game_index: int = 0,
        restored: Shown | None = None,
    ):
        """On ``restored`` (a saved session's), else ``game``, else the dataset game ``game_index``."""
        super().__init__()
        self.session = session
        if restored is not None:
            self.shown = restored
            game = restored.game
        elif game is None:  # the dataset game arrives from a worker; the start position meanwhile
            self.shown = Shown(Game(), 0, f"loading game {game_index} (seed {session.seed})…", None)
        else:
            self.shown = Shown(game, len(game.moves), "pasted moves", None)
        self._first_index = None if game is not None else game_index
        self._undo: list[Shown] = []
        self.history: History[Shown] = History()  # detours down from the screens above
        self._requested: tuple[int, ...] | None = None  # game whose analysis a worker is computing
        self.current_view: PositionView | None = None
        self._features_note: str | None = ""

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield Board(id="board")
                yield Static(LEGEND, id="legend")
            with Vertical(id="beliefs"):
                yield BeliefBoard(id="belief-board")
                yield Static(id="beliefs-title")
            yield Predictions(id="predictions")
            with Vertical(id="features"):
                yield Static(id="features-title")
                yield Static(id="features-note")
                yield FeatureList(id="feature-list")
        yield MoveList(id="moves")
        yield Static(id="message")
        yield Footer(show_command_palette=False)
        yield Static(id="too-small")

    def on_mount(self) -> None:
        self.board = self.query_one("#board", Board)
        self.belief_board = self.query_one(BeliefBoard)
        self.predictions = self.query_one(Predictions)
        self.feature_list = self.query_one(FeatureList)
        self.moves = self.query_one(MoveList)
        self.fit(*self.app.size)
        self.show()
        # only once the board is on screen: importing torch holds the GIL for seconds
        self.call_after_refresh(self.start_up)

    # -- showing a position ---------------------------------------------------------------------

    def show(self) -> None:
        """Pass the current position down to every widget (fast: reads the session's cache)."""
        game, n = self.shown.game, self.shown.n_moves
        view = self.current_view = self.session.view(game, n)
        self.board.view = self.predictions.view = self.feature_list.view = view
        if self.beliefs_shown:
            if view.beliefs is not None and self.belief_board.site >= view.beliefs.n_sites:
                self.belief_board.site = view.beliefs.n_sites - 1  # a model with fewer layers
            self.belief_board.view = view
            self.query_one("#beliefs-title", Static).update(beliefs_title(view, self.belief_board.site))
        self.moves.entries = tuple((m.square, m.player, m.passed) for m in game.moves)
        self.moves.current = n
        self.query_one("#title", Static).update(Text(self._title(view)), layout=False)
        self.query_one("#features-title", Static).update(self._features_title(view), layout=False)
        if view.features_note != self._features_note:  # rarely changes; its height may
            self._features_note = view.features_note
            note = self.query_one("#features-note", Static)
            note.update(Text(view.features_note or "", style="italic"))
            note.display = bool(view.features_note)
        if view.pending and self._requested != tuple(game.squares):
            self._requested = tuple(game.squares)
            self.analyse(game)

    def _title(self, view: PositionView) -> str:
        parts = [self.shown.source, f"move {view.n_moves} of {view.n_total}"]
        if view.to_move == 0:
            black, white = view.black, view.white
            result = "draw" if black == white else f"{'black' if black > white else 'white'} wins"
            parts.append(f"game over · {result} {max(black, white)}–{min(black, white)}")
        else:
            passed = f" ({COLOUR_NAMES[view.passed]} passed)" if view.passed else ""
            parts.append(f"{COLOUR_NAMES[view.to_move]} to move{passed}")
        parts.append(f"{DISC[1]} {view.black}  {DISC[-1]} {view.white}")
        if self.play_mode:
            parts.append("PLAY MODE")
        if view.edits:
            parts.append(f"INTERVENED ×{len(view.edits)}")
        return " · ".join(parts)

    @staticmethod
    def _features_title(view: PositionView) -> Text:
        title = Text(f"Features at move {view.n_moves}", style="bold")
        if view.n_moves:
            title.append(f" (P{view.n_moves - 1})")
        return title

    def say(self, text: str, heading: str = "") -> None:
        """One line of news for the user (``heading`` in bold before it)."""
        self.query_one("#message", Static).update(Text.assemble((heading, "bold"), text))

    def go(self, shown: Shown, remember: bool = True) -> None:
        """Show another game or branch; ``remember`` puts the current one on the undo stack."""
        if remember:
            self._undo.append(self.shown)
        self.shown = shown
        self.show()

    # -- workers ----------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="model")
    def start_up(self) -> None:
        """The first dataset game (a fraction of a second), then the model (seconds)."""
        if self._first_index is not None:
            self.post_message(GameLoaded(self.session.dataset_game(self._first_index), self._first_index))
        try:
            self.session.load()
        except ModelUnavailableError as error:
            self.post_message(ModelLoaded(str(error)))
        else:
            self.post_message(ModelLoaded(None))

    @work(thread=True, exclusive=True, group="analysis")
    def analyse(self, game: Game) -> None:
        self.session.analyse(game)
        if not get_current_worker().is_cancelled:
            self.post_message(Analysed())

    @work(thread=True, exclusive=True, group="game")
    def load_game(self, index: int) -> None:
        game = self.session.dataset_game(index)
        if not get_current_worker().is_cancelled:
            self.post_message(GameLoaded(game, index))

    @work(thread=True, exclusive=True, group="cache-build")
    def build_cache(self) -> None:
        """The missing feature cache, in a niced child process (minutes); labels come after."""
        self.post_message(
            CacheProgress(self.session.library.build(lambda s: self.post_message(CacheProgress(s))))
        )

    def on_model_loaded(self, message: ModelLoaded) -> None:
        if message.error:
            self.say(message.error, "No model: ")
            self.notify(message.error, title="No model", severity="error", timeout=10)
        if self.session.model_note:
            self.notify(self.session.model_note, title="Model config", severity="warning", timeout=15)
        if self.session.notes_error:
            self.notify(self.session.notes_error, title="Notes not loaded", severity="error", timeout=10)
        if self.session.library.build_wanted:
            self.build_cache()
        self.show()

    def on_cache_progress(self, message: CacheProgress) -> None:
        status = message.status
        if status.state == "done" and not status.final:
            self.notify(
                f"Labels and pages from {status.stage}; the full cache builds in the background.",
                title="First feature cache built",
            )
        elif status.state == "done":
            self.notify("Feature labels and pages are ready.", title="Feature cache built")
        elif status.state == "failed":
            self.notify(status.describe(), title="Feature cache", severity="error", timeout=10)
        self.show()

    def on_unmount(self) -> None:
        self.session.library.close()  # a build in progress goes on without the app

    def on_analysed(self, _: Analysed) -> None:
        self._requested = None
        if (refused := self.session.circuits.take_refusal()) is not None:
            self.say(refused)
            self.notify(refused, title="Intervention refused", severity="warning", timeout=10)
        self.show()

    def on_game_loaded(self, message: GameLoaded) -> None:
        source = f"game {message.index} (seed {self.session.seed})"
        # the very first game replaces the placeholder start position rather than stacking on it
        self.go(Shown(message.game, 1, source, message.index), remember=bool(self.shown.game.moves))

    def on_move_list_jump(self, message: MoveList.Jump) -> None:
        self.go(Shown(self.shown.game, message.n_moves, self.shown.source, self.shown.index), False)

    def on_feature_list_open(self, message: FeatureList.Open) -> None:
        self.post_message(OpenFeature(message.feature.feature_id))  # the app opens the page

    def visit(self, shown: Shown) -> None:
        """Show ``shown``, closing the screens above; Backspace here goes back up to them."""
        self.history.leave(self.app, self.shown)
        self.go(shown)

    def action_back(self) -> None:
        shown = self.history.back(self.app)
        if shown is None:
            self.say(
                "Nothing to go back to: Backspace returns to a feature page after opening one of its examples."
            )
        else:
            self.go(shown)

    # -- actions ----------------------------------------------------------------------------------

    def action_step(self, delta: int) -> None:
        self.action_jump(self.shown.n_moves + delta)

    def action_jump(self, n_moves: int) -> None:
        total = len(self.shown.game.moves)
        n = total if n_moves < 0 else min(max(n_moves, 0), total)
        if n != self.shown.n_moves:
            self.go(Shown(self.shown.game, n, self.shown.source, self.shown.index), remember=False)

    def focus_on(self, widget: Widget, note: str) -> None:
        """Give ``widget`` the keys once it is displayed, say ``note`` and redraw."""
        self.call_after_refresh(widget.focus)
        self.say(note)
        self.show()

    def watch_overlay(self, overlay: bool) -> None:
        self.board.overlay = overlay

    def action_toggle_overlay(self) -> None:
        self.overlay = not self.overlay
        self.say(f"Probability overlay {'on' if self.overlay else 'off'}.")

    def action_new_game(self) -> None:
        index = self.shown.index
        self.load_game(0 if index is None else index + 1)

    def action_open_game(self) -> None:
        prompt = PromptScreen(f"Open game by index (seed {self.session.seed})", "e.g. 17", parse_game_index)
        self.app.push_screen(prompt, self.open_index)

    def open_index(self, index: int | None) -> None:
        if index is not None:
            self.load_game(index)

    def action_paste_moves(self) -> None:
        prompt = PromptScreen("Paste a move list", "e.g. f-4 f-5 c-3", Game.from_text)
        self.app.push_screen(prompt, self.open_moves)

    def open_moves(self, game: Game | None, source: str = "pasted moves") -> None:
        if game is not None:
            self.go(Shown(game, len(game.moves), source, None))
            self.say(f"Loaded {len(game.moves)} moves.")

    def action_toggle_beliefs(self) -> None:
        self.beliefs_shown = not self.beliefs_shown

    def watch_beliefs_shown(self, shown: bool) -> None:
        self.set_class(shown, "-beliefs")
        self.fit(*self.app.size)
        if shown:
            self.focus_on(
                self.belief_board,
                "Believed board: [ ] change the layer, hjkl move its cursor, t explains that square.",
            )
        else:
            self.focus_on(self.feature_list, "")

    def action_site(self, delta: int) -> None:
        if not self.beliefs_shown:
            self.say("Press b first: [ and ] change the believed board's layer.")
            return
        n_sites = self.current_view.beliefs.n_sites if self.current_view and self.current_view.beliefs else 7
        self.belief_board.site = min(max(self.belief_board.site + delta, 0), n_sites - 1)
        self.show()

    def action_copy_moves(self) -> None:
        """The moves up to the position shown, to the clipboard (OSC 52: works over SSH too) and
        on screen, where a terminal without OSC 52 still lets them be selected."""
        shown = self.shown
        moves = shown.game.truncated(shown.n_moves).text
        if not moves:
            self.say("No moves to copy: this is the start position.")
            return
        self.app.copy_to_clipboard(moves)
        index = shown.dataset_index
        where = "" if index is None else f" (or --seed {self.session.seed} --game-index {index})"
        self.say(f"Copied {shown.n_moves} moves, for --moves{where}: {moves}")

    # -- terminal size ----------------------------------------------------------------------------

    def on_resize(self, event: Resize) -> None:
        if self.is_mounted:  # before that, on_mount fits the first size
            self.fit(*event.size)

    def fit(self, width: int, height: int) -> None:
        """Pick the board's cell size and the move list's rows for a terminal of this size."""
        small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        self.set_class(small, "-too-small")
        self.query_one("#too-small", Static).update(
            f"The terminal is too small ({width}×{height}).\n"
            f"othello-tui needs at least {MIN_SIZE[0]}×{MIN_SIZE[1]}: enlarge it, or press q to quit."
        )
        self.set_class(width < NARROW_WITH_BELIEFS, "-narrow")
        cell = self.query_one("#board", Board).cell = self.query_one(BeliefBoard).cell = cell_size_for(
            width, height
        )
        self.query_one("#legend", Static).update(NARROW_LEGEND if cell[0] == 3 else LEGEND)
        self.query_one(MoveList).max_rows = 2 if height < 32 else 4
