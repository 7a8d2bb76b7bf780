"""``othello-tui games``: export a corpus of random games to HDF5."""

from __future__ import annotations

from pathlib import Path

import click

from othello_tui.cli.groups import main


@main.command()
@click.option("--n", "n_games", type=click.IntRange(min=1), required=True, help="Number of games.")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Game k of a seed is the same for any --n.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="HDF5 file to write."
)
def games(n_games: int, seed: int, out: Path) -> None:
    """Write N random legal games with every label to an HDF5 file.

    Datasets: tokens uint8 [N,60], squares int8 [N,60], player int8 [N,60], board int8 [N,60,64],
    flipped bool [N,60,64], legal bool [N,60,64]; attributes seed, n_games, format_version.
    The file appears only when complete.
    """
    from othello_tui.game.corpus import write_corpus

    if not out.parent.exists():
        raise click.ClickException(f"folder {out.parent} does not exist")
    write_corpus(out, n_games, seed)
    click.echo(f"wrote {n_games:,} games (seed {seed}) to {out}")
