"""The vectorised bitboard generator against the plain rules, perft, and properties."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from othello_tui.game import bitboard as bb
from othello_tui.game.generator import CHUNK, generate_games, random_games
from othello_tui.game.rules import BLACK, EMPTY, Game, flips, legal_moves, start_board
from othello_tui.game.squares import (
    N_MOVE_TOKENS,
    SQUARE_TO_TOKEN,
    TOKEN_TO_SQUARE,
    parse_square,
    square_name,
    square_to_token,
    token_to_square,
)

PERFT = [4, 12, 56, 244, 1396, 8200, 55092]  # Othello perft, a pass counting as a ply


def assert_matches_rules(games) -> None:
    """Every label of every move equals the plain rules' replay of the same moves."""
    board, flipped, legal = games.board(), games.flipped_mask(), games.legal_mask()
    for k in range(len(games)):
        n = int(games.lengths[k])
        game = Game.from_squares([int(s) for s in games.squares[k, :n]])
        assert game.over, "the generator stopped before the end of the game"
        for t, move in enumerate(game.moves):
            assert games.player[k, t] == move.player
            np.testing.assert_array_equal(board[k, t], move.board)
            assert np.flatnonzero(flipped[k, t]).tolist() == list(move.flipped)
            assert np.flatnonzero(legal[k, t]).tolist() == list(move.legal_next)
        assert (games.squares[k, n:] == -1).all() and (games.player[k, n:] == 0).all()
        assert not legal[k, n - 1 :].any() and (games.tokens[k, n:] == 0).all()


def test_generator_agrees_with_plain_rules_on_thousands_of_games():
    games = random_games(2000, np.random.default_rng(123))
    assert_matches_rules(games)
    # the sample holds the interesting cases: passes and games that end early
    same_player_twice = (games.player[:, 1:] == games.player[:, :-1]) & (games.player[:, 1:] != 0)
    assert same_player_twice.any()
    assert (games.lengths < 60).any()


def test_seeded_games_are_deterministic_and_prefix_stable():
    a = generate_games(CHUNK + 10, seed=5)
    b = generate_games(20, seed=5)
    np.testing.assert_array_equal(a.squares[:20], b.squares)
    np.testing.assert_array_equal(generate_games(20, seed=5).legal, b.legal)
    assert not np.array_equal(generate_games(20, seed=6).squares, b.squares)


def _bitboard_perft(depth: int) -> list[int]:
    """Leaf counts per depth, breadth-first with the vectorised move generator."""
    own, opp = np.array([bb.BB_START_BLACK]), np.array([bb.BB_START_WHITE])
    counts = []
    for _ in range(depth):
        legal = bb.legal_moves(own, opp)
        # no move: pass if the opponent can move (one child), else the game is over (none)
        passing = (legal == 0) & (bb.legal_moves(opp, own) != 0)
        bits = bb.unpack(legal)
        parent, square = np.nonzero(bits)
        move = np.uint64(1) << square.astype(np.uint64)
        flipped = bb.flips(move, own[parent], opp[parent])
        new_own = np.concatenate([opp[parent] & ~flipped, opp[passing]])
        new_opp = np.concatenate([own[parent] | move | flipped, own[passing]])
        own, opp = new_own, new_opp
        counts.append(len(own))
    return counts


def _plain_perft(board: np.ndarray, colour: int, depth: int) -> int:
    if depth == 0:
        return 1
    moves = legal_moves(board, colour)
    if not moves:
        return _plain_perft(board, -colour, depth - 1) if legal_moves(board, -colour) else 0
    total = 0
    for square in moves:
        child = board.copy()
        child[square] = colour
        child[flips(board, square, colour)] = colour
        total += _plain_perft(child, -colour, depth - 1)
    return total


def test_perft_bitboards():
    assert _bitboard_perft(7) == PERFT


def test_perft_plain_rules():
    assert [_plain_perft(start_board(), BLACK, d) for d in range(1, 5)] == PERFT[:4]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_disc_count_grows_by_one_plus_flips(seed):
    games = random_games(8, np.random.default_rng(seed))
    discs = (games.board() != EMPTY).sum(-1)  # [N, 60]
    flipped = games.flipped_mask().sum(-1)
    alive = games.squares >= 0
    previous = np.concatenate([np.full((len(games), 1), 4), discs[:, :-1]], axis=1)
    np.testing.assert_array_equal(discs[alive], previous[alive] + 1)
    # the mover's discs grow by 1 + flips, the opponent's shrink by the flips
    mover = (games.board() == games.player[..., None]).sum(-1)
    previous_board = np.concatenate(
        [np.broadcast_to(start_board(), (len(games), 1, 64)), games.board()[:, :-1]], 1
    )
    previous_mover = (previous_board == games.player[..., None]).sum(-1)
    np.testing.assert_array_equal(mover[alive], previous_mover[alive] + 1 + flipped[alive])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_replaying_generated_games_reproduces_every_label(seed):
    assert_matches_rules(random_games(4, np.random.default_rng(seed)))


@given(square=st.integers(0, 63))
def test_square_names_round_trip(square):
    name = square_name(square)
    assert parse_square(name) == square
    assert parse_square(name.replace("-", "")) == square
    assert parse_square(name.replace("-", "").upper()) == square


@given(token=st.integers(1, N_MOVE_TOKENS))
def test_tokens_round_trip(token):
    assert square_to_token(token_to_square(token)) == token


def test_token_table_skips_the_centre():
    assert TOKEN_TO_SQUARE[1] == 0 and TOKEN_TO_SQUARE[60] == 63
    assert sorted(set(range(64)) - set(TOKEN_TO_SQUARE[1:].tolist())) == [27, 28, 35, 36]
    assert (SQUARE_TO_TOKEN[[27, 28, 35, 36]] == 0).all()
    assert square_to_token(parse_square("c-2")) == 19 - 0  # c-2 is index 18, the 19th square


@given(bits=st.lists(st.booleans(), min_size=64, max_size=64))
def test_pack_unpack_round_trip(bits):
    squares = np.array(bits)
    assert (bb.unpack(bb.pack(squares)) == squares).all()


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=12), st.integers(0, 2**64 - 1))
def test_unpack_signed_is_plus_minus_minus(plus_ints, split):
    plus = np.array(plus_ints, np.uint64)
    minus = ~plus & np.uint64(split)  # disjoint from plus, as black and white discs are
    expected = bb.unpack(plus).astype(np.int8) - bb.unpack(minus).astype(np.int8)
    np.testing.assert_array_equal(bb.unpack_signed(plus, minus), expected)
    np.testing.assert_array_equal(bb.unpack_signed(plus[0], minus[0]), expected[0])
