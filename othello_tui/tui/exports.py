"""A contributor tree on disk: JSON (what ``othello-tui trace --json`` prints, made by the same
function), Graphviz DOT, and an SVG screenshot of the screen it was exported from.

Each file is written atomically — a temporary file in the same folder, then a rename — so that
a reader never sees half a file and an old export is replaced whole or not at all.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from othello_tui.circuits.export import LabelOf, expansion_to_dict, expansion_to_dot
from othello_tui.circuits.nodes import Target
from othello_tui.circuits.tree import Expansion
from othello_tui.game.corpus import atomic_path


def file_stem(target: Target) -> str:
    """``tree-P11-logit-e-1``, ``tree-P7L2M845``, ``tree-P13L3H2-14``: a safe file name."""
    return "tree-" + re.sub(r"[^A-Za-z0-9.]+", "-", target.id).strip("-")


def tree_files(expansion: Expansion, label_of: LabelOf | None, svg: str) -> dict[str, str]:
    """File name -> text of the three exports of a tree."""
    stem = file_stem(expansion.target)
    return {
        f"{stem}.json": json.dumps(expansion_to_dict(expansion, label_of), indent=2) + "\n",
        f"{stem}.dot": expansion_to_dot(expansion, label_of),
        f"{stem}.svg": svg,
    }


def write_atomic(path: Path, text: str) -> None:
    """``path`` with ``text``, or (on any error) untouched; made with the usual permissions."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_files(folder: Path, files: dict[str, str]) -> list[Path]:
    """Write every file into ``folder`` (made if missing); the paths written, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in files.items():
        write_atomic(folder / name, text)
        paths.append(folder / name)
    return paths
