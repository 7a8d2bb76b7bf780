"""``othello-tui``: thin click commands; heavy imports (torch) stay inside them so ``--help``
is instant. Known failures become clear messages (``click.ClickException``); bugs stay bugs."""

from othello_tui.cli import circuits, dictionaries, features, games, model, play, probes, serve  # noqa: F401  (registers the commands)
from othello_tui.cli.groups import main

__all__ = ["main"]
