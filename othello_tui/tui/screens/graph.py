"""The graph screen (``G`` in the contributor tree): the tree merged into an attribution graph,
its nodes ranked by influence and pruned at a node threshold (``f``), with the highlighted node's
links in and out. ``Enter`` opens a feature's page; ``Esc`` returns to the tree."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Static

from othello_tui.tui.graph_view import NODE_THRESHOLD, Link, feature_of, links_of, ranked_nodes
from othello_tui.tui.messages import OpenFeature
from othello_tui.tui.screens.prompt import PromptScreen, parse_share
from othello_tui.tui.widgets.footer import Footer

LINKS_SHOWN = 12  # per direction


def _links_text(title: str, links: list[Link]) -> Text:
    text = Text(f"{title} ({len(links)})\n", "bold")
    for link in links[:LINKS_SHOWN]:
        text.append(f"  {link.weight:+9.4f}  {link.other}\n".replace("-", "−"))
    if len(links) > LINKS_SHOWN:
        text.append(f"  … {len(links) - LINKS_SHOWN} more\n", "dim")
    return text


class GraphScreen(Screen[None]):
    DEFAULT_CSS = """
    GraphScreen { layout: vertical; }
    #graph-title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    #graph-body { height: 1fr; }
    #graph-nodes { width: 3fr; height: 1fr; }
    #graph-links { width: 2fr; height: 1fr; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape", "close", "back", tooltip="back to the tree", id="graph.back"),
        Binding(
            "f",
            "threshold",
            "threshold",
            tooltip="node threshold: cumulative influence share",
            id="graph.threshold",
        ),
        Binding(
            "enter",
            "open",
            "open feature",
            tooltip="the highlighted feature's page",
            id="graph.open",
            priority=True,
        ),
    ]

    def __init__(self, graph: dict, source: str, threshold: float = NODE_THRESHOLD):
        super().__init__()
        self.graph, self.source, self.threshold = graph, source, threshold
        self.shown: list[dict] = []

    def compose(self) -> ComposeResult:
        yield Static(id="graph-title")
        with Horizontal(id="graph-body"):
            yield DataTable(id="graph-nodes", cursor_type="row", zebra_stripes=True)
            yield Static(id="graph-links")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("#", "node", "activation", "influence", "label")
        self.fill()
        table.focus()

    def fill(self) -> None:
        self.shown = ranked_nodes(self.graph, self.threshold)
        table = self.query_one(DataTable)
        table.clear()
        for rank, node in enumerate(self.shown, 1):
            value = node.get("activation")
            label = node["clerp"].partition(": ")[2] if ": " in node["clerp"] else node["clerp"]
            activation = "" if value is None else f"{value:.4f}"
            table.add_row(str(rank), node["node_id"], activation, f"{100 * node['influence']:.1f}%", label)
        n_nodes = len(self.graph["nodes"])
        self.query_one("#graph-title", Static).update(
            Text(
                f"Attribution graph · {self.source} · {len(self.shown)} of {n_nodes} nodes"
                f" (cumulative influence ≤ {self.threshold:.0%}; f changes it)"
            )
        )
        self.show_links(0)

    def show_links(self, row: int) -> None:
        if not self.shown:
            return
        node = self.shown[min(row, len(self.shown) - 1)]
        kept = {n["node_id"] for n in self.shown}
        incoming, outgoing = links_of(self.graph, node["node_id"], kept)
        text = Text(node["node_id"] + "\n", "bold")
        text.append(node["clerp"] + "\n\n", "italic")
        text.append_text(_links_text("in: its contributors", incoming)).append("\n")
        text.append_text(_links_text("out: what it feeds", outgoing))
        self.query_one("#graph-links", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_links(event.cursor_row)

    def action_close(self) -> None:
        self.dismiss()

    def action_open(self) -> None:
        row = self.query_one(DataTable).cursor_row
        feature = feature_of(self.shown[row]) if 0 <= row < len(self.shown) else None
        if feature is None:
            self.notify("Only features have a page.", severity="warning")
            return
        self.post_message(OpenFeature(feature))

    def action_threshold(self) -> None:
        prompt = PromptScreen(
            "Node threshold: cumulative influence share (0–1, e.g. 0.8)", "0.8", parse_share
        )
        self.app.push_screen(prompt, self.set_threshold)

    def set_threshold(self, share: float | None) -> None:
        if share is not None:
            self.threshold = share
            self.fill()
