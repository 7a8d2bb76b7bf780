"""``python -m othello_tui``: the ``othello-tui`` command, run by this very interpreter (``play``
starts its background cache build this way)."""

from othello_tui.cli import main

main(prog_name="othello-tui")
