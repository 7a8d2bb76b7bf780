"""The rich console every command prints through."""

from __future__ import annotations

PIPE_WIDTH = 160  # wide enough for every table; a terminal keeps its own width


def console(**options):
    """A ``rich.console.Console``; writing to a pipe or a file, ``PIPE_WIDTH`` columns instead of
    rich's 80 (or ``COLUMNS``, which test runners set), so tables and trees are not wrapped
    mid-phrase."""
    from rich.console import Console

    out = Console(**options)
    return out if out.is_terminal else Console(width=PIPE_WIDTH, **options)
