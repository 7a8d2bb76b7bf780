"""Widget logic without a running app: what each board cell shows, the cell size for a terminal,
and where the feature list's cursor lands after the rows change."""

from __future__ import annotations

import numpy as np

from othello_tui.game.rules import Game
from othello_tui.tui.screens.main import cell_size_for
from othello_tui.tui.session import Session
from othello_tui.tui.views import ActiveFeature
from othello_tui.tui.widgets.board import cell_faces
from othello_tui.tui.widgets.features import Row, _same_place


def view_after(moves: str, probs: dict[int, float] | None = None):
    """The rules' view of a position, with hand-set probabilities when given."""
    game = Game.from_text(moves)
    view = Session(lambda: None).view(game, len(game.moves))
    if probs is None:
        return view
    array = np.zeros(64, np.float32)
    for square, p in probs.items():
        array[square] = p
    return view.__class__(**{**view.__dict__, "probs": array})


def test_every_cell_says_what_it_is_in_symbols():
    view = view_after("f-4")  # black on f-4 (44) flips e-4 (36); white to move
    texts = [text for text, _, _ in cell_faces(view, overlay=False, cursor=None, cell_width=3)]
    assert texts[44] == "[●]" and texts[36] == "(●)" and texts[35] == "●"
    assert texts[27] == "○" and texts[0] == "·"
    assert [s for s, t in enumerate(texts) if t == "+"] == sorted(view.legal)


def test_the_overlay_writes_percentages_and_flags_wrong_ones():
    view = view_after("f-4", {29: 0.31, 0: 0.12, 1: 0.02, 2: 0.004})
    assert 29 in view.legal and 0 not in view.legal
    faces = cell_faces(view, overlay=True, cursor=None, cell_width=3)
    assert faces[29][0] == "31" and faces[29][1] == "prob_hi"
    faces = cell_faces(view, overlay=True, cursor=None, cell_width=5)
    assert faces[0] == ("12!", "wrong", faces[0][2])  # loud: at least WRONG_LOUD
    assert faces[1][:2] == ("2!", "wrong_quiet")  # an illegal bet too small to shout about
    assert faces[2][0] == "·"  # below OVERLAY_MIN: nothing written
    off = cell_faces(view, overlay=False, cursor=None, cell_width=3)
    assert off[29][0] == "+" and off[0][0] == "·"


def test_no_cell_text_fills_the_smallest_cell_but_the_bracketed_discs():
    """Three characters in a 3-wide cell touch the neighbour's ("[●] 4951!"): only the brackets
    of the last move and the flips, which delimit themselves, may fill it."""
    view = view_after("f-4", {0: 0.12, 1: 0.02, 29: 0.31})
    narrow = cell_faces(view, overlay=True, cursor=None, cell_width=3)
    assert narrow[0][:2] == ("!", "wrong") and narrow[1][0] == "2!"
    assert [t for t, _, _ in narrow if len(t) == 3] == ["(●)", "[●]"]
    assert cell_faces(view, overlay=True, cursor=None, cell_width=5)[0][0] == "12!"


def test_the_cursor_brackets_the_cell_when_it_fits():
    view = view_after("f-4", {29: 0.31})
    assert cell_faces(view, False, cursor=29, cell_width=3)[29][:2] == ("›+‹", "cursor")
    assert cell_faces(view, True, cursor=29, cell_width=3)[29][0] == "31"  # no room for ›‹
    assert cell_faces(view, True, cursor=29, cell_width=5)[29][0] == "›31‹"


def test_cell_size_grows_with_the_terminal():
    assert cell_size_for(80, 24) == (3, 1)
    assert cell_size_for(120, 40) == (5, 2)
    assert cell_size_for(160, 50) == (7, 3)
    assert cell_size_for(50, 15) == (3, 1)  # too small anyway: the smallest


def test_the_feature_cursor_stays_on_the_same_module_and_rank():
    def feature(module, index):
        return ActiveFeature(module, index, 1.0, None)

    old_rows = [
        Row("L0A", count=3),
        *(Row("L0A", feature("L0A", i), i) for i in range(3)),
        Row("L0M", count=1),
    ]
    new_rows = [
        Row("L0A", count=2),
        *(Row("L0A", feature("L0A", i), i) for i in range(2)),
        Row("L0M", count=4),
    ]
    assert _same_place(new_rows, old_rows[2], 0) == 2  # rank 1 of L0A is still there
    assert _same_place(new_rows, old_rows[3], 0) == 2  # rank 2 is gone: the last one left
    assert _same_place(new_rows, old_rows[4], 0) == 3  # a header stays on its header
    assert _same_place([Row("L1A", count=1)], old_rows[4], 5) == 0  # module gone: clamp
