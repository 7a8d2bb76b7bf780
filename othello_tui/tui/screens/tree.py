"""The contributor tree screen (``t``): why a logit or a feature has its value, as exact sums of
contributions (DLA for a logit, ADC for an MLP feature, OV for an attention feature, per source
position), one level at a time down to the embeddings.

The screen owns the state — the game and target, how many contributors a level shows (``+``/``−``)
and the threshold (``f``) — and fetches every level from the session's circuits backend in thread
workers; the tree widget only draws. Interventions (``a``, ``x``, ``c``) go on the session's stack
for this game, which the main screen's predictions show too; here each feature node then shows its
activation before → after. ``e`` writes the tree as JSON, attribution-graph JSON and DOT, and
the screen as SVG.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.events import Resize
from textual.message import Message
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from othello_tui.circuits.edits import Edit
from othello_tui.circuits.nodes import CircuitError, Node, Target
from othello_tui.circuits.tree import Expansion
from othello_tui.game.rules import Game
from othello_tui.tui.circuits_backend import CircuitsUnavailableError, Outcome
from othello_tui.tui.messages import OpenFeature
from othello_tui.tui.screens.note import edit_note
from othello_tui.tui.screens.prompt import PromptScreen, parse_factor, parse_threshold
from othello_tui.tui.screens.tree_keys import TREE_KEYS
from othello_tui.tui.screens.tree_outputs import TreeOutputs
from othello_tui.tui.session import Session
from othello_tui.tui.widgets.board import Board
from othello_tui.tui.widgets.contributor_tree import ContributorTree, Item
from othello_tui.tui.widgets.footer import Footer
from othello_tui.tui.widgets.interventions import InterventionList

TOP_STEPS = (3, 5, 8, 10, 15, 20, 30, 50, 100)  # contributors per level, ``+``/``−`` step through
DEFAULT_TOP = 8
NARROW = 100  # below this terminal width the side panel narrows: the tree's lines need the room
LOADING_DELAY = 0.15  # seconds before an expanding node shows "computing…"
NOTES = (
    "+ raises, − lowers its parent. Σ: all contributions; … others: those not shown.\n"
    "a→b after a feature (c a→b): its activation c without → with the interventions.\n"
    "MLP features (ADC, gates frozen) miss lower features that suppress neurons."
)


class TreeScreen(TreeOutputs):
    DEFAULT_CSS = """
    TreeScreen { layout: vertical; }
    #tree-title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    #tree-body { height: 1fr; }
    #tree-side { width: 32; height: 1fr; padding: 0 1; }
    TreeScreen.-narrow #tree-side { width: 28; }
    #tree-board-title { height: auto; margin-bottom: 1; }
    #tree-notes { color: $text-muted; height: auto; margin-top: 1; }
    #tree-message { height: auto; max-height: 3; padding: 0 1; color: $text-warning; }
    """
    BINDINGS = [*TREE_KEYS]

    class Loaded(Message):
        def __init__(self, expansion: Expansion | None, error: str | None = None):
            super().__init__()
            self.expansion, self.error = expansion, error

    class ChildrenLoaded(Message):
        def __init__(
            self, tree_node: TreeNode[Item], expansion: Expansion | None, generation: int, error: str | None
        ):
            super().__init__()
            self.tree_node, self.expansion, self.generation, self.error = (
                tree_node,
                expansion,
                generation,
                error,
            )

    class ValuesLoaded(Message):
        def __init__(self, outcome: Outcome | None):
            super().__init__()
            self.outcome = outcome

    def __init__(
        self,
        session: Session,
        game: Game,
        target: Target,
        source: str,
        jump: Callable[[int], None],
        top: int = DEFAULT_TOP,
        threshold: float | None = None,
        open_paths: frozenset[tuple[str, ...]] = frozenset(),
        game_index: int | None = None,
    ):
        """``jump(n)`` shows move n on the main board (the main screen's own path, handed down);
        ``open_paths`` are the feature nodes shown expanded at first; ``game_index``: the game is
        that dataset game of the session's seed (exports say so)."""
        super().__init__()
        self.session, self.game, self.target, self.source = session, game, target, source
        self.game_index = game_index
        self._jump = jump
        self.top, self.threshold = top, threshold
        self._first_paths = open_paths
        self._generation = 0  # bumps with every reload: children of an older tree are dropped
        self._board_position = target.position

    def compose(self) -> ComposeResult:
        yield Static(id="tree-title")
        with Horizontal(id="tree-body"):
            yield ContributorTree(self.session.labels, id="tree")
            with Vertical(id="tree-side"):
                yield Static(id="tree-board-title")
                yield Board(id="tree-board")
                yield InterventionList(id="tree-edits")
                yield Static(NOTES, id="tree-notes")
        yield Static(id="tree-message")
        yield Footer(show_command_palette=False)

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width < NARROW, "-narrow")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No key acts on a screen that never got its widgets (pushed while the app quits)."""
        return hasattr(self, "contributors")

    def on_mount(self) -> None:
        self.set_class(self.app.size.width < NARROW, "-narrow")
        try:
            self.contributors = self.query_one(ContributorTree)
        except NoMatches:  # pushed while the app quits: it never got its widgets
            return
        self.show_board(self.target.position)
        self.reload(set(self._first_paths))

    def reopen(self) -> TreeScreen:
        """The same tree anew (Backspace back from a detour; see ``navigation.py``)."""
        paths = frozenset(self.contributors.open_paths())
        return TreeScreen(
            self.session, self.game, self.target, self.source, self._jump, self.top, self.threshold, paths,
            self.game_index,
        )  # fmt: skip

    # -- state down -------------------------------------------------------------------------------

    def reload(self, open_paths: set[tuple[str, ...]] | None = None) -> None:
        """Fetch the whole tree (again: new top or threshold), with the feature nodes at
        ``open_paths`` expanded (default: those expanded now)."""
        self._generation += 1
        self.show_title()
        self.load_tree(self.contributors.open_paths() if open_paths is None else open_paths)

    def show_title(self) -> None:
        position = self.target.position
        parts = [
            "Contributor tree",
            self.source,
            f"move {position + 1} (P{position})",
            f"top {self.top} per level",
        ]
        if self.threshold is not None:
            parts.append(f"|contribution| ≥ {self.threshold:g}")
        self.query_one("#tree-title", Static).update(Text(" · ".join(parts)))

    def show_board(self, position: int) -> None:
        """The board at ``position``, with the probabilities the interventions give (once
        computed: ``show_edits`` and the values' arrival draw it again)."""
        self._board_position = position
        board = self.query_one("#tree-board", Board)
        board.view = self.session.view(self.game, position + 1)
        title = Text(f"Board at move {position + 1} (P{position})", "bold")
        if position != self.target.position:
            title.append(f"\ntarget at P{self.target.position}; j on the root returns", "dim")
        self.query_one("#tree-board-title", Static).update(title)

    def show_edits(self) -> None:
        edits = self.session.circuits.edits(self.squares)
        self.query_one(InterventionList).edits = edits
        if edits:
            self.load_values(self.contributors.feature_ids())
        elif self.contributors.changed or self.contributors.root_changed:
            self.contributors.changed, self.contributors.root_changed = {}, None
            self.contributors.relabel()
        self.show_board(self._board_position)

    def say(self, text: str, heading: str = "") -> None:
        self.query_one("#tree-message", Static).update(Text.assemble((heading, "bold"), text))

    # -- workers ----------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="tree")
    def load_tree(self, open_paths: set[tuple[str, ...]]) -> None:
        circuits = self.session.circuits
        try:
            expansion = circuits.tree(self.squares, self.target, self.top, self.threshold, open_paths)
        except (CircuitError, CircuitsUnavailableError) as error:
            self.post_message(self.Loaded(None, str(error)))
        else:
            self.post_message(self.Loaded(expansion))

    @work(thread=True, group="tree-children")
    def load_children(self, tree_node: TreeNode[Item], node: Node, generation: int) -> None:
        try:
            expansion = self.session.circuits.children(self.squares, node, self.top, self.threshold)
        except (CircuitError, CircuitsUnavailableError) as error:
            self.post_message(self.ChildrenLoaded(tree_node, None, generation, str(error)))
        else:
            self.post_message(self.ChildrenLoaded(tree_node, expansion, generation, None))

    @work(thread=True, exclusive=True, group="tree-values")
    def load_values(self, watch: list[str]) -> None:
        self.post_message(self.ValuesLoaded(self.session.circuits.run_edits(self.squares, watch)))

    def on_tree_screen_loaded(self, message: Loaded) -> None:
        if message.expansion is None:
            self.say(message.error or "nothing to show", "No tree: ")
            return
        self.contributors.show_expansion(message.expansion)
        self.show_edits()

    def on_tree_screen_children_loaded(self, message: ChildrenLoaded) -> None:
        if message.generation != self._generation:
            return  # the tree was reloaded meanwhile
        if message.error is not None:
            message.tree_node.remove_children()
            message.tree_node.collapse()
            self.say(message.error, "Not expanded: ")
            return
        self.contributors.fill(message.tree_node, message.expansion)
        if self.session.circuits.edits(self.squares):
            self.load_values(self.contributors.feature_ids())

    def on_tree_screen_values_loaded(self, message: ValuesLoaded) -> None:
        outcome, tree = message.outcome, self.contributors
        if outcome is None or tree.expansion is None:
            return
        target = tree.expansion.target
        if target.kind == "logit":
            t, token = target.position, target.token
            tree.root_changed = (
                float(outcome.logits_before_TV[t, token]),
                float(outcome.logits_after_TV[t, token]),
            )
        else:
            tree.root_changed = outcome.features.get(target.id)
        tree.changed = dict(outcome.features)
        tree.relabel()
        self.show_board(self._board_position)

    # -- tree events ------------------------------------------------------------------------------

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[Item]) -> None:
        item = event.node.data
        if item is None or item.branch is None or item.branch.expansion is not None or event.node.children:
            return
        self.load_children(event.node, item.branch.node, self._generation)
        # a placeholder only when the worker is slow: drawing the tree twice costs more than it
        self.set_timer(LOADING_DELAY, partial(self.contributors.show_loading, event.node))

    def on_tree_node_selected(self, event: Tree.NodeSelected[Item]) -> None:
        node = event.node.data.node if event.node.data is not None else None
        if node is None or node.feature_id is None:
            self.say("Only features have a page; Space expands, j shows the node's position.")
            return
        self.post_message(OpenFeature(node.feature_id))  # the features panel's path: the app opens it

    # -- actions ----------------------------------------------------------------------------------

    def action_close(self) -> None:
        self.dismiss()

    def action_top(self, step: int) -> None:
        index = min(range(len(TOP_STEPS)), key=lambda i: abs(TOP_STEPS[i] - self.top))
        self.top = TOP_STEPS[min(max(index + step, 0), len(TOP_STEPS) - 1)]
        self.reload()

    def action_threshold(self) -> None:
        prompt = PromptScreen(
            "Show only |contribution| ≥ (empty: no threshold)", "e.g. 0.05", parse_threshold
        )
        self.app.push_screen(prompt, self.set_threshold)

    def set_threshold(self, threshold: float | None) -> None:
        if threshold is None:  # Escape: keep the threshold
            return
        self.threshold = threshold or None  # 0: no threshold
        self.reload()

    def _current_node(self) -> Node | None:
        item = self.contributors.current
        return item.node if item is not None else None

    def action_jump(self) -> None:
        item = self.contributors.current
        if item is None or item.kind in ("rest", "loading"):
            self.say("Put the cursor on a node: j shows its position on the board.")
            return
        position = item.node.position if item.node is not None else self.target.position
        self.show_board(position)
        self._jump(position + 1)
        what = f"the source of {item.node.id}" if item.node is not None else "the target's move"
        self.say(f"The board is at move {position + 1} (P{position}), {what}; Esc returns to it.")

    def _current_feature(self) -> Node | None:
        node = self._current_node()
        if node is None or node.kind != "feature":
            what = "" if node is None else f"{node.id} is not a feature (only features can be changed): "
            self.say(f"{what}put the cursor on a feature node to intervene on it.")
            return None
        return node

    def action_note(self) -> None:
        node = self._current_node()
        if node is None or node.feature_id is None:
            self.say("Put the cursor on a feature node to write a note on it.")
            return

        def saved(text: str) -> None:
            self.say(text)
            self.contributors.relabel()

        edit_note(self.app, self.session, node.feature_id, saved)

    def action_ablate(self) -> None:
        if (node := self._current_feature()) is not None:
            self.push_edit(Edit(node.position, *node.feature_key, value=0.0))

    def action_scale(self) -> None:
        if (node := self._current_feature()) is not None:
            prompt = PromptScreen(f"Scale {node.id} by", "e.g. 0.5, 2 or -1", parse_factor)
            self.app.push_screen(prompt, lambda factor: self.push_edit(scaled(node, factor)))

    def push_edit(self, edit: Edit | None) -> None:
        if edit is None:
            return
        note = self.session.circuits.add_edit(self.squares, edit)
        self.say(
            f"{edit.text}; the predictions and these values show its effect.{' ' + note if note else ''}"
        )
        self.show_edits()

    def action_clear_edits(self) -> None:
        count = self.session.circuits.clear_edits()
        self.say(f"Cleared {count} intervention(s)." if count else "No interventions to clear.")
        self.show_edits()


def scaled(node: Node, factor: float | None) -> Edit | None:
    """The edit that scales feature ``node`` by ``factor`` (None: the prompt was cancelled)."""
    return None if factor is None else Edit(node.position, *node.feature_key, scale=factor)
