"""The options that name a game, shared by every command that reads one: ``--moves`` (a move
list) or ``--seed S --game-index K`` (game K of the dataset games of seed S, the numbering of
``play``, ``games`` and ``games show``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from othello_tui.game.generator import MAX_GAME_INDEX

F = TypeVar("F", bound=Callable[..., Any])  # a command function, before click.command
MOVES_HELP = 'The game so far, e.g. "f-4 f-5 c-3" (commas or spaces between moves).'


def game_options(
    moves_help: str = MOVES_HELP, seed_help: str = "Seed of the --game-index games."
) -> Callable[[F], F]:
    """``--moves``, ``--game-index`` and ``--seed`` (parameters ``moves``, ``game_index``, ``seed``)."""

    def decorate(command: F) -> F:
        for option in reversed(
            (
                click.option("--moves", default=None, help=moves_help),
                click.option(
                    "--game-index",
                    type=click.IntRange(min=0, max=MAX_GAME_INDEX),
                    default=None,
                    help="Use game K of --seed instead of --moves (`othello-tui games show` prints it).",
                ),
                click.option(
                    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help=seed_help
                ),
            )
        ):
            command = option(command)
        return command

    return decorate


def chosen_game(moves: str | None, game_index: int | None, seed: int, required: bool = True):
    """The :class:`~othello_tui.game.rules.Game` the options name (None when neither is given and
    it is not ``required``); a bad move list or both options at once are clear errors."""
    from othello_tui.game.generator import dataset_squares
    from othello_tui.game.rules import Game, IllegalMoveError

    check_one_game(moves, game_index)
    if game_index is not None:
        return Game.from_squares(dataset_squares(game_index, seed))
    if moves is None:
        if required:
            raise click.UsageError('give the game: --moves "f-4 f-5 …" or --game-index K [--seed S]')
        return None
    try:
        return Game.from_text(moves)
    except IllegalMoveError as error:
        raise click.ClickException(f"--moves: {error}") from None


def check_one_game(moves: str | None, game_index: int | None) -> None:
    if moves is not None and game_index is not None:
        raise click.UsageError("give --moves or --game-index, not both")
