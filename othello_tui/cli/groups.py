"""The command groups; each command lives in the module of its subject and registers itself."""

from __future__ import annotations

import atexit
import gc
from pathlib import Path

import click

from othello_tui import __version__

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WEIGHTS = REPO_ROOT / "weights"
DEFAULT_CHECKPOINTS = REPO_ROOT / "checkpoints"
DEFAULT_CACHE_DIR = REPO_ROOT / "cache"

# The interpreter's last garbage collection, at exit, walks every object torch made: a third of
# a second of a short command such as `trace` on a quiet machine, more on a busy one. Frozen
# objects are not walked; the memory goes back to the system with the process all the same.
atexit.register(gc.freeze)


def default_checkpoint(out_dir: Path, name: str) -> Path:
    """Where a training run writing ``out_dir`` keeps its checkpoint ``name``: beside it, in
    ``out_dir.checkpoints/``, never in the current folder; the shipped weights/ (and its
    dictionaries/ and residual/) keep theirs in the repository's checkpoints/."""
    out_dir, shipped = Path(out_dir), DEFAULT_WEIGHTS.resolve()
    if shipped in (out_dir.resolve(), out_dir.resolve().parent):
        return DEFAULT_CHECKPOINTS / name
    return out_dir.with_name(f"{out_dir.name}.checkpoints") / name


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="othello-tui")
def main() -> None:
    """Look inside a 6-layer GPT that learned to predict legal Othello moves.

    Start with `othello-tui play`. Weights live in weights/, generated caches in cache/.
    """


@main.group()
def train() -> None:
    """Train the model, the dictionaries or the probes."""


@main.group("eval")
def evaluate() -> None:
    """Measure the model, the dictionaries, the circuits or the probes."""
