"""The contributor tree: Textual's ``Tree`` over an :class:`~othello_tui.circuits.tree.Expansion`.

The root is the target (a logit or a feature's pre-activation); under it its contributors, largest
|contribution| first, each with its node id, signed value (``+`` green, ``−`` red: the sign reads
without colour), and its label — a feature's automatic label, or what a node that is not a feature
is (error, bias, embedding), since those are shown honestly rather than hidden. A feature node
expands into its own contributors; its line then carries the sum check: the value it explains
and the sum of *all* its contributions (``Σ … ✓``), of which an ``… others`` row holds the part
not shown. The screen fetches the levels (in a worker) and hands them to :meth:`fill`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from othello_tui.circuits.export import LabelOf, node_label
from othello_tui.circuits.nodes import Node
from othello_tui.circuits.tree import Branch, Expansion

SUM_TOLERANCE = 1e-3  # relative: float32 sums of a few thousand terms
KIND_NOTES = {
    "embed": "token embedding",
    "pos": "positional embedding",
    "error": "dictionary reconstruction error",
    "bias": "dictionary decoder bias",
    "param": "bias parameter",
    "output": "whole module output (no dictionary)",
}
PLUS, MINUS = "#87d787", "#ff8787"  # light: shades of grey under NO_COLOR, with the sign as well
CHANGED = "bold #f2d94e"  # an activation the interventions changed (bold: also without colour)


@dataclass(frozen=True)
class Item:
    """What a tree line stands for. ``path``: node ids from the first level down to this node."""

    path: tuple[str, ...]
    branch: Branch | None = None  # None on the root, the "others" row and the placeholder
    kind: str = "node"  # "root", "node", "rest" or "loading"

    @property
    def node(self) -> Node | None:
        return self.branch.node if self.branch is not None else None


def minus(text: str) -> str:
    """A real minus sign: it reads better, and as wide as ``+``."""
    return text.replace("-", "−")


def signed(value: float) -> Text:
    """``+1.2345`` in green, ``−1.2345`` in red."""
    return Text(minus(f"{value:+.4f}"), style=PLUS if value >= 0 else MINUS)


def sum_check(expansion: Expansion) -> Text:
    """``= 2.3456 · Σ 2.3456 ✓``: the explained value, and the sum of all its contributions."""
    close = abs(expansion.total - expansion.value) <= SUM_TOLERANCE * max(1.0, abs(expansion.value))
    text = Text(minus(f"= {expansion.value:.4f} · Σ {expansion.total:.4f} "))
    text.append("✓" if close else f"✗ off by {expansion.total - expansion.value:+.2g}", "bold")
    return text


class ContributorTree(Tree[Item]):
    DEFAULT_CSS = """
    ContributorTree { height: 1fr; }
    """
    BINDINGS = [
        Binding("enter", "select_cursor", "open feature", tooltip="open the feature's page", id="tree.open"),
        Binding(
            "space",
            "toggle_node",
            "expand",
            tooltip="expand or collapse: a feature's own contributors",
            id="tree.toggle",
        ),
        Binding("right", "expand_cursor", "expand", show=False, tooltip="expand a feature", id="tree.expand"),
        Binding(
            "left",
            "collapse_cursor",
            "collapse",
            show=False,
            tooltip="collapse, or up to the parent",
            id="tree.collapse",
        ),
    ]

    def __init__(self, labels: LabelOf | None = None, *, id: str | None = None):
        super().__init__("", Item((), kind="root"), id=id)
        self.auto_expand = False  # Enter opens a feature's page; Space and → expand
        self.labels = labels
        self.expansion: Expansion | None = None
        self.changed: dict[str, tuple[float, float]] = {}  # feature node id -> activation before, after
        self.root_changed: tuple[float, float] | None = None  # the target's value before, after

    # -- building -----------------------------------------------------------------------------

    def show_expansion(self, expansion: Expansion) -> None:
        """Replace the tree; loaded levels are shown expanded, the cursor stays on its path."""
        cursor = self.cursor_node.data.path if self.cursor_node and self.cursor_node.data else ()
        self.expansion = expansion
        self.reset(self.root_label(), Item((), kind="root"))
        self._add_level(self.root, expansion, ())
        self.root.expand()
        found = self.find(cursor) or self.root
        self.call_after_refresh(self.move_cursor, found)

    def fill(self, tree_node: TreeNode[Item], expansion: Expansion | None) -> None:
        """The contributors of a feature node have arrived."""
        item = tree_node.data
        assert item is not None and item.branch is not None
        item.branch.expansion = expansion
        tree_node.remove_children()
        if expansion is not None:
            self._add_level(tree_node, expansion, item.path)
        tree_node.set_label(self.label(item))

    def show_loading(self, tree_node: TreeNode[Item]) -> None:
        """A "computing…" row under a node whose contributors are still on their way."""
        item = tree_node.data
        assert item is not None and item.branch is not None
        loading = item.branch.expansion is None and not tree_node.children
        if loading and any(node is tree_node for node in self.nodes_below(self.root)):  # not reloaded away
            tree_node.add_leaf(Text("computing…", "italic"), Item(item.path, kind="loading"))

    def _add_level(self, parent: TreeNode[Item], expansion: Expansion, path: tuple[str, ...]) -> None:
        for branch in expansion.branches:
            item = Item((*path, branch.node.id), branch)
            if branch.node.kind != "feature":
                parent.add_leaf(self.label(item), item)
                continue
            child = parent.add(self.label(item), item, allow_expand=True)
            if branch.expansion is not None:
                self._add_level(child, branch.expansion, item.path)
                child.expand()
        # always: with a threshold above every contribution it is the whole sum, and says so
        why = "  not shown" if expansion.branches else "  none reaches the threshold"
        rest = Text.assemble((f"  {'… others':<14} ", "dim"), signed(expansion.rest), (why, "dim"))
        parent.add_leaf(rest, Item((*path, "…"), kind="rest"))

    # -- labels -------------------------------------------------------------------------------

    def root_label(self) -> Text:
        expansion = self.expansion
        if expansion is None:
            return Text("computing…", "italic")
        target = expansion.target
        text = Text.assemble((target.spec, "bold"), f" at P{target.position} ")  # the title says the move
        text.append_text(sum_check(expansion))
        if self.root_changed is not None:
            text.append("  → ").append_text(signed(self.root_changed[1])).append(" intervened")
        return text

    def label(self, item: Item) -> Text:
        branch = item.branch
        assert branch is not None
        node = branch.node
        indent = "" if node.kind == "feature" else "  "  # under the "▶ " of expandable nodes
        text = Text.assemble(indent, (f"{node.id:<14}", "bold"), " ", signed(branch.contribution))
        if node.id in self.changed:
            before, after = self.changed[node.id]
            changed = f"{before:.3f}" != f"{after:.3f}"
            text.append(f"  c {before:.3f}→{after:.3f}", CHANGED if changed else "")
        if branch.expansion is not None:
            text.append("  ").append_text(sum_check(branch.expansion))
        label = node_label(node, self.labels)
        if label is not None:
            text.append(f"  {label}", "italic")
        elif node.kind in KIND_NOTES:
            text.append(f"  {KIND_NOTES[node.kind]}", "dim")
        return text

    def relabel(self) -> None:
        """Redraw every label (after the intervention values or a note changed)."""
        self.root.set_label(self.root_label())
        for tree_node in self.nodes_below(self.root):
            if tree_node.data is not None and tree_node.data.branch is not None:
                tree_node.set_label(self.label(tree_node.data))

    # -- queries ------------------------------------------------------------------------------

    @property
    def current(self) -> Item | None:
        return self.cursor_node.data if self.cursor_node is not None else None

    def nodes_below(self, tree_node: TreeNode[Item]) -> Iterator[TreeNode[Item]]:
        for child in tree_node.children:
            yield child
            yield from self.nodes_below(child)

    def find(self, path: tuple[str, ...]) -> TreeNode[Item] | None:
        return next(
            (n for n in self.nodes_below(self.root) if n.data is not None and n.data.path == path), None
        )

    def open_paths(self) -> set[tuple[str, ...]]:
        """Paths of the expanded feature nodes whose contributors are loaded."""
        return {
            n.data.path
            for n in self.nodes_below(self.root)
            if n.is_expanded and n.data is not None and n.data.branch is not None and n.data.branch.expansion
        }

    def feature_ids(self) -> list[str]:
        """Ids of every feature node in the tree, the root's first when it is a feature."""
        ids = [self.expansion.target.id] if self.expansion and self.expansion.target.kind == "feature" else []
        for tree_node in self.nodes_below(self.root):
            node = tree_node.data.node if tree_node.data is not None else None
            if node is not None and node.kind == "feature" and node.id not in ids:
                ids.append(node.id)
        return ids

    def shown(self) -> Expansion | None:
        """The tree as displayed: loaded levels under collapsed nodes left out."""
        if self.expansion is None:
            return None

        def prune(expansion: Expansion, path: tuple[str, ...]) -> Expansion:
            branches = []
            for branch in expansion.branches:
                here = (*path, branch.node.id)
                tree_node = self.find(here)
                kept = branch.expansion if tree_node is not None and tree_node.is_expanded else None
                branches.append(replace(branch, expansion=prune(kept, here) if kept is not None else None))
            return replace(expansion, branches=branches)

        return prune(self.expansion, ())

    # -- keys ---------------------------------------------------------------------------------

    def action_expand_cursor(self) -> None:
        node = self.cursor_node
        if node is not None and node.allow_expand and not node.is_expanded:
            node.expand()

    def action_collapse_cursor(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.is_expanded and node is not self.root:
            node.collapse()
        elif node.parent is not None:
            self.move_cursor(node.parent)
