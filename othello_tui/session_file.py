"""A saved app session: the game, the move shown, the interventions and the screen open over
the board (a contributor tree with its expanded nodes, a feature page or the attention view), so
that ``othello-tui play --session FILE`` opens where the user left off.

The file is plain, versioned JSON::

    {"format": "othello-tui session", "version": 1, "seed": 0, "game_index": 17,
     "moves": "e-5 d-5 …", "n_moves": 12, "interventions": ["P7L1M379=0", "P9:L3:e-4=theirs"],
     "screen": {"name": "tree", "target": "feature:L2M845", "position": 11, "top": 8,
                "threshold": null, "open": [["P11L1M3"], ["P11L1M3", "P9L0A7"]]}}

``game_index`` is null when the game is not a dataset game. Interventions are in the text forms
``intervene`` reads (``--set`` for features; ``P<position>:<belief>`` for belief edits). The
screen is null (the board), ``{"name": "tree", …}`` (a target in ``trace``'s form, at a position,
the tree's top-N and threshold, and the paths of node ids from the root to each expanded node),
``{"name": "feature", "feature": "L2M845"}``, ``{"name": "attention", "position": 11}`` or
``{"name": "graph", "target": "logit:e-1", "position": 11, "features": 200, "node_threshold": 0.8,
"edge_threshold": 0.98}`` (an attribution graph: its budget of expanded features and its
pruning thresholds). It is
written whole under a temporary name and renamed into place. A file that is not this format, or
holds moves that are illegal, raises :class:`SessionFileError` saying so. No Textual, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from othello_tui.circuits.edits import BeliefEdit, Edit, parse_belief, parse_edit
from othello_tui.circuits.nodes import CircuitError
from othello_tui.circuits.pruning import GraphSettings
from othello_tui.game.rules import Game, IllegalMoveError
from othello_tui.json_store import read_versioned, write_atomically

FORMAT = "othello-tui session"
VERSION = 1
DEFAULT_PATH = Path("othello-tui-session.json")


class SessionFileError(ValueError):
    """A session file that cannot be read as this format."""


@dataclass(frozen=True)
class SavedScreen:
    """The screen open over the board. ``name`` "tree": the tree of ``target`` (``trace``'s
    form) at ``position``, its ``top`` and ``threshold``, and ``open_paths``, the node-id paths
    of its expanded nodes; "feature": the page of feature ``target``; "attention": the view at
    ``position``; "graph": the attribution graph of ``target`` at ``position`` built and pruned
    with ``graph``."""

    name: str
    target: str = ""
    position: int = 0
    top: int = 8
    threshold: float | None = None
    open_paths: frozenset[tuple[str, ...]] = frozenset()
    graph: GraphSettings | None = None

    def to_dict(self) -> dict:
        if self.name == "tree":
            return {
                "name": "tree",
                "target": self.target,
                "position": self.position,
                "top": self.top,
                "threshold": self.threshold,
                "open": [list(path) for path in sorted(self.open_paths)],
            }
        if self.name == "feature":
            return {"name": "feature", "feature": self.target}
        if self.name == "graph" and self.graph is not None:
            return {
                "name": "graph",
                "target": self.target,
                "position": self.position,
                "features": self.graph.max_features,
                "node_threshold": self.graph.node_threshold,
                "edge_threshold": self.graph.edge_threshold,
            }
        return {"name": "attention", "position": self.position}

    @classmethod
    def from_dict(cls, data: dict) -> SavedScreen:
        name = data["name"]
        if name == "tree":
            threshold = None if data["threshold"] is None else _number(data["threshold"])
            paths = frozenset(tuple(_strings(path)) for path in data["open"])
            return cls("tree", str(data["target"]), _integer(data["position"]), _integer(data["top"]),
                       threshold, paths)  # fmt: skip
        if name == "feature":
            return cls("feature", str(data["feature"]))
        if name == "attention":
            return cls("attention", position=_integer(data["position"]))
        if name == "graph":
            settings = GraphSettings(
                _integer(data["features"]), _number(data["node_threshold"]), _number(data["edge_threshold"])
            )
            return cls("graph", str(data["target"]), _integer(data["position"]), graph=settings)
        raise ValueError(f"unknown screen {name!r} (tree, feature, attention or graph)")


@dataclass(frozen=True)
class SavedSession:
    seed: int
    game_index: int | None  # the dataset game's index (None: not a dataset game)
    moves: str
    n_moves: int  # the move shown
    interventions: tuple[str, ...] = ()
    screen: SavedScreen | None = None  # None: the board

    @property
    def game(self) -> Game:
        return Game.from_text(self.moves)

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "seed": self.seed,
            "game_index": self.game_index,
            "moves": self.moves,
            "n_moves": self.n_moves,
            "interventions": list(self.interventions),
            "screen": None if self.screen is None else self.screen.to_dict(),
        }


def unused_path(path: Path) -> Path:
    """``path``, or ``name-2.json``, ``name-3.json``… when it exists."""
    path, counter = Path(path), 2
    candidate = path
    while candidate.exists():
        candidate, counter = path.with_name(f"{path.stem}-{counter}{path.suffix}"), counter + 1
    return candidate


def save_session(path: Path, saved: SavedSession) -> None:
    """Write ``saved`` to ``path`` whole: a temporary file renamed over the old one."""
    write_atomically(path, saved.to_dict())


def load_session(path: Path) -> SavedSession:
    """The session saved in ``path``; :class:`SessionFileError` says why it cannot be used."""
    data = read_versioned(path, FORMAT, VERSION, SessionFileError)
    try:
        saved = SavedSession(
            _integer(data["seed"]),
            None if data["game_index"] is None else _integer(data["game_index"]),
            str(data["moves"]),
            _integer(data["n_moves"]),
            tuple(_strings(data["interventions"])),
            None if data.get("screen") is None else SavedScreen.from_dict(data["screen"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise SessionFileError(f"{path} has a malformed session ({error!r})") from None
    try:
        game = saved.game
    except IllegalMoveError as error:
        raise SessionFileError(f"{path}: its moves are illegal ({error})") from None
    if not 0 <= saved.n_moves <= len(game.moves):
        raise SessionFileError(f"{path}: move {saved.n_moves} is outside its game of {len(game.moves)} moves")
    return saved


def _strings(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"{value!r} is not a list of strings")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not an integer")
    return value


def restore_interventions(
    texts: tuple[str, ...], n_features: dict[str, int], n_moves: int
) -> tuple[list[Edit | BeliefEdit], list[str]]:
    """The interventions of ``texts`` that still apply to these dictionaries (features per
    module) and a game of ``n_moves`` moves, and why each of the others was left out."""
    edits, problems = [], []
    for text in texts:
        try:
            edit = _parse(text)
        except CircuitError as error:
            problems.append(str(error))
            continue
        if isinstance(edit, Edit) and not 0 <= edit.feature < n_features.get(edit.module, 0):
            problems.append(f"{text}: feature {edit.module}{edit.feature} is not in the loaded dictionaries")
        elif not 0 <= edit.position < n_moves:
            problems.append(f"{text}: position {edit.position} is outside the game of {n_moves} moves")
        else:
            edits.append(edit)
    return edits, problems


def _parse(text: str) -> Edit | BeliefEdit:
    """A feature edit (``P7L1M379=0``) or a belief edit (``P9:L3:e-4=theirs``)."""
    position, colon, belief = text.partition(":")
    if colon and position[:1] == "P" and position[1:].isdigit():
        return parse_belief(belief, int(position[1:]))
    return parse_edit(text)
