"""Attribution trees as plain data (JSON-ready dicts) and as Graphviz DOT text.

JSON schema::

    {"target": {"kind", "id", "position", "value"},
     "contributions": [{"node", "value", "label", ["note"], ["query", "key"],
                        ["children", "rest", "sum"]}, …],
     "rest": (sum of contributions not listed), "sum": (sum of all contributions),
     ["provenance": {"moves", "position", "target", "top", "threshold", "depth",
                     "model_fingerprint", "dictionaries_hash", "interventions", "seed",
                     "game_index", "othello_tui_version", "commands"}]}

``children`` (same shape as ``contributions``) appears on expanded feature nodes; there
``sum`` is the sum of all the feature's contributions (its pre-activation). Pair nodes of a
score target carry their ``query`` and ``key`` node ids. Labels come from ``label_of(feature_id)``
(e.g. the feature cache's automatic labels); nodes that are not features have none. A feature
the user wrote a note on carries it as ``note`` (``{"label", "notes"}``, from ``note_of``). With a
:class:`~othello_tui.circuits.provenance.Provenance`, the JSON carries it and the DOT opens with it
as comments.
"""

from __future__ import annotations

from collections.abc import Callable

from othello_tui.circuits.nodes import Node
from othello_tui.circuits.provenance import Provenance
from othello_tui.circuits.tree import Branch, Expansion

LabelOf = Callable[[str], str | None]
NoteOf = Callable[[str], dict | None]  # feature id -> the user's {"label", "notes"}, or None


def node_label(node: Node, label_of: LabelOf | None) -> str | None:
    return label_of(node.feature_id) if label_of is not None and node.feature_id is not None else None


def _branch_dict(branch: Branch, label_of: LabelOf | None, note_of: NoteOf | None) -> dict:
    node = branch.node
    item = {"node": node.id, "value": branch.contribution, "label": node_label(node, label_of)}
    note = note_of(node.feature_id) if note_of is not None and node.feature_id is not None else None
    if note is not None:
        item["note"] = note
    if branch.node.parts is not None:
        item["query"], item["key"] = (part.id for part in branch.node.parts)
    if branch.expansion is not None:
        item["children"] = [_branch_dict(child, label_of, note_of) for child in branch.expansion.branches]
        item["rest"], item["sum"] = branch.expansion.rest, branch.expansion.total
    return item


def expansion_to_dict(
    expansion: Expansion,
    label_of: LabelOf | None = None,
    provenance: Provenance | None = None,
    note_of: NoteOf | None = None,
) -> dict:
    target = expansion.target
    provenance_item = {} if provenance is None else {"provenance": provenance.to_dict()}
    return {
        "target": {
            "kind": target.kind,
            "id": target.id,
            "position": target.position,
            "value": expansion.value,
        },
        "contributions": [_branch_dict(branch, label_of, note_of) for branch in expansion.branches],
        "rest": expansion.rest,
        "sum": expansion.total,
        **provenance_item,
    }


def _quote(*lines: str) -> str:
    """A DOT string; several lines are joined with DOT's line break ``\\n``."""
    return '"' + "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in lines) + '"'


def expansion_to_dot(
    expansion: Expansion, label_of: LabelOf | None = None, provenance: Provenance | None = None
) -> str:
    """A digraph with an edge from each contributor to what it contributes to, labelled with the
    contribution (blue positive, red negative). A node reached twice is drawn once."""
    target = expansion.target
    title = _quote(f"{target.spec} @ P{target.position}", f"= {expansion.value:.4g}")
    comments = [] if provenance is None else [f"// {line}" for line in provenance.comment_lines()]
    lines = [
        *comments,
        "digraph trace {",
        "  rankdir=BT;",
        '  node [shape=box, fontname="monospace"];',
        f"  {_quote(target.id)} [label={title}, style=bold];",
    ]
    seen: set[str] = {target.id}
    edges: set[tuple[str, str]] = set()

    def walk(parent: str, level: Expansion) -> None:
        for branch in level.branches:
            node = branch.node
            if node.id not in seen:
                seen.add(node.id)
                text = node_label(node, label_of)
                label = _quote(node.id) if text is None else _quote(node.id, text)
                lines.append(f"  {_quote(node.id)} [label={label}];")
            if (node.id, parent) not in edges:
                edges.add((node.id, parent))
                colour = "blue" if branch.contribution >= 0 else "red"
                lines.append(
                    f"  {_quote(node.id)} -> {_quote(parent)} [label={_quote(f'{branch.contribution:+.4g}')}, color={colour}];"
                )
            if branch.expansion is not None:
                walk(node.id, branch.expansion)
        others = f"{parent} others"
        if level.branches and level.rest != 0 and others not in seen:
            seen.add(others)
            lines.append(f"  {_quote(others)} [label={_quote('others')}, style=dashed];")
            lines.append(
                f"  {_quote(others)} -> {_quote(parent)} [label={_quote(f'{level.rest:+.4g}')}, style=dashed];"
            )

    walk(target.id, expansion)
    lines.append("}")
    return "\n".join(lines) + "\n"
