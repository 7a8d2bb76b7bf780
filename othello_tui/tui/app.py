"""``othello-tui play``: the Textual app. Small on purpose: the screens hold the views, the
session (no Textual) holds the model and the computations."""

from __future__ import annotations

from pathlib import Path

from textual import events
from textual.app import App
from textual.binding import Binding

from othello_tui.game.rules import Game
from othello_tui.session_file import DEFAULT_PATH, SavedSession, save_session, unused_path
from othello_tui.tui.commands import OthelloCommands
from othello_tui.tui.feature_commands import FeatureCommands
from othello_tui.tui.idle_gc import CHECK_EVERY_SECONDS, IdleCollector
from othello_tui.tui.messages import ModelLoaded, OpenFeature, OpenTree, ShowGame
from othello_tui.tui.screens.attention import AttentionScreen
from othello_tui.tui.screens.feature import FeatureScreen
from othello_tui.tui.screens.graph import GraphScreen
from othello_tui.tui.screens.help import HelpScreen
from othello_tui.tui.screens.main import MainScreen
from othello_tui.tui.screens.tree import TreeScreen
from othello_tui.tui.session import Session
from othello_tui.tui.session_saving import capture, reopen, restore_edits, shown_of
from othello_tui.tui.shown import Shown
from othello_tui.tui.widgets.belief_board import BeliefBoard
from othello_tui.tui.widgets.board import Board
from othello_tui.tui.widgets.contributor_tree import ContributorTree
from othello_tui.tui.widgets.cursor_list import CursorList
from othello_tui.tui.widgets.examples import ExampleList
from othello_tui.tui.widgets.features import FeatureList

SCREENSHOT_FOLDER = Path("exports")


class OthelloApp(App):
    TITLE = "othello-tui"
    COMMANDS = App.COMMANDS | {OthelloCommands, FeatureCommands}
    BINDINGS = [
        Binding("q", "quit", "quit", id="app.quit"),
        Binding("question_mark", "help", "help", key_display="?", id="app.help"),
        Binding("ctrl+p", "command_palette", "commands", id="app.commands"),
        Binding(
            "S",
            "save_session",
            "save session",
            show=False,
            tooltip="save game, move, edits, screen (play --session)",
            id="app.save_session",
        ),
    ]

    def __init__(
        self,
        session: Session,
        game: Game | None = None,
        game_index: int = 0,
        saved: SavedSession | None = None,
        session_path: Path | None = None,
    ):
        super().__init__()
        restored = shown_of(saved) if saved is not None else None
        self.main_screen = MainScreen(session, game, game_index, restored)
        self.saved, self.session_path = saved, session_path  # reopened once the model loads
        self.collector = IdleCollector()

    def on_mount(self) -> None:
        self.collector.start()
        self.set_interval(CHECK_EVERY_SECONDS, self.collector.collect_if_idle)

    def on_unmount(self) -> None:
        self.collector.stop()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseDown)):
            self.collector.touch()
        await super().on_event(event)

    def get_default_screen(self) -> MainScreen:
        return self.main_screen

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(
                HelpScreen(
                    [
                        ("Game", MainScreen.BINDINGS),
                        ("Play mode (board)", Board.BINDINGS),
                        ("Believed board (b)", BeliefBoard.BINDINGS),
                        ("Features panel", FeatureList.BINDINGS),
                        ("Lists", CursorList.BINDINGS),
                        ("Feature page", FeatureScreen.BINDINGS),
                        ("Top examples", ExampleList.BINDINGS),
                        ("Contributor tree (t)", [*ContributorTree.BINDINGS, *TreeScreen.BINDINGS]),
                        ("Attention view (w)", AttentionScreen.BINDINGS),
                        ("Graph (G in a tree)", GraphScreen.BINDINGS),
                        ("Everywhere", OthelloApp.BINDINGS),
                    ]
                )
            )

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """The palette's "Save screenshot": an SVG in ``path`` (default ./exports, where the tree
        exports go; Textual's own default, the Downloads folder, is often missing on a server),
        saying where it went, or why it could not be written."""
        folder = Path(path or SCREENSHOT_FOLDER).expanduser()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            written = self.save_screenshot(filename, str(folder))
        except OSError as error:
            reason = f"{error.strerror or error}: {error.filename or folder}"
            self.notify(reason, title="Screenshot not saved", severity="error", timeout=10)
        else:
            self.notify(f"Saved to {written}", title="Screenshot")

    def on_open_feature(self, message: OpenFeature) -> None:
        """A feature's page on top of the current screen, its activations in the main screen's game."""
        main = self.main_screen
        shown = main.shown
        self.push_screen(
            FeatureScreen(main.session, message.feature_id, shown.game, shown.n_moves, shown.source)
        )

    def on_open_tree(self, message: OpenTree) -> None:
        """A contributor tree on top of the current screen, in the main screen's game."""
        main = self.main_screen
        shown = main.shown
        self.push_screen(
            TreeScreen(
                main.session,
                shown.game,
                message.target,
                shown.source,
                main.action_jump,
                game_index=shown.dataset_index,
            )  # fmt: skip
        )

    def on_model_loaded(self, message: ModelLoaded) -> None:
        """After the main screen's own handling: the restored session's interventions and screen."""
        saved, self.saved = self.saved, None
        if saved is None or message.error:
            return
        main = self.main_screen
        problems = restore_edits(main, saved.interventions)
        if saved.screen is not None:
            screen = reopen(saved.screen, main)
            if isinstance(screen, str):
                problems.append(screen)
            else:
                self.push_screen(screen)
        main.show()
        if problems:
            text = "; ".join(problems)
            main.say(text, "Session: left out ")
            self.notify(text, title="Session: left out", severity="warning", timeout=10)

    def action_save_session(self) -> None:
        """Save the session to ``--session FILE``, else to a new file in the current folder
        (never over another), from any screen."""
        path = self.session_path or unused_path(DEFAULT_PATH)
        try:
            save_session(path, capture(self.main_screen, self.screen))
        except OSError as error:
            reason = f"{error.strerror or error}: {error.filename or path}"
            self.notify(reason, title="Session not saved", severity="error", timeout=10)
            return
        self.session_path = path
        self.notify(f"play --session {path} restores it.", title=f"Session saved to {path}")

    def on_show_game(self, message: ShowGame) -> None:
        self.main_screen.visit(Shown(message.game, message.n_moves, message.source, message.index))


def make_app(
    session: Session,
    game: Game | None = None,
    game_index: int = 0,
    saved: SavedSession | None = None,
    session_path: Path | None = None,
) -> OthelloApp:
    """The app on ``saved`` (a restored session), else ``game`` (e.g. parsed from ``--moves``),
    else on game ``game_index`` of the session's seed; ``S`` saves to ``session_path``. Used by
    the CLI and the tests alike."""
    return OthelloApp(session, game, game_index, saved, session_path)
