"""Board predicates at every token: the vocabulary of the automatic labels and the example panels.

A token is one move of a game. Its predicates describe the board *after* that move, relative to
the player who just moved (DESIGN.md §2, "mine/theirs"):

- ``move=s``    the move was played on s
- ``flipped=s`` the move flipped s
- ``legal=s``   s is a legal next move (for whoever moves next, after any implicit pass)
- ``mine=s``, ``theirs=s``, ``empty=s``   the disc on s
- ``moved=black``, ``moved=white``   the colour that made the move (the "player" of the token)

Predicate ``p < 384`` is kind ``KINDS[p // 64]`` on square ``p % 64``; the last two are the colours.
The example panels of DESIGN.md §6 are sums of these rows over a feature's top tokens, which is
why both live in one matrix.
"""

from __future__ import annotations

import numpy as np

from othello_tui.game.generator import GameBatch
from othello_tui.game.rules import BLACK, WHITE
from othello_tui.game.squares import N_SQUARES, square_name

KINDS = ("move", "flipped", "legal", "mine", "theirs", "empty")
PLAYER_BLACK = len(KINDS) * N_SQUARES
PLAYER_WHITE = PLAYER_BLACK + 1
N_PREDICATES = PLAYER_WHITE + 1
PREDICATE_NAMES = tuple(
    [f"{kind}={square_name(s)}" for kind in KINDS for s in range(N_SQUARES)] + ["moved=black", "moved=white"]
)


def kind_columns(kind: str) -> slice:
    """The 64 predicate columns of one kind, in square order."""
    start = KINDS.index(kind) * N_SQUARES
    return slice(start, start + N_SQUARES)


def board_predicates(games: GameBatch) -> np.ndarray:
    """bool [G, 60, P]: every predicate at every move of every game (meaningless after a game's
    end, where the caller drops the padding tokens)."""
    relative = games.board() * games.player[..., None]  # +1 mine, -1 theirs, 0 empty
    move = games.squares[..., None] == np.arange(N_SQUARES)
    return np.concatenate(
        [
            move,
            games.flipped_mask(),
            games.legal_mask(),
            relative == 1,
            relative == -1,
            relative == 0,
            (games.player == BLACK)[..., None],
            (games.player == WHITE)[..., None],
        ],
        axis=-1,
    )
