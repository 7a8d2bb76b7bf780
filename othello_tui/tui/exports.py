"""A contributor tree on disk: JSON (what ``othello-tui trace --json`` prints, made by the same
function), the tree as attribution-graph JSON of Neuronpedia's viewer, Graphviz DOT, and an
SVG screenshot of the screen it was exported from, each carrying the tree's
:class:`~othello_tui.circuits.provenance.Provenance`.

Files are never overwritten: a second export of the same game, position and target gets a
counter (``…-2``). Each file is written whole under a temporary name and then linked into place,
so that a reader never sees half a file.
"""

from __future__ import annotations

import itertools
import json
import os
from html import escape
from pathlib import Path

from othello_tui.circuits.export import LabelOf, NoteOf, expansion_to_dict, expansion_to_dot
from othello_tui.circuits.provenance import Provenance
from othello_tui.circuits.tree import Expansion


def tree_files(
    expansion: Expansion,
    label_of: LabelOf | None,
    svg: str,
    provenance: Provenance,
    graph: dict,
    note_of: NoteOf | None = None,
) -> tuple[str, dict[str, str]]:
    """(file stem, suffix -> text) of the four exports of a tree; ``graph`` is its
    :func:`~othello_tui.circuits.graph_json.trace_graph`. The JSON carries the user's notes on its
    features (``note_of``), the DOT their labels."""
    return provenance.file_stem(expansion.target.id), {
        ".json": json.dumps(expansion_to_dict(expansion, label_of, provenance, note_of), indent=2) + "\n",
        ".graph.json": json.dumps(graph, indent=2) + "\n",
        ".dot": expansion_to_dot(expansion, label_of, provenance),
        ".svg": svg_with_provenance(svg, provenance),
    }


def shown_depth(expansion: Expansion) -> int:
    """Levels of the tree as shown: 1 for the root's contributors alone, 2 with one opened, …"""
    return 1 + max((shown_depth(b.expansion) for b in expansion.branches if b.expansion), default=0)


def svg_with_provenance(svg: str, provenance: Provenance) -> str:
    """The SVG with the provenance as its ``<desc>`` (plain text any viewer ignores)."""
    start = svg.find("<svg")
    end = svg.find(">", start) + 1
    if start < 0 or end <= 0:
        raise ValueError("not an SVG document")
    desc = "<desc>" + escape("\n".join(provenance.comment_lines())) + "</desc>"
    return svg[:end] + desc + svg[end:]


def write_new(path: Path, text: str) -> None:
    """``path`` with ``text``, whole; ``FileExistsError`` rather than replacing a file there."""
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.link(temporary, path)  # unlike a rename, never replaces an existing file
    finally:
        temporary.unlink(missing_ok=True)


def write_files(folder: Path, stem: str, files: dict[str, str]) -> list[Path]:
    """Write ``stem`` + each suffix into ``folder`` (made if missing), as ``stem-2`` … when any of
    those names is taken; the paths written, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    for count in itertools.count(1):
        name = stem if count == 1 else f"{stem}-{count}"
        paths = [folder / f"{name}{suffix}" for suffix in files]
        if not any(path.exists() for path in paths):
            break
    for path, text in zip(paths, files.values(), strict=True):
        write_new(path, text)
    return paths
