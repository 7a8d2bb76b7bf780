"""``othello-tui play``: the interactive board (a Textual app). ``serve.py`` serves the same
command in a browser, so its options live here once (``play_options``, ``play_arguments``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from othello_tui.cli.game_args import check_one_game, chosen_game, game_options
from othello_tui.cli.groups import DEFAULT_CACHE_DIR, main
from othello_tui.cli.loading import dictionaries_option, weights_option

_OPTIONS = (
    game_options(
        moves_help='Start on this game, e.g. "f-4 f-5 c-3" (commas or spaces).',
        seed_help="Seed of the dataset games (n, g, and --game-index).",
    ),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
    weights_option(),
    dictionaries_option,
    click.option(
        "--cache",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Feature cache for labels and feature pages (default: the newest one in cache/ built for --weights).",
    ),
    click.option(
        "--no-build",
        is_flag=True,
        help="Do not build a missing feature cache in the background (`othello-tui cache build` does).",
    ),
)


def play_options(command: Callable) -> Callable:
    """The options of ``play`` (``moves``, ``game_index``, ``seed``, ``device``, ``weights``,
    ``config_file``, ``dictionaries_dir``, ``cache``, ``no_build``), on ``command`` too."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def starting_game(moves: str | None, game_index: int | None, seed: int):
    """The starting game of ``--moves``, or None (the app loads a ``--game-index`` game itself, in a
    worker); a usage error for bad moves or both options."""
    check_one_game(moves, game_index)
    return chosen_game(moves, None, seed, required=False)


def play_arguments(
    moves: str | None,
    game_index: int | None,
    seed: int,
    device: str,
    weights: Path,
    config_file: Path | None,
    dictionaries_dir: Path | None,
    cache: Path | None,
    no_build: bool,
) -> list[str]:
    """The ``play`` command line that repeats these options (paths made absolute)."""
    arguments = ["play", "--seed", str(seed), "--device", device, "--weights", str(Path(weights).resolve())]
    if moves is not None:
        arguments += ["--moves", moves]
    if game_index is not None:
        arguments += ["--game-index", str(game_index)]
    if config_file is not None:
        arguments += ["--config", str(Path(config_file).resolve())]
    if dictionaries_dir is not None:
        arguments += ["--dictionaries", str(Path(dictionaries_dir).resolve())]
    if cache is not None:
        arguments += ["--cache", str(Path(cache).resolve())]
    if no_build:
        arguments.append("--no-build")
    return arguments


@main.command()
@play_options
@click.option(
    "--session",
    "session_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Restore the session saved in FILE (if it exists); S saves to it.",
)
def play(
    moves: str | None,
    game_index: int | None,
    seed: int,
    device: str,
    weights: Path,
    config_file: Path | None,
    dictionaries_dir: Path | None,
    cache: Path | None,
    no_build: bool,
    session_file: Path | None,
) -> None:
    """Step through or play Othello games and watch the model predict the next move.

    The board is usable at once; the model loads in the background. With dictionaries but no
    feature cache for them, the cache is built in the background (a niced `othello-tui cache
    build`: minutes); labels and feature pages appear when it is done. Quitting leaves that build
    running; the next `play` shows its progress and takes the cache. Press ? for every key.
    """
    from othello_tui.tui.app import make_app
    from othello_tui.tui.session import Session

    saved = restored_session(session_file, moves, game_index)
    if saved is not None:
        seed = saved.seed
    game = starting_game(moves, game_index, seed)
    if device == "cuda":  # fail here, as the other commands do, not inside the app
        from othello_tui.model.device import resolve_device

        try:
            resolve_device(device)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
    require_terminal()
    session = Session.from_weights(
        weights,
        device=device,
        config=config_file,
        dictionaries=dictionaries_dir,
        cache=cache,
        cache_dir=DEFAULT_CACHE_DIR,
        seed=seed,
        build=not no_build,
        notes_dir=DEFAULT_CACHE_DIR,
    )
    make_app(session, game, game_index or 0, saved, session_file).run()
    if (note := session.library.left_running()) is not None:
        click.echo(note)


def restored_session(path: Path | None, moves: str | None, game_index: int | None):
    """The session saved in ``path`` (None: no such file yet, or no ``--session``); a one-line
    error for a file that cannot be used, or for --moves/--game-index beside a saved session."""
    from othello_tui.session_file import SessionFileError, load_session

    if path is None or not path.exists():
        return None
    if moves is not None or game_index is not None:
        raise click.UsageError("--session restores its own game: leave out --moves and --game-index")
    try:
        return load_session(path)
    except SessionFileError as error:
        raise click.ClickException(f"{error}; it was left as it is") from None


def require_terminal() -> None:
    """The app reads keys from a terminal; without one (input from a pipe or a file) it would
    wait forever for keys that never come, spinning. Served in a browser (``serve``), Textual's
    web driver reads its keys from the pipe, as it should."""
    if not sys.stdin.isatty() and not os.environ.get("TEXTUAL_DRIVER", "").endswith(":WebDriver"):
        raise click.ClickException(
            "play needs a terminal: its input (stdin) is not a terminal but a pipe or a file."
            " Run it in a terminal window (over ssh: ssh -t)."
        )
