"""Othello rules for one game at a time: plain, obviously correct, and the reference the
vectorised generator is tested against. Also the parser of user move lists.

Passes are implicit (DESIGN.md §2): when the side to move has no legal move the other side
moves again; the game ends when neither side can move.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from othello_tui.game.squares import (
    NOT_A_SQUARE,
    SquareError,
    parse_square,
    split_move_list,
    square_name,
)

BLACK, WHITE, EMPTY = 1, -1, 0
COLOUR_NAMES = {BLACK: "black", WHITE: "white"}
DIRECTIONS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def start_board() -> np.ndarray:
    """int8[64]: +1 black, -1 white, 0 empty. d-3 and e-4 white, d-4 and e-3 black."""
    board = np.zeros(64, np.int8)
    board[[27, 36]] = WHITE
    board[[28, 35]] = BLACK
    return board


def _ray(square: int, d_row: int, d_col: int) -> tuple[int, ...]:
    row, col = divmod(square, 8)
    squares = []
    row, col = row + d_row, col + d_col
    while 0 <= row < 8 and 0 <= col < 8:
        squares.append(8 * row + col)
        row, col = row + d_row, col + d_col
    return tuple(squares)


#: RAYS[s]: for each of the 8 directions, the squares from s (exclusive) to the board edge
RAYS = [[ray for d in DIRECTIONS if (ray := _ray(s, *d))] for s in range(64)]


def flips(board: np.ndarray | list[int], square: int, colour: int) -> list[int]:
    """Squares flipped if ``colour`` plays on ``square`` (empty list: not a legal move)."""
    if board[square] != EMPTY:
        return []
    flipped: list[int] = []
    for ray in RAYS[square]:
        for distance, s in enumerate(ray):
            if board[s] != -colour:
                if board[s] == colour and distance > 0:
                    flipped += ray[:distance]
                break
    return sorted(flipped)


def legal_moves(board: np.ndarray, colour: int) -> list[int]:
    cells = board.tolist()  # plain ints: much faster to index than numpy scalars
    return [s for s in range(64) if cells[s] == EMPTY and flips(cells, s, colour)]


@dataclass(frozen=True)
class Move:
    """One move of a game, with the labels the rest of the project uses."""

    square: int
    player: int  # colour that played it
    board: np.ndarray  # int8[64] after the move
    flipped: tuple[int, ...]
    next_player: int  # colour to move next (after any implicit pass); 0 once the game is over
    legal_next: tuple[int, ...]  # legal moves of next_player; empty once the game is over

    @property
    def passed(self) -> bool:
        """The opponent had no move, so the same colour moves again."""
        return self.next_player == self.player


class IllegalMoveError(ValueError):
    """A move list that cannot be played; names the move number, the move and why."""

    def __init__(self, move_number: int, move: str, reason: str):
        self.move_number, self.move, self.reason = move_number, move, reason
        super().__init__(f"move {move_number} {move!r}: {reason}")


@dataclass
class Game:
    """A game as a list of moves from the start position; grows with :meth:`play`."""

    moves: list[Move] = field(default_factory=list)

    @property
    def board(self) -> np.ndarray:
        return self.moves[-1].board if self.moves else start_board()

    @property
    def to_move(self) -> int:
        """Colour to move now; 0 once the game is over."""
        return self.moves[-1].next_player if self.moves else BLACK

    @property
    def legal(self) -> tuple[int, ...]:
        return self.moves[-1].legal_next if self.moves else (19, 26, 37, 44)

    @property
    def over(self) -> bool:
        return self.to_move == 0

    @property
    def squares(self) -> list[int]:
        return [m.square for m in self.moves]

    @property
    def text(self) -> str:
        """``"f-4 e-5 …"``: the move list as :meth:`from_text` (and every ``--moves``) reads it."""
        return " ".join(square_name(s) for s in self.squares)

    def play(self, square: int) -> Move:
        colour = self.to_move
        move_number = len(self.moves) + 1
        if colour == 0:
            raise IllegalMoveError(move_number, square_name(square), "the game is already over")
        if square not in self.legal:
            legal = ", ".join(square_name(s) for s in self.legal)
            reason = f"not legal for {COLOUR_NAMES[colour]}; legal: {legal}"
            raise IllegalMoveError(move_number, square_name(square), reason)
        board = self.board.copy()
        flipped = flips(board, square, colour)
        board[square] = colour
        board[flipped] = colour
        next_player, legal_next = next_turn(board, colour)
        board.flags.writeable = False
        move = Move(square, colour, board, tuple(flipped), next_player, tuple(legal_next))
        self.moves.append(move)
        return move

    def truncated(self, n_moves: int) -> Game:
        """The game after its first ``n_moves`` moves (a branch point)."""
        return Game(self.moves[:n_moves])

    @classmethod
    def from_squares(cls, squares: list[int]) -> Game:
        game = cls()
        for square in squares:
            game.play(square)
        return game

    @classmethod
    def from_text(cls, text: str) -> Game:
        """Parse ``"f-4 e-5 …"`` (comma or space separated); errors name the move and why."""
        game = cls()
        for number, word in enumerate(split_move_list(text), start=1):
            try:
                square = parse_square(word)
            except SquareError:
                raise IllegalMoveError(number, word, NOT_A_SQUARE) from None
            try:
                game.play(square)
            except IllegalMoveError as error:
                raise IllegalMoveError(number, word, error.reason) from None
        return game


def next_turn(board: np.ndarray, mover: int) -> tuple[int, list[int]]:
    """(colour to move next, its legal moves) after ``mover`` moved to ``board``: the other side,
    or ``mover`` again when the other side must pass; (0, []) once neither can move."""
    legal = legal_moves(board, -mover)
    if legal:
        return -mover, legal
    legal = legal_moves(board, mover)  # implicit pass, or the end of the game
    return (mover if legal else 0), legal


def disc_counts(board: np.ndarray) -> tuple[int, int]:
    """(black, white) discs on the board."""
    return int((board == BLACK).sum()), int((board == WHITE).sum())


def winner(board: np.ndarray) -> int:
    """+1 black, -1 white, 0 draw (by disc count; call it on a finished game)."""
    black, white = disc_counts(board)
    return int(np.sign(black - white))
