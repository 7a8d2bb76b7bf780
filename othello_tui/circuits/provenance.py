"""Where a contributor tree came from, written into every export of it: the game (its moves, and
its seed and index when it is a dataset game), the position and target, the weights (model
fingerprint, dictionaries hash), the interventions, the threshold and top-N, and the commands that
reproduce it; likewise for an attribution graph (``trace --graph``), whose settings replace the
tree's top, threshold and depth. Plain data, no torch."""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import asdict, dataclass

from othello_tui import __version__
from othello_tui.circuits.pruning import GraphSettings


@dataclass(frozen=True)
class Provenance:
    moves: str  # "f-4 f-5 …": the whole game the tree was computed on
    position: int
    target: str  # the command-line form: logit:e-1, feature:L2M845, score:L3H2:14
    top: int  # contributors per level
    threshold: float | None  # only |contribution| ≥ this
    depth: int  # levels shown expanded (the export expands only the opened nodes)
    model_fingerprint: str
    dictionaries_hash: str
    interventions: tuple[str, ...] = ()  # P7L1M379=0, P7L1M379*2
    seed: int | None = None  # with game_index: game game_index of this seed
    game_index: int | None = None
    graph: GraphSettings | None = None  # set for a graph: then top, threshold and depth say nothing

    @classmethod
    def of_graph(
        cls,
        moves: str,
        position: int,
        target: str,
        settings: GraphSettings,
        model_fingerprint: str,
        dictionaries_hash: str,
        seed: int | None = None,
        game_index: int | None = None,
    ) -> Provenance:
        """An attribution graph's (no interventions: a graph reads the forward pass as it is)."""
        return cls(
            moves,
            position,
            target,
            0,
            None,
            0,
            model_fingerprint,
            dictionaries_hash,
            (),
            seed,
            game_index,
            settings,
        )

    def game_arguments(self) -> list[str]:
        if self.game_index is not None and self.seed is not None:
            return ["--seed", str(self.seed), "--game-index", str(self.game_index)]
        return ["--moves", self.moves]

    def commands(self) -> list[str]:
        """``othello-tui trace …`` for the contributions (every feature expanded to the depth
        shown, a superset of the nodes opened; or the graph), and ``othello-tui intervene …``
        for the interventions' effect."""
        common = [*self.game_arguments(), "--pos", str(self.position)]
        trace = ["othello-tui", "trace", *common, "--target", self.target]
        if self.graph is not None:
            settings = self.graph
            trace += ["--graph", "--graph-nodes", str(settings.max_features)]
            trace += ["--node-threshold", f"{settings.node_threshold:g}"]
            return [shlex.join([*trace, "--edge-threshold", f"{settings.edge_threshold:g}"])]
        trace += ["--depth", str(self.depth), "--top", str(self.top)]
        if self.threshold is not None:
            trace += ["--threshold", f"{self.threshold:g}"]
        commands = [shlex.join([*trace, "--json"])]
        if self.interventions:
            sets = [a for edit in self.interventions for a in ("--set", edit)]
            commands.append(shlex.join(["othello-tui", "intervene", *common, *sets]))
        return commands

    def to_dict(self) -> dict:
        data = asdict(self)
        data["interventions"] = list(self.interventions)
        if self.graph is None:
            del data["graph"]
        else:
            for key in ("top", "threshold", "depth"):
                del data[key]
        return {**data, "othello_tui_version": __version__, "commands": self.commands()}

    def file_stem(self, target_id: str) -> str:
        """A safe file name unique per game, position and target: ``tree-s3g17-P11logit-e-1``
        for game 17 of seed 3, ``tree-moves12-1f0c9a2b-P7L2M845`` (the number of moves and a hash
        of them) for any other game; ``graph-…`` for a graph."""
        if self.game_index is not None and self.seed is not None:
            game = f"s{self.seed}g{self.game_index}"
        else:
            digest = hashlib.sha256(self.moves.encode()).hexdigest()[:8]
            game = f"moves{len(self.moves.split())}-{digest}"
        kind = "tree" if self.graph is None else "graph"
        return f"{kind}-" + re.sub(r"[^A-Za-z0-9.]+", "-", f"{game}-{target_id}").strip("-")

    def comment_lines(self) -> list[str]:
        """``key: value`` lines for the DOT and SVG exports."""
        lines = [f"{key}: {value}" for key, value in self.to_dict().items() if key != "commands"]
        if self.graph is None:
            lines.append(
                "note: the trace command expands every node to this depth; the export, the opened ones"
            )
        return lines + [f"reproduce: {command}" for command in self.commands()]
