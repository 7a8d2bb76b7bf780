"""``othello-tui``: thin click commands; heavy imports (torch) stay inside them so ``--help``
is instant. Known failures become clear messages (``click.ClickException``); bugs stay bugs."""

from othello_tui.cli import (  # noqa: F401  (registers the commands)
    beliefs,
    circuits,
    dictionaries,
    features,
    games,
    model,
    play,
    probes,
    serve,
)
from othello_tui.cli.groups import main

__all__ = ["main"]
