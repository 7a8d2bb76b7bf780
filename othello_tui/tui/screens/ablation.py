"""The batch ablation of one feature (``b``): the feature set to 0 wherever it fires over dataset
games, computed in a worker (``CircuitsBackend.ablate``), its report in a panel over the board."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from othello_tui.circuits.nodes import CircuitError
from othello_tui.tui.circuits_backend import CircuitsUnavailableError
from othello_tui.tui.session import Session

APP_GAMES = 200  # enough for a stable mean in seconds; `othello-tui ablate --games N` for more


class AblationPanel(ModalScreen[None]):
    DEFAULT_CSS = """
    AblationPanel { align: center middle; }
    #ablation { width: 90%; max-width: 110; height: auto; border: round $accent; background: $surface;
                padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q", "dismiss", "close", id="ablation.close")]

    class Progress(Message):
        def __init__(self, text: str):
            super().__init__()
            self.text = text

    def __init__(self, session: Session, module: str, feature: int, n_games: int = APP_GAMES):
        super().__init__()
        self.session, self.module, self.feature, self.n_games = session, module, feature, n_games

    def compose(self) -> ComposeResult:
        with Vertical(id="ablation"):
            yield Static(Text(f"Ablating {self.module}{self.feature} wherever it fires", "bold"))
            yield Static(
                f"computing over {self.n_games} games of seed {self.session.seed}…", id="ablation-report"
            )
            yield Static(Text("Esc closes", "dim"))

    def on_mount(self) -> None:
        self.run_ablation()

    @work(thread=True, exclusive=True, group="ablation")
    def run_ablation(self) -> None:
        seed = self.session.seed

        def progress(done: int, total: int) -> None:
            self.post_message(self.Progress(f"computing: {done}/{total} games of seed {seed}…"))

        try:
            report = self.session.circuits.ablate(self.module, self.feature, self.n_games, seed, progress)
        except (CircuitError, CircuitsUnavailableError) as error:
            self.post_message(self.Progress(f"Not computed: {error}"))
        else:
            command = f"othello-tui ablate --feature {report.feature} --games {self.n_games} --seed {seed}"
            self.post_message(self.Progress("\n".join([*report.lines(seed), f"Reproduce: {command}"])))

    def on_ablation_panel_progress(self, message: Progress) -> None:
        self.query_one("#ablation-report", Static).update(message.text)
