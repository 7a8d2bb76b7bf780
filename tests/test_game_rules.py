"""The plain rules on positions checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from othello_tui.game.rules import (
    BLACK,
    WHITE,
    Game,
    IllegalMoveError,
    disc_counts,
    flips,
    legal_moves,
    start_board,
    winner,
)
from othello_tui.game.squares import parse_square


def board_from_rows(rows: list[str]) -> np.ndarray:
    """8 strings of 8 characters: ``x`` black, ``o`` white, ``.`` empty."""
    cells = "".join(rows)
    assert len(cells) == 64
    return np.array([{"x": BLACK, "o": WHITE, ".": 0}[c] for c in cells], np.int8)


def test_start_position_and_opening_moves():
    board = start_board()
    assert disc_counts(board) == (2, 2)
    assert board[parse_square("d-3")] == WHITE and board[parse_square("e-4")] == WHITE
    assert board[parse_square("d-4")] == BLACK and board[parse_square("e-3")] == BLACK
    # black's four opening moves, each flipping exactly one white disc
    expected = {"c-3": ["d-3"], "d-2": ["d-3"], "e-5": ["e-4"], "f-4": ["e-4"]}
    assert legal_moves(board, BLACK) == sorted(parse_square(s) for s in expected)
    for move, flipped in expected.items():
        assert flips(board, parse_square(move), BLACK) == [parse_square(s) for s in flipped]


def test_flips_in_all_eight_directions():
    board = board_from_rows(
        [
            "x..x..x.",
            ".o.o.o..",
            "..ooo...",
            "xoo.ooox",
            "..ooo...",
            ".o.o.o..",
            "x..o..x.",
            "...x....",
        ]
    )
    flipped = flips(board, parse_square("d-3"), BLACK)
    expected = ["b-1", "c-2", "b-3", "c-3", "b-5", "c-4", "d-1", "d-2", "d-4", "d-5", "d-6",
                "e-2", "f-1", "e-3", "f-3", "g-3", "e-4", "f-5"]  # fmt: skip
    assert flipped == sorted(parse_square(s) for s in expected)


def test_runs_stop_at_the_edge_and_never_wrap_to_the_next_row():
    board = board_from_rows(
        [
            "......oo",  # a-6, a-7 white: a run from a-5 eastwards reaches the edge unclosed
            "x.......",  # b-0 black: the next square in index order, reachable only by wrapping
            "........",
            "...ox...",
            "...xo...",
            "........",
            "........",
            "........",
        ]
    )
    assert flips(board, parse_square("a-5"), BLACK) == []
    board[parse_square("a-7")] = BLACK
    assert flips(board, parse_square("a-5"), BLACK) == [parse_square("a-6")]


def test_corner_move_flips_along_the_edge_and_diagonal():
    board = board_from_rows(
        [
            ".ooox...",
            "oo......",
            "o.x.....",
            "o.......",
            "x.......",
            "........",
            "........",
            "........",
        ]
    )
    expected = ["a-1", "a-2", "a-3", "b-0", "c-0", "d-0", "b-1"]
    assert flips(board, parse_square("a-0"), BLACK) == sorted(parse_square(s) for s in expected)


def test_known_wipe_out_game():
    game = Game.from_text("c-3 c-2 c-1 c-4 e-5 d-5 c-5 f-5 g-6")
    assert game.over and game.to_move == 0 and game.legal == ()
    black, white = disc_counts(game.board)
    assert white == 0 and black == 13
    assert winner(game.board) == BLACK


def test_forced_pass_lets_the_same_colour_move_again():
    game = Game.from_text("c-3 c-2 e-5 b-3 a-3 a-4 b-1 a-2")
    last = game.moves[-1]
    assert last.player == WHITE and last.passed and last.next_player == WHITE
    assert legal_moves(last.board, BLACK) == []
    game.play(parse_square("c-0"))  # white again
    assert game.moves[-1].player == WHITE


def test_game_end_and_winner_on_a_full_board():
    game = Game.from_text("c-3 c-2 c-1 c-4 e-5 d-5 c-5 f-5 g-6")
    with pytest.raises(IllegalMoveError, match="move 10 'a-0': the game is already over"):
        game.play(parse_square("a-0"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("f-4 f-5 z9", "move 3 'z9': not a square (expected a row letter a–h and a column digit 0–7"),
        ("f-4 a-0", "move 2 'a-0': not legal for white; legal: d-5, f-3, f-5"),
        ("d-3", "move 1 'd-3': not legal for black; legal: c-3, d-2, e-5, f-4"),
        ("f-4,, f-5  x", "move 3 'x': not a square"),
        ("f-4 f-4", "move 2 'f-4': not legal for white"),
        ("i-0", "move 1 'i-0': not a square"),
        ("c-8", "move 1 'c-8': not a square"),
    ],
)
def test_bad_move_lists_name_the_move_and_why(text, message):
    with pytest.raises(IllegalMoveError) as error:
        Game.from_text(text)
    assert str(error.value).startswith(message)


def test_move_list_separators_and_case():
    a = Game.from_text("f-4 f-5 e-5")
    b = Game.from_text("F4,f5 ,  E-5")
    assert a.squares == b.squares == [parse_square(s) for s in ("f-4", "f-5", "e-5")]


def test_truncated_game_branches_without_touching_the_original():
    game = Game.from_text("f-4 f-5 e-5 f-3")
    branch = game.truncated(2)
    branch.play(parse_square("c-3"))
    assert len(game.moves) == 4 and len(branch.moves) == 3
    assert (branch.moves[1].board == game.moves[1].board).all()
    assert not (branch.board == game.moves[2].board).all()
