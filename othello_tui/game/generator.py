"""Many random legal games at once, with every label the project needs.

Every move is drawn uniformly from the legal moves. Games are produced in chunks of
``CHUNK`` games from one ``numpy`` generator, so game ``k`` of seed ``s`` is the same whatever
``n`` is asked for (the corpus, the training stream and the app agree on "game 17 of seed 3").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from othello_tui.game import bitboard as bb
from othello_tui.game.rules import BLACK
from othello_tui.game.squares import SQUARE_TO_TOKEN

N_MOVES = 60
CHUNK = 4096
_ONE = np.uint64(1)


@dataclass(frozen=True)
class GameBatch:
    """``N`` games of up to 60 moves. Per move (axis 1), after the move is played:

    squares  int8  [N, 60]  board index of the move, -1 after the game ended
    player   int8  [N, 60]  +1 black / -1 white played it, 0 after the end
    black, white, flipped, legal   uint64 [N, 60]  bitboards: discs after the move, discs the
             move flipped, legal moves of the side to move next (after any implicit pass; 0 once
             the game is over)
    """

    squares: np.ndarray
    player: np.ndarray
    black: np.ndarray
    white: np.ndarray
    flipped: np.ndarray
    legal: np.ndarray

    def __len__(self) -> int:
        return len(self.squares)

    @property
    def tokens(self) -> np.ndarray:
        """uint8 [N, 60]: move tokens 1…60, 0 after the game ends."""
        return np.where(self.squares >= 0, SQUARE_TO_TOKEN[self.squares], 0).astype(np.uint8)

    @property
    def lengths(self) -> np.ndarray:
        return (self.squares >= 0).sum(axis=1)

    def board(self) -> np.ndarray:
        """int8 [N, 60, 64]: +1 black, -1 white, 0 empty after each move."""
        return bb.unpack_signed(self.black, self.white)

    def flipped_mask(self) -> np.ndarray:
        return bb.unpack(self.flipped)

    def legal_mask(self) -> np.ndarray:
        return bb.unpack(self.legal)

    def __getitem__(self, index) -> GameBatch:
        return GameBatch(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    @staticmethod
    def concatenate(batches: list[GameBatch]) -> GameBatch:
        fields = GameBatch.__dataclass_fields__
        return GameBatch(*(np.concatenate([getattr(b, f) for b in batches]) for f in fields))


def _pick_uniform(legal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each game, the index of one set bit of ``legal``, uniformly (-1 where none).

    The chosen set bit (the k-th, 0-based) sits at the largest square p with at most k set bits
    below p; p is found bit by bit from the top (a binary search, six popcounts)."""
    count = np.bitwise_count(legal)
    chosen = (rng.random(len(legal)) * count).astype(np.uint8)  # which set bit, 0 ≤ k < count
    square = np.zeros(len(legal), np.uint64)
    for width in (32, 16, 8, 4, 2, 1):
        mid = square + np.uint64(width)
        below = np.bitwise_count(legal & ((_ONE << mid) - _ONE))  # set bits under square mid
        square = np.where(below <= chosen, mid, square)
    return np.where(count > 0, square.astype(np.int64), -1)


def _play_random_games(n: int, rng: np.random.Generator) -> GameBatch:
    own = np.full(n, bb.BB_START_BLACK)  # side to move
    opp = np.full(n, bb.BB_START_WHITE)
    colour = np.full(n, BLACK, np.int8)
    legal = bb.legal_moves(own, opp)
    out = {f: np.zeros((n, N_MOVES), np.uint64) for f in ("black", "white", "flipped", "legal")}
    squares = np.full((n, N_MOVES), -1, np.int8)
    player = np.zeros((n, N_MOVES), np.int8)
    for t in range(N_MOVES):
        square = _pick_uniform(legal, rng)
        alive = square >= 0
        move = np.where(alive, _ONE << square.clip(0).astype(np.uint64), np.uint64(0))
        flipped = bb.flips(move, own, opp)
        own, opp = own | move | flipped, opp & ~flipped
        squares[:, t] = square
        player[:, t] = np.where(alive, colour, 0)
        is_black = colour == BLACK
        out["black"][:, t] = np.where(is_black, own, opp)
        out["white"][:, t] = np.where(is_black, opp, own)
        out["flipped"][:, t] = flipped
        # The opponent moves next if it can; otherwise (implicit pass) the same side again.
        legal = bb.legal_moves(opp, own)
        passing = np.flatnonzero((legal == 0) & alive)
        if len(passing):
            legal[passing] = bb.legal_moves(own[passing], opp[passing])
        switch = legal != 0
        switch[passing] = False
        own, opp = np.where(switch, opp, own), np.where(switch, own, opp)
        colour = np.where(switch, -colour, colour).astype(np.int8)
        out["legal"][:, t] = legal
    return GameBatch(squares, player, **out)


#: The games of a seed come from one random stream, so game k costs generating games 0…k
#: (about 60,000 a second): the app opens games up to this index (a few seconds at most).
MAX_GAME_INDEX = 199_999


def iter_games(n: int, seed: int) -> Iterator[GameBatch]:
    """Yield the ``n`` games of ``seed`` in chunks of at most ``CHUNK`` games."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, CHUNK):
        batch = _play_random_games(CHUNK, rng)
        yield batch[: n - start] if n - start < CHUNK else batch


def generate_games(n: int, seed: int) -> GameBatch:
    """The first ``n`` games of ``seed``."""
    return GameBatch.concatenate(list(iter_games(n, seed)))


def dataset_squares(index: int, seed: int) -> list[int]:
    """The moves (square indices) of game ``index`` of ``seed``: ``generate_games(index + 1,
    seed)``'s last game, without the −1 padding after its end."""
    if not 0 <= index <= MAX_GAME_INDEX:
        raise ValueError(f"game indices go from 0 to {MAX_GAME_INDEX:,}, not {index}")
    *_, last = iter_games(index + 1, seed)
    return [int(s) for s in last.squares[-1] if s >= 0]


def random_games(n: int, rng: np.random.Generator) -> GameBatch:
    """``n`` fresh games from a running generator (the training stream)."""
    return _play_random_games(n, rng)


def games_from_moves(move_lists: list[list[int]]) -> GameBatch:
    """The games of the given move lists (square indices, each list legal from the start), built
    by the one-game rules: for hand-built positions in tests and for games a user typed."""
    from othello_tui.game.rules import Game

    n = len(move_lists)
    squares = np.full((n, N_MOVES), -1, np.int8)
    player = np.zeros((n, N_MOVES), np.int8)
    masks = {name: np.zeros((n, N_MOVES, 64), bool) for name in ("black", "white", "flipped", "legal")}
    for g, moves in enumerate(move_lists):
        game = Game()
        for t, square in enumerate(moves):
            move = game.play(int(square))
            squares[g, t], player[g, t] = square, move.player
            masks["black"][g, t], masks["white"][g, t] = move.board == BLACK, move.board == -BLACK
            masks["flipped"][g, t, list(move.flipped)] = True
            masks["legal"][g, t, list(move.legal_next)] = True
    return GameBatch(squares, player, **{name: bb.pack(mask) for name, mask in masks.items()})
