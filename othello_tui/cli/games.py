"""``othello-tui games``: export a corpus of random games to HDF5, or show one of them."""

from __future__ import annotations

from pathlib import Path

import click

from othello_tui.cli.groups import main
from othello_tui.game.generator import MAX_GAME_INDEX

_SEED_HELP = "Game k of a seed is the same for any --n."


@main.group(invoke_without_command=True)
@click.option("--n", "n_games", type=click.IntRange(min=1), default=None, help="Number of games to write.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help=_SEED_HELP)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="HDF5 file to write."
)
@click.pass_context
def games(ctx: click.Context, n_games: int | None, seed: int, out: Path | None) -> None:
    """Write N random legal games with every label to an HDF5 file (--n N --out FILE), or print
    one game's moves (`games show --seed S --index K`).

    Datasets: tokens uint8 [N,60], squares int8 [N,60], player int8 [N,60], board int8 [N,60,64],
    flipped bool [N,60,64], legal bool [N,60,64]; attributes seed, n_games, format_version.
    The file appears only when complete.
    """
    if ctx.invoked_subcommand is not None:
        if n_games is not None or out is not None:
            raise click.UsageError(
                f"--n and --out write games; `games {ctx.invoked_subcommand}` takes neither"
            )
        return
    if n_games is None or out is None:
        raise click.UsageError(
            "give --n N and --out FILE to write games, or `games show --index K` to print one"
        )
    from othello_tui.game.corpus import write_corpus

    if not out.parent.exists():
        raise click.ClickException(f"folder {out.parent} does not exist")
    write_corpus(out, n_games, seed)
    click.echo(f"wrote {n_games:,} games (seed {seed}) to {out}")


@games.command("show")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help=_SEED_HELP)
@click.option("--index", type=click.IntRange(0, MAX_GAME_INDEX), required=True, help="The game, 0-based.")
def show(seed: int, index: int) -> None:
    """Print game K of seed S as the move list that --moves reads, e.g.

    othello-tui trace --moves "$(othello-tui games show --seed 3 --index 17)" --target logit:e-1

    is `trace --seed 3 --game-index 17 …`, and `play --seed 3 --game-index 17` opens it.
    """
    from othello_tui.game.generator import dataset_squares
    from othello_tui.game.rules import Game

    click.echo(Game.from_squares(dataset_squares(index, seed)).text)
