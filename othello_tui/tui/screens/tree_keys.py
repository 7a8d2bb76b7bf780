"""The contributor tree screen's keys (its tree widget's own are in ``contributor_tree.py``).
The help screen lists them from here."""

from __future__ import annotations

from textual.binding import Binding

TREE_KEYS = [
    Binding("escape", "close", "back", tooltip="back to the board", id="tree.back"),
    Binding(
        "plus,equals_sign",
        "top(1)",
        "more",
        key_display="+",
        tooltip="more contributors per level",
        id="tree.more",
    ),
    Binding(
        "minus",
        "top(-1)",
        "fewer",
        key_display="-",
        tooltip="fewer contributors per level",
        id="tree.fewer",
    ),
    Binding(
        "f",
        "threshold",
        "threshold",
        show=False,
        tooltip="show only |contribution| ≥ a threshold",
        id="tree.threshold",
    ),
    Binding(
        "j",
        "jump",
        "jump",
        tooltip="the board at the node's position (an OV contributor's source)",
        id="tree.jump",
    ),
    Binding(
        "a",
        "ablate",
        "ablate",
        tooltip="ablate the feature at its position (set it to 0)",
        id="tree.ablate",
    ),
    Binding(
        "x",
        "scale",
        "scale",
        show=False,
        tooltip="scale the feature at its position by a factor",
        id="tree.scale",
    ),
    Binding("c", "clear_edits", "clear", show=False, tooltip="clear every intervention", id="tree.clear"),
    Binding(
        "N",
        "note",
        "note",
        show=False,
        tooltip="write your label and notes on this feature",
        id="tree.note",
    ),
    Binding(
        "e",
        "export",
        "export",
        tooltip="write the tree (JSON, attribution graph, DOT) and the screen (SVG) to a folder",
        id="tree.export",
    ),
    Binding(
        "G",
        "graph",
        "graph",
        show=False,
        tooltip="the target's attribution graph: nodes by influence, links in and out",
        id="tree.graph",
    ),
]
