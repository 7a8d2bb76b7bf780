"""Names of the things circuits talk about: graph nodes and attribution targets (DESIGN.md §2).

A node is one vector of the residual-stream decomposition (DESIGN.md §3.1) or a bias term of
the target's own computation, always at a token position:

- ``P2embed``, ``P6pos``: token and positional embedding;
- ``P7L1M379``: feature 379 of L1M's dictionary (vector ``c·d``, or ``c·o·d`` at the token's
  output scale o for a dictionary that normalises its input, ``decomposition.py``);
- ``P7L1M.bias``, ``P7L1M.error``: that dictionary's decoder bias (what its decoder writes with no
  feature active) and reconstruction error;
- ``P7L1M``: the whole output of a module that has no dictionary loaded;
- ``P7blocks.1.ln2.b``, ``P7unembed.b_U``, ``P7L2M.b_enc``: a bias term, named after its
  parameter (``L2M.b_enc`` is the target dictionary's constant ``b_enc − W_enc·b_dec``);
- ``P13pos × P14L0A195``: a (query node, key node) pair of an attention-score decomposition.

A target is what an attribution explains: the logit of a square, the pre-activation of a
dictionary feature, the pre-softmax score of an attention head, or a probe's class-logit
difference on the residual stream (``probe:L3:e-4:mine-theirs``), at a position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from othello_tui.game.squares import SquareError, parse_square, square_name, square_to_token

NODE_KINDS = ("embed", "pos", "feature", "bias", "error", "output", "param", "pair")
TARGET_KINDS = ("logit", "feature", "score", "probe")
PROBE_CLASSES = ("mine", "theirs", "empty")  # the mine/theirs probe's classes, in its logit order

_FEATURE_RE = re.compile(r"^(L\d+[AMR])(\d+)$")
_HEAD_RE = re.compile(r"^L(\d+)H(\d+)$")
_NODE_RE = re.compile(r"^P(\d+)(L\d+[AMR])(\d+)$")
_PROBE_RE = re.compile(r"^(embed|L\d+):([^:]+):(mine|theirs|empty)-(mine|theirs|empty)$")


class CircuitError(ValueError):
    """A target, node or edit that does not exist in this model, game or dictionary set."""


def readout_note(feature_id: str) -> str | None:
    """Why ``L3R512`` (a residual-stream dictionary's feature) cannot be a node or an edit, or None
    for a module feature (DESIGN.md §2: residual dictionaries are readouts, not nodes)."""
    module = _FEATURE_RE.match(feature_id)
    if module is None or not module[1].endswith("R"):
        return None
    return (
        f"{feature_id} is a residual-stream readout, not a node (DESIGN.md §2): it can be a target "
        f"(feature:{feature_id}), not a contributor or an edit; a belief edit moves the residual"
    )


@dataclass(frozen=True)
class Node:
    """A contributor. ``module``/``feature`` are set for dictionary nodes; ``parts`` for pairs."""

    id: str
    position: int
    kind: str
    module: str | None = None
    feature: int | None = None
    parts: tuple[Node, Node] | None = None

    @property
    def feature_id(self) -> str | None:
        """``"L1M379"`` (no position): the key of a feature's statistics and label."""
        return f"{self.module}{self.feature}" if self.kind == "feature" else None

    @property
    def feature_key(self) -> tuple[str, int]:
        """``(module, feature)`` of a feature node."""
        if self.module is None or self.feature is None:
            raise CircuitError(f"{self.id} is not a feature node")
        return self.module, self.feature

    @property
    def pair_parts(self) -> tuple[Node, Node]:
        """``(query node, key node)`` of a pair node."""
        if self.parts is None:
            raise CircuitError(f"{self.id} is not a pair node")
        return self.parts

    def as_target(self) -> Target | None:
        """The feature's pre-activation as a target (None for nodes that are not features)."""
        if self.kind != "feature":
            return None
        return Target("feature", self.position, module=self.module, feature=self.feature)


def node_id(position: int, name: str) -> str:
    return f"P{position}{name}"


def pair_node(query: Node, key: Node) -> Node:
    return Node(f"{query.id} × {key.id}", query.position, "pair", parts=(query, key))


@dataclass(frozen=True)
class Target:
    """What an attribution explains, at query position ``position``.

    logit: ``square`` (board index); feature: ``module`` and ``feature``;
    score: ``layer``, ``head`` and ``key`` (the key position, ≤ position);
    probe: ``site`` (0 the embeddings, l + 1 the residual stream after block l), ``square`` and
    ``classes`` (plus, minus): the mine/theirs probe's ``logit[plus] − logit[minus]`` there.
    """

    kind: str
    position: int
    square: int | None = None
    module: str | None = None
    feature: int | None = None
    layer: int | None = None
    head: int | None = None
    key: int | None = None
    site: int | None = None
    classes: tuple[int, int] | None = None

    @property
    def board_square(self) -> int:
        """``square`` of a logit or probe target."""
        if self.square is None:
            raise CircuitError(f"a {self.kind} target has no square")
        return self.square

    @property
    def feature_key(self) -> tuple[str, int]:
        """``(module, feature)`` of a feature target."""
        if self.module is None or self.feature is None:
            raise CircuitError(f"a {self.kind} target names no feature")
        return self.module, self.feature

    @property
    def score_key(self) -> tuple[int, int, int]:
        """``(layer, head, key)`` of a score target."""
        if self.layer is None or self.head is None or self.key is None:
            raise CircuitError(f"a {self.kind} target names no attention score")
        return self.layer, self.head, self.key

    @property
    def probe_key(self) -> tuple[int, int, tuple[int, int]]:
        """``(site, square, classes)`` of a probe target."""
        if self.site is None or self.square is None or self.classes is None:
            raise CircuitError(f"a {self.kind} target names no probe logit")
        return self.site, self.square, self.classes

    @property
    def spec(self) -> str:
        """The command-line form without position: ``logit:e-1``, ``feature:L2M845``,
        ``score:L3H2:14``, ``probe:L3:e-4:mine-theirs``."""
        if self.kind == "logit":
            return f"logit:{square_name(self.board_square)}"
        if self.kind == "feature":
            return f"feature:{self.module}{self.feature}"
        if self.kind == "probe":
            site, square, classes = self.probe_key
            site_name = "embed" if site == 0 else f"L{site - 1}"
            plus, minus = (PROBE_CLASSES[c] for c in classes)
            return f"probe:{site_name}:{square_name(square)}:{plus}-{minus}"
        return f"score:L{self.layer}H{self.head}:{self.key}"

    @property
    def id(self) -> str:
        """Node-style id: ``P12logit:e-1``, ``P7L2M845`` (the feature's node id), ``P13L3H2:14``."""
        if self.kind == "feature":
            return node_id(self.position, f"{self.module}{self.feature}")
        return node_id(self.position, self.spec.removeprefix("score:"))

    @property
    def token(self) -> int:
        """Vocabulary index of a logit target's square."""
        return square_to_token(self.board_square)


def parse_feature(text: str) -> tuple[str, int]:
    """``"L2M845" -> ("L2M", 845)``."""
    match = _FEATURE_RE.match(text.strip())
    if match is None:
        raise CircuitError(f"{text!r} is not a feature (expected a module and an index, e.g. L2M845)")
    return match[1], int(match[2])


def parse_target(text: str, position: int) -> Target:
    """``logit:e-1``, ``feature:L2M845``, ``score:L3H2:14`` or ``probe:L3:e-4:mine-theirs`` at
    query ``position``."""
    kind, _, rest = text.strip().partition(":")
    if kind == "logit":
        try:
            square = parse_square(rest)
            square_to_token(square)
        except SquareError as error:
            raise CircuitError(f"target {text!r}: {error}") from None
        return Target("logit", position, square=square)
    if kind == "feature":
        module, feature = parse_feature(rest)
        return Target("feature", position, module=module, feature=feature)
    if kind == "score":
        head, _, key = rest.partition(":")
        match = _HEAD_RE.match(head)
        if match is None or not key.isdigit():
            raise CircuitError(
                f"target {text!r}: expected score:L<layer>H<head>:<key position>, e.g. score:L3H2:14"
            )
        return Target("score", position, layer=int(match[1]), head=int(match[2]), key=int(key))
    if kind == "probe":
        return _parse_probe(text, rest, position)
    raise CircuitError(
        f"target {text!r}: expected logit:<square>, feature:<module><index>, score:L<l>H<h>:<key> "
        "or probe:<embed|L<l>>:<square>:<class>-<class>"
    )


def probe_target(position: int, site: int, square: int, plus: str = "mine", minus: str = "theirs") -> Target:
    """The mine/theirs probe's ``logit[plus] − logit[minus]`` at ``square`` and probe ``site``."""
    return Target(
        "probe",
        position,
        square=square,
        site=site,
        classes=(PROBE_CLASSES.index(plus), PROBE_CLASSES.index(minus)),
    )


def _parse_probe(text: str, rest: str, position: int) -> Target:
    match = _PROBE_RE.match(rest.strip())
    if match is None or match[3] == match[4]:
        raise CircuitError(
            f"target {text!r}: expected probe:<embed|L<layer>>:<square>:<class>-<other class> with classes "
            "mine, theirs, empty, e.g. probe:L3:e-4:mine-theirs"
        )
    try:
        square = parse_square(match[2])
    except SquareError as error:
        raise CircuitError(f"target {text!r}: {error}") from None
    site = 0 if match[1] == "embed" else int(match[1][1:]) + 1
    return probe_target(position, site, square, match[3], match[4])


def parse_feature_node(text: str) -> tuple[int, str, int]:
    """``"P7L1M379" -> (7, "L1M", 379)``."""
    match = _NODE_RE.match(text.strip())
    if match is None:
        raise CircuitError(f"{text!r} is not a feature at a position (expected e.g. P7L1M379)")
    return int(match[1]), match[2], int(match[3])
