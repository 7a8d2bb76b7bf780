"""The attribution graph screen (``G`` in the contributor tree): the exact direct contributions
among the nodes that matter to the tree's target, each node once (``circuits/graph.py``), built by
the circuits backend in a worker and pruned as circuit-tracer prunes. Nodes are listed by
influence; beside them, the highlighted node's links in and out.

Keys: ``f`` node threshold, ``l`` link (edge) threshold, ``b`` how many features are expanded,
``e`` writes the graph JSON; ``Enter`` opens a feature's page, or, on a link, goes to the node at
its other end (``Tab`` moves between the lists); ``Esc`` returns to the tree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from othello_tui.circuits.nodes import CircuitError, Target
from othello_tui.circuits.provenance import Provenance
from othello_tui.circuits.pruning import GraphSettings
from othello_tui.game.rules import Game
from othello_tui.tui.circuits_backend import CircuitsUnavailableError
from othello_tui.tui.exports import write_files
from othello_tui.tui.graph_view import GraphView, Link, feature_of
from othello_tui.tui.messages import OpenFeature
from othello_tui.tui.screens.prompt import PromptScreen, parse_count, parse_folder, parse_share
from othello_tui.tui.session import Session
from othello_tui.tui.widgets.footer import Footer

MAX_BUDGET = 1000  # features a graph may expand from the app (seconds at most on a laptop CPU)


def _label(clerp: str) -> str:
    return clerp.partition(": ")[2] if ": " in clerp else clerp


class GraphScreen(Screen[None]):
    DEFAULT_CSS = """
    GraphScreen { layout: vertical; }
    #graph-title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    #graph-body { height: 1fr; }
    #graph-nodes { width: 3fr; height: 1fr; }
    #graph-side { width: 2fr; height: 1fr; padding: 0 1; }
    #graph-node { height: auto; }
    #graph-links { height: 1fr; }
    #graph-message { height: auto; max-height: 3; padding: 0 1; color: $text-warning; }
    """
    BINDINGS = [
        Binding("escape", "close", "back", tooltip="back to the tree", id="graph.back"),
        Binding(
            "f",
            "node_threshold",
            "nodes",
            tooltip="node threshold: keep the most influential nodes up to this share of influence",
            id="graph.node_threshold",
        ),
        Binding(
            "l",
            "edge_threshold",
            "links",
            tooltip="link (edge) threshold: keep the most influential links up to this share",
            id="graph.edge_threshold",
        ),
        Binding("b", "budget", "budget", tooltip="how many features the graph expands", id="graph.budget"),
        Binding(
            "e",
            "export",
            "export",
            tooltip="write the graph JSON (Neuronpedia, circuit-tracer)",
            id="graph.export",
        ),
        Binding(
            "enter",
            "open",
            "open",
            tooltip="a feature's page; on a link, the node at its other end",
            id="graph.open",
            priority=True,
        ),
    ]

    class Loaded(Message):
        def __init__(self, graph: dict | None, error: str | None = None):
            super().__init__()
            self.graph, self.error = graph, error

    class Exported(Message):
        def __init__(self, path: Path | None, error: str | None = None):
            super().__init__()
            self.path, self.error = path, error

    def __init__(
        self,
        session: Session,
        game: Game,
        target: Target,
        source: str,
        game_index: int | None = None,
        settings: GraphSettings | None = None,
    ):
        """``game_index``: the game is that dataset game of the session's seed (exports say so)."""
        super().__init__()
        self.session, self.game, self.target, self.source = session, game, target, source
        self.game_index = game_index
        self.settings = settings or GraphSettings()
        self.view: GraphView | None = None
        self._links: list[Link] = []  # the links table's rows: in, then out

    def compose(self) -> ComposeResult:
        yield Static(id="graph-title")
        with Horizontal(id="graph-body"):
            yield DataTable(id="graph-nodes", cursor_type="row", zebra_stripes=True)
            with Vertical(id="graph-side"):
                yield Static(id="graph-node")
                yield DataTable(id="graph-links", cursor_type="row")
        yield Static(id="graph-message")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#graph-nodes", DataTable).add_columns("#", "node", "activation", "influence", "label")
        self.query_one("#graph-links", DataTable).add_columns("", "weight", "node", "label")
        self.reload()

    # -- state down -------------------------------------------------------------------------------

    def reload(self) -> None:
        """Fetch the graph at the current settings (the backend builds it once per budget)."""
        nodes = self.query_one("#graph-nodes", DataTable)
        nodes.loading = True
        nodes.focus()
        settings = self.settings
        self.show_title(f"computing (≤ {settings.max_features} features)…")
        self.load(settings)

    def show_title(self, state: str) -> None:
        settings = self.settings
        parts = [
            "Attribution graph",
            self.source,
            state,
            f"nodes {settings.node_threshold:.0%} of influence (f)",
            f"links {settings.edge_threshold:.0%} (l)",
        ]
        self.query_one("#graph-title", Static).update(Text(" · ".join(parts)))

    def say(self, text: str, heading: str = "") -> None:
        self.query_one("#graph-message", Static).update(Text.assemble((heading, "bold"), text))

    def fill(self, view: GraphView) -> None:
        self.view = view
        table = self.query_one("#graph-nodes", DataTable)
        table.clear()
        for rank, node in enumerate(view.nodes, 1):
            value, share = node.get("activation"), node["influence"]
            table.add_row(
                str(rank),
                node["node_id"],
                "" if value is None else f"{value:.4f}",
                "root" if share is None else f"{100 * share:.1f}%",
                _label(node["clerp"]),
            )
        expanded = view.graph["metadata"]["generation_settings"]["expanded_features"]
        self.show_title(f"{len(view.nodes)} nodes, {len(view.graph['links'])} links, {expanded} features (b)")
        self.show_links(0)

    def show_links(self, row: int) -> None:
        if self.view is None or not self.view.nodes:
            return
        node = self.view.nodes[min(row, len(self.view.nodes) - 1)]
        incoming, outgoing = self.view.links(node["node_id"])
        text = Text(node["node_id"] + "\n", "bold")
        text.append(node["clerp"] + "\n", "italic")
        text.append(f"in: {len(incoming)} contributors · out: feeds {len(outgoing)}", "dim")
        self.query_one("#graph-node", Static).update(text)
        table = self.query_one("#graph-links", DataTable)
        table.clear()
        self._links = [*incoming, *outgoing]
        for n, link in enumerate(self._links):
            label = _label(self.view.clerp(link.other))
            weight = f"{link.weight:+.4f}".replace("-", "−")
            table.add_row("in" if n < len(incoming) else "out", weight, link.other, label)

    # -- workers ----------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="graph")
    def load(self, settings: GraphSettings) -> None:
        circuits, index = self.session.circuits, self.game_index
        try:
            provenance = Provenance.of_graph(
                self.game.text, self.target.position, self.target.spec, settings, *circuits.identity(),
                self.session.seed if index is not None else None, index,
            )  # fmt: skip
            graph = circuits.graph(self.game.squares, self.target, settings, provenance, self.session.labels)
        except (CircuitError, CircuitsUnavailableError) as error:
            self.post_message(self.Loaded(None, str(error)))
        else:
            self.post_message(self.Loaded(graph))

    @work(thread=True, exclusive=True, group="graph-export")
    def write_export(self, folder: Path, graph: dict) -> None:
        try:
            [path] = write_files(
                folder, graph["metadata"]["slug"], {".json": json.dumps(graph, indent=2) + "\n"}
            )
        except OSError as error:
            self.post_message(self.Exported(None, f"{error.strerror or error}: {error.filename or folder}"))
        else:
            self.post_message(self.Exported(path))

    def on_graph_screen_loaded(self, message: Loaded) -> None:
        self.query_one("#graph-nodes", DataTable).loading = False
        if message.graph is None:
            self.show_title("no graph")
            self.say(message.error or "", "No graph: ")
            return
        self.fill(GraphView(message.graph))

    def on_graph_screen_exported(self, message: Exported) -> None:
        if message.path is None:
            self.say(message.error or "", "Not exported: ")
        else:
            self.say(str(message.path), "Exported: ")

    # -- events and actions -----------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "graph-nodes":
            self.show_links(event.cursor_row)

    def action_close(self) -> None:
        self.dismiss()

    def action_open(self) -> None:
        if self.view is None:
            return
        links = self.query_one("#graph-links", DataTable)
        nodes = self.query_one("#graph-nodes", DataTable)
        if links.has_focus:
            if 0 <= links.cursor_row < len(self._links):
                nodes.move_cursor(row=self.view.row_of[self._links[links.cursor_row].other])
                nodes.focus()
            return
        row = nodes.cursor_row
        feature = feature_of(self.view.nodes[row]) if 0 <= row < len(self.view.nodes) else None
        if feature is None:
            self.say("Only features have a page; Tab then Enter follows a link.")
            return
        self.post_message(OpenFeature(feature))

    def ask(self, setting: str, title: str, parse: Callable[[str], float]) -> None:
        """Prompt for one of the settings (its value now as the placeholder), then fetch the graph."""

        def chosen(value: float | None) -> None:
            if value is not None:
                changes: dict[str, Any] = {setting: value}  # an int for the budget
                self.settings = replace(self.settings, **changes)
                self.reload()

        self.app.push_screen(PromptScreen(title, f"{getattr(self.settings, setting):g}", parse), chosen)

    def action_node_threshold(self) -> None:
        title = "Node threshold: keep nodes up to this cumulative share of influence (0–1)"
        self.ask("node_threshold", title, parse_share)

    def action_edge_threshold(self) -> None:
        title = "Link threshold: keep links up to this cumulative share of influence (0–1)"
        self.ask("edge_threshold", title, parse_share)

    def action_budget(self) -> None:
        title = f"Features to expand, most influential first (0–{MAX_BUDGET:,})"
        self.ask("max_features", title, lambda text: parse_count(text, MAX_BUDGET))

    def action_export(self) -> None:
        if self.view is None:
            self.say("Nothing to export yet: the graph is still being computed.")
            return
        prompt = PromptScreen("Export the graph to the folder (empty: ./exports)", "exports", parse_folder)
        self.app.push_screen(prompt, self.export_to)

    def export_to(self, folder: Path | None) -> None:
        if folder is not None and self.view is not None:
            self.write_export(folder, self.view.graph)
