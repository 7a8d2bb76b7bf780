"""The main screen's circuit keys: ``t`` the contributor tree, ``w`` the attention view, ``a``/``x``
ablate or scale a feature, ``c`` clear the interventions (and ``f`` on the believed board, which
edits a belief).

``t`` picks its target at the position shown:
- in play mode, the logit of the square under the board's cursor;
- when the believed board has the keys, the probe's logit difference at its cursor square and
  layer: the class it reads minus the runner-up (``probe:L3:e-4:mine-theirs``);
- otherwise the feature under the features panel's cursor, when it is on a feature;
- otherwise the logit of the model's top prediction (without interventions: the tree explains
  the clean forward pass).

:class:`CircuitKeys` is the main screen's base class, kept apart so that the main screen stays a
readable size; it reads the state the main screen owns (declared below) and never computes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

import numpy as np
from textual.binding import Binding
from textual.screen import Screen

from othello_tui.circuits.edits import BeliefEdit, Edit
from othello_tui.circuits.nodes import Target, readout_note
from othello_tui.game.squares import SQUARE_TO_TOKEN, square_name
from othello_tui.tui.screens.ablation import AblationPanel
from othello_tui.tui.screens.attention import AttentionScreen
from othello_tui.tui.screens.note import edit_note
from othello_tui.tui.screens.prompt import PromptScreen, parse_factor
from othello_tui.tui.screens.tree import TreeScreen
from othello_tui.tui.session import Session
from othello_tui.tui.shown import Shown
from othello_tui.tui.views import ActiveFeature, PositionView
from othello_tui.tui.widgets.belief_board import EMPTY, BeliefBoard
from othello_tui.tui.widgets.board import Board
from othello_tui.tui.widgets.features import FeatureList

NO_FEATURE = "Put the features panel's cursor on a feature first (Enter on a module lists its features)."


def analysed(view: PositionView | None) -> PositionView | str:
    """``view`` when the model has run on it, else why the circuit keys cannot act yet."""
    if view is None:
        return "The model is still loading…"
    if view.n_moves == 0:
        return "The model reads moves: play or step to move 1 first."
    if view.probs is None:
        return view.predictions_note or "The model is still running…"
    return view


def tree_target(
    shown: PositionView | None,
    feature: ActiveFeature | None,
    play: bool,
    cursor: int,
    belief: tuple[int, int] | None = None,
) -> Target | str:
    """The target of ``t`` (see the module's docstring), or why there is none. ``belief`` is
    (site, square) when the believed board has the keys."""
    view = analysed(shown)
    if isinstance(view, str):
        return view
    position = view.n_moves - 1
    if belief is not None and not play:
        if view.beliefs is None:
            return view.beliefs_note or "No believed board here."
        site, square = belief
        ranked = np.argsort(-view.beliefs.probs_SQC[site, square], kind="stable")
        return Target("probe", position, square=square, site=site, classes=(int(ranked[0]), int(ranked[1])))
    if play:
        if SQUARE_TO_TOKEN[cursor] == 0:
            return (
                f"{square_name(cursor)} is a centre square, never a move: move the cursor to another square."
            )
        return Target("logit", position, square=cursor)
    if feature is not None:
        return Target("feature", position, module=feature.module, feature=feature.index)
    clean = view.probs if view.probs_before is None else view.probs_before
    assert clean is not None  # analysed
    return Target("logit", position, square=int(np.argmax(clean)))


def belief_edit(shown: PositionView | None, site: int, square: int) -> BeliefEdit | str:
    """The edit of ``f`` on the believed board: flip the disc the probe reads at ``square``
    (mine ↔ theirs), or why there is none."""
    view = analysed(shown)
    if isinstance(view, str):
        return view
    if view.beliefs is None:
        return view.beliefs_note or "No believed board here."
    reading = int(view.beliefs.reading(site)[0][square])
    if reading == EMPTY:
        return f"The probe reads {square_name(square)} as empty: f flips a believed disc (mine ↔ theirs)."
    return BeliefEdit(view.n_moves - 1, site, square, 1 - reading)


def along_feature(edit: BeliefEdit, feature: tuple[str, float] | None) -> BeliefEdit | str:
    """``edit`` pushed along ``feature``'s decoder row (``F``: the residual feature best aligned
    with the flip, and its cosine), or why there is none."""
    if feature is None:
        return f"No residual-stream dictionary reads {edit.spec.partition(':')[0]}: F needs one (f pushes along the probe)."
    return replace(edit, along=feature[0])


def feature_edit(
    shown: PositionView | None, feature: ActiveFeature | None, scale: float | None = None
) -> Edit | str:
    """The edit of ``a`` (ablate: ``scale`` None) or ``x`` (scale by ``scale``) on the feature
    under the features panel's cursor at the position shown, or why there is none."""
    view = analysed(shown)
    if isinstance(view, str):
        return view
    if feature is None:
        return NO_FEATURE
    if (why := readout_note(feature.feature_id)) is not None:
        return why
    position = view.n_moves - 1
    if scale is None:
        return Edit(position, feature.module, feature.index, value=0.0)
    return Edit(position, feature.module, feature.index, scale=scale)


#: the circuit keys, listed with the main screen's own
CIRCUIT_KEYS = [
    Binding(
        "t",
        "trace",
        "trace",
        tooltip="tree: cursor's feature, else top prediction (play: cursor square)",
        id="circuits.tree",
    ),
    Binding(
        "w",
        "attention",
        "attention",
        show=False,
        tooltip="every head's attention here; QK pairs",
        id="circuits.attention",
    ),
    Binding(
        "a",
        "ablate",
        "ablate",
        show=False,  # the footer is full at 80 columns; the help lists it
        tooltip="ablate the feature under the cursor at this move",
        id="circuits.ablate",
    ),
    Binding(
        "x",
        "scale",
        "scale",
        show=False,
        tooltip="scale the feature under the cursor by a factor",
        id="circuits.scale",
    ),
    Binding("c", "clear_edits", "clear", show=False, tooltip="clear every intervention", id="circuits.clear"),
    Binding(
        "A",
        "batch_ablate",
        "ablate over games",
        show=False,
        tooltip="ablate the feature under the cursor over dataset games: its effect on average",
        id="circuits.batch_ablate",
    ),
    Binding(
        "N",
        "note",
        "note",
        show=False,
        tooltip="write your label and notes on the feature under the cursor",
        id="circuits.note",
    ),
]


class CircuitKeys(Screen):
    """The actions of :data:`CIRCUIT_KEYS`, for the main screen to inherit. They read the state
    declared below and call the main screen's ``say()``, ``show()`` and ``action_jump(n)``."""

    session: Session
    shown: Shown
    current_view: PositionView | None
    board: Board
    belief_board: BeliefBoard
    feature_list: FeatureList
    play_mode: bool
    say: Callable[..., None]  # the main screen's one line of news
    show: Callable[[], None]  # redraw the position shown
    action_jump: Callable[[int], None]  # show move n on the board

    def on_screen_resume(self) -> None:
        if self.current_view is not None:  # the screens above may have changed the interventions
            self.show()

    def _cursor_feature(self) -> ActiveFeature | None:
        row = self.feature_list.current
        return row.feature if row is not None else None

    def _circuits_ready(self) -> bool:
        why = self.session.circuits.unavailable()
        if why is not None:
            self.say(self.session.model_error or why)
        return why is None

    def action_trace(self) -> None:
        if not self._circuits_ready():
            return
        belief = self.belief_board
        on_belief = (belief.site, belief.cursor) if belief.has_focus else None
        target = tree_target(
            self.current_view, self._cursor_feature(), self.play_mode, self.board.cursor, on_belief
        )
        if isinstance(target, str):
            self.say(target)
            return
        self.app.push_screen(
            TreeScreen(
                self.session,
                self.shown.game,
                target,
                self.shown.source,
                self.action_jump,
                game_index=self.shown.dataset_index,
            )  # fmt: skip
        )

    def action_attention(self) -> None:
        if not self._circuits_ready():
            return
        view = analysed(self.current_view)
        if isinstance(view, str):
            self.say(view)
            return
        position = view.n_moves - 1
        screen = AttentionScreen(self.session, self.shown.game, position, self.shown.source, self.action_jump)
        self.app.push_screen(screen)

    def action_ablate(self) -> None:
        self.push_edit(feature_edit(self.current_view, self._cursor_feature()))

    def action_batch_ablate(self) -> None:
        feature = self._cursor_feature()
        if feature is None:
            self.say(NO_FEATURE)
        elif (why := readout_note(feature.feature_id)) is not None:
            self.say(why)
        elif self._circuits_ready():
            self.app.push_screen(AblationPanel(self.session, feature.module, feature.index))

    def action_note(self) -> None:
        feature = self._cursor_feature()
        if feature is None:
            self.say(NO_FEATURE)
            return

        def saved(text: str) -> None:
            self.say(text)
            self.show()  # the features panel shows the label

        edit_note(self.app, self.session, feature.feature_id, saved)

    def action_scale(self) -> None:
        feature = self._cursor_feature()
        edit = feature_edit(self.current_view, feature, 1.0)  # checks there is a feature to scale
        if isinstance(edit, str):
            self.say(edit)
            return
        prompt = PromptScreen(f"Scale {edit.node_id} by", "e.g. 0.5, 2 or -1", parse_factor)
        self.app.push_screen(prompt, partial(self._scale, self.current_view, feature))

    def _scale(self, view: PositionView | None, feature: ActiveFeature | None, factor: float | None) -> None:
        if factor is not None:
            self.push_edit(feature_edit(view, feature, factor))

    def on_belief_board_flip(self, message: BeliefBoard.Flip) -> None:
        edit, feature = belief_edit(self.current_view, message.site, message.square), None
        if message.along_feature and isinstance(edit, BeliefEdit):
            feature = self.session.flip_feature(edit.site, edit.square, edit.to)
            edit = along_feature(edit, feature)
        self.push_edit(
            edit, f"(its decoder row has cosine {feature[1]:.2f} with the flip)" if feature else ""
        )

    def push_edit(self, edit: Edit | BeliefEdit | str, about: str = "") -> None:
        """Put ``edit`` on the game's stack of interventions (a string: why there is no edit);
        ``about`` says more about it in the message line."""
        if isinstance(edit, str):
            self.say(edit)
            return
        if not self._circuits_ready():
            return
        note = self.session.circuits.add_edit(self.shown.game.squares, edit)
        effect = f"the predictions from move {edit.position + 2} on show its effect (Δ); c clears."
        self.say(
            " ".join(part for part in (f"{edit.text}{' ' + about if about else ''}: {effect}", note) if part)
        )
        self.show()

    def action_clear_edits(self) -> None:
        count = self.session.circuits.clear_edits()
        self.say(f"Cleared {count} intervention(s)." if count else "No interventions to clear.")
        self.show()
