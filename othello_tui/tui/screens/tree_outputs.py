"""The contributor tree screen's outputs: ``e`` writes the tree (JSON, the tree as
attribution-graph JSON, DOT) and the screen (SVG) to a folder, in a worker (the graph JSON hashes
every weight for its provenance and reads the game's trace); ``G`` opens the attribution graph of
the tree's target (``screens/graph.py``, which asks the backend for it).

:class:`TreeOutputs` is the tree screen's base class, kept apart so that the tree screen stays a
readable size; it reads the state the tree screen owns (declared below).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual import work
from textual.message import Message
from textual.screen import Screen

from othello_tui.circuits.graph_json import trace_graph
from othello_tui.circuits.nodes import Target
from othello_tui.circuits.provenance import Provenance
from othello_tui.circuits.tree import Expansion
from othello_tui.game.rules import Game
from othello_tui.tui.circuits_backend import CircuitsUnavailableError
from othello_tui.tui.exports import shown_depth, tree_files, write_files
from othello_tui.tui.screens.graph import GraphScreen
from othello_tui.tui.screens.prompt import PromptScreen, parse_folder
from othello_tui.tui.session import Session
from othello_tui.tui.widgets.contributor_tree import ContributorTree


class TreeOutputs(Screen):
    """Exports and the graph view, for the tree screen to inherit."""

    session: Session
    game: Game
    target: Target
    source: str
    top: int
    threshold: float | None
    game_index: int | None
    contributors: ContributorTree
    say: Callable[..., None]

    @property
    def squares(self) -> list[int]:
        return self.game.squares

    class Exported(Message):
        def __init__(self, paths: list[Path], error: str | None = None):
            super().__init__()
            self.paths, self.error = paths, error

    @work(thread=True, exclusive=True, group="tree-export")
    def write_exports(self, folder: Path, expansion: Expansion, svg: str, edits: tuple[str, ...]) -> None:
        try:
            provenance, graph = self.graph_of(expansion, edits)
            files = tree_files(expansion, self.session.labels, svg, provenance, graph, self.session.note_of)
            self.post_message(self.Exported(write_files(folder, *files)))
        except CircuitsUnavailableError as error:
            self.post_message(self.Exported([], str(error)))
        except OSError as error:
            self.post_message(self.Exported([], f"{error.strerror or error}: {error.filename or folder}"))

    def graph_of(self, expansion: Expansion, edits: tuple[str, ...]) -> tuple[Provenance, dict]:
        """The tree's provenance and its attribution graph (a worker's job: it hashes every weight)."""
        target, index = expansion.target, self.game_index
        weights = self.session.circuits.identity()
        provenance = Provenance(
            self.game.text, target.position, target.spec, self.top, self.threshold, shown_depth(expansion),
            *weights, edits, self.session.seed if index is not None else None, index,
        )  # fmt: skip
        trace = self.session.circuits.trace(self.squares, target.position + 1)
        return provenance, trace_graph(trace, expansion, provenance, self.session.labels, self.top)

    def action_graph(self) -> None:
        self.app.push_screen(GraphScreen(self.session, self.game, self.target, self.source, self.game_index))

    def on_tree_outputs_exported(self, message: Exported) -> None:
        if message.error is not None:
            self.say(message.error, "Not exported: ")
        else:
            self.say(", ".join(str(path) for path in message.paths), "Exported: ")

    def action_export(self) -> None:
        if self.contributors.expansion is None:
            self.say("Nothing to export yet: the tree is still being computed.")
            return
        prompt = PromptScreen("Export the tree to the folder (empty: ./exports)", "exports", parse_folder)
        self.app.push_screen(prompt, self.export_to)

    def export_to(self, folder: Path | None) -> None:
        expansion = self.contributors.shown()
        if folder is None or expansion is None:
            return
        svg = self.app.export_screenshot(
            title=f"othello-tui · {expansion.target.spec} at P{expansion.target.position}"
        )
        edits = tuple(edit.text for edit in self.session.circuits.edits(self.squares))
        self.write_exports(folder, expansion, svg, edits)
