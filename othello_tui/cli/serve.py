"""``othello-tui serve``: the ``play`` app in a browser, through textual-serve.

textual-serve answers each browser tab with a fresh ``othello-tui play`` process (the options
given here) and relays its screen over a websocket; the server itself loads no model."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from othello_tui.cli.groups import main
from othello_tui.cli.play import play_arguments, play_options, starting_game

#: the folder holding the ``othello_tui`` package: the app processes import this very copy
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. The default answers this machine only: reach it from elsewhere "
    "through an SSH tunnel (`ssh -L 8000:localhost:8000 SERVER`), or give 0.0.0.0 (anyone who "
    "can reach the port gets the app: there is no login).",
)
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port to listen on."
)
@click.option(
    "--public-url",
    default=None,
    help="The URL browsers use to reach this server (default: http://HOST:PORT); the page opens "
    "its websocket there, so set it behind a proxy or with --host 0.0.0.0.",
)
@play_options
def serve(host: str, port: int, public_url: str | None, **options) -> None:
    """Serve `othello-tui play` to web browsers (every tab runs its own app).

    Takes the options of `play` (the starting game, the weights, the cache, the device). Ctrl-C
    stops the server and every app it started.
    """
    from textual_serve.server import Server

    starting_game(
        options["moves"], options["game_index"], options["seed"]
    )  # bad options fail here, not in each tab
    command = shlex.join([sys.executable, "-m", "othello_tui", *play_arguments(**options)])
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(_PACKAGE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    url = public_url or f"http://{'localhost' if host in ('0.0.0.0', '::') else host}:{port}"
    server = Server(command, host=host, port=port, title="othello-tui", public_url=url)
    click.echo(f"othello-tui in a browser: {url}  (Ctrl-C stops it)", err=True)
    if host in ("127.0.0.1", "localhost", "::1"):
        click.echo(
            f"from another machine: ssh -L {port}:localhost:{port} THIS_HOST, then open {url}", err=True
        )
    try:
        server.serve()
    except OSError as error:  # the port is taken, or the address is not this machine's
        raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
