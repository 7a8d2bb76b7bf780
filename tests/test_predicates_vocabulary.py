"""The label vocabulary beyond the board (DESIGN.md §6): move number, history relative to the
mover, flips by direction and count, squares that became mine. Checked on hand-built games with a
known history (a pass, flips in every direction, a square played then flipped) and against an
independent replay with the one-game rules."""

from __future__ import annotations

import numpy as np
import pytest

from othello_tui.features.predicates import (
    DIRECTIONS,
    PREDICATE_NAMES,
    board_predicates,
)
from othello_tui.game.generator import games_from_moves, generate_games
from othello_tui.game.rules import Game
from othello_tui.game.squares import parse_square, square_name

#: black e-5, white f-5, …, white f-7; black has no move, so white plays c-2 too (move 9)
PASS_GAME = ["e-5", "f-5", "g-5", "g-6", "c-3", "h-5", "h-7", "f-7", "c-2", "b-1"]


def true_names(row: np.ndarray, prefix: str) -> set[str]:
    return {
        PREDICATE_NAMES[p].split("=", 1)[1]
        for p in np.flatnonzero(row)
        if PREDICATE_NAMES[p].startswith(prefix)
    }


@pytest.fixture(scope="module")
def pass_game():
    squares = [parse_square(s) for s in PASS_GAME]
    return squares, board_predicates(games_from_moves([squares]))[0]


def test_history_across_a_pass_is_relative_to_the_mover(pass_game):
    squares, predicates = pass_game
    players = [m.player for m in _replay(squares)]
    assert players[7] == players[8]  # the pass: f-7 and c-2 by the same colour
    row = predicates[8]
    assert true_names(row, "played_by_me=") == {"f-5", "g-6", "h-5", "f-7"}
    assert true_names(row, "played_by_them=") == {"e-5", "g-5", "c-3", "h-7"}
    assert true_names(row, "previous=") == {"f-7"} and true_names(row, "two_back=") == {"h-7"}
    assert true_names(row, "move_number=") == {"9"} and true_names(row, "moved=") == {"white"}
    first = predicates[0]
    assert not true_names(first, "played_by_") and not true_names(first, "previous=")
    assert true_names(first, "move_number=") == {"1"} and not true_names(first, "two_back=")
    assert true_names(predicates[1], "previous=") == {"e-5"} and not true_names(predicates[1], "two_back=")


def test_a_square_played_then_flipped_stays_played_by_its_player(pass_game):
    squares, predicates = pass_game
    moves = _replay(squares)
    # find a disc that one colour played and the other later flipped, then check who "played" it
    for t, move in enumerate(moves):
        for earlier in range(t):
            if moves[earlier].square in move.flipped:
                row, played = predicates[t], square_name(moves[earlier].square)
                mine = moves[earlier].player == move.player
                assert played in true_names(row, "played_by_me=" if mine else "played_by_them=")
                assert played in true_names(row, "became_mine=") and played in true_names(row, "mine=")
                return
    pytest.fail("the hand-built game has no flipped played square")


def test_opening_flip_direction_and_count():
    predicates = board_predicates(games_from_moves([[parse_square("d-2")]]))[0, 0]
    assert true_names(predicates, "flips=") == {"right"}  # d-2 flips d-3
    assert true_names(predicates, "flip_count") == {"1"}
    assert true_names(predicates, "became_mine=") == {"d-2", "d-3"}


def test_every_direction_and_count_agrees_with_a_replay():
    games = generate_games(60, seed=11)
    predicates = board_predicates(games)
    seen_directions, seen_counts = set(), set()
    for g in range(len(games)):
        moves = _replay([int(s) for s in games.squares[g] if s >= 0])
        for t, move in enumerate(moves):
            row = predicates[g, t]
            directions = set()
            for flipped in move.flipped:
                d_row = np.sign(flipped // 8 - move.square // 8)
                d_col = np.sign(flipped % 8 - move.square % 8)
                directions.add(next(name for name, step in DIRECTIONS.items() if step == (d_row, d_col)))
            assert true_names(row, "flips=") == directions
            count = len(move.flipped)
            assert true_names(row, "flip_count") == ({str(count)} if count < 6 else {"6"})
            assert true_names(row, "became_mine=") == {square_name(s) for s in (move.square, *move.flipped)}
            me = {square_name(m.square) for m in moves[:t] if m.player == move.player}
            them = {square_name(m.square) for m in moves[:t] if m.player != move.player}
            assert true_names(row, "played_by_me=") == me and true_names(row, "played_by_them=") == them
            seen_directions |= directions
            seen_counts.add(min(count, 6))
    assert seen_directions == set(DIRECTIONS) and seen_counts == set(range(1, 7))


def _replay(squares: list[int]):
    game = Game()
    return [game.play(s) for s in squares]
