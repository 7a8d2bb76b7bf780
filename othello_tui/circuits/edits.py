"""What an intervention applies: an edit of one feature's activation at one position (DESIGN.md
§3.8), or of one square's believed colour (§3.9). Plain data, no torch, so that an app can hold a
stack of them before any model loads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from othello_tui.circuits.nodes import PROBE_CLASSES, CircuitError, parse_feature_node, readout_note
from othello_tui.game.squares import SquareError, parse_square, square_name

if TYPE_CHECKING:
    from torch import Tensor

#: beyond this an activation (float32, at most ~1e38) times a decoder row only overflows
MAX_EDIT_NUMBER = 1e6
_EDIT_RE = re.compile(r"^\s*([^=*\s]+)\s*([=*])\s*(\S+)\s*$")  # node and number checked apart
_BELIEF_RE = re.compile(
    r"^\s*(embed|L\d+):([a-hA-H]-?\d)\s*=\s*(mine|theirs|empty)\s*(?:@\s*(L\d+R\d+))?\s*$", re.IGNORECASE
)
MARGIN = 32.0  # logit lead of the new class after a belief edit: 80% success after block 3 (bench/beliefs.py)


@dataclass(frozen=True)
class Edit:
    """Feature ``module``/``feature`` at ``position``: set to ``value``, or scaled by ``scale``."""

    position: int
    module: str
    feature: int
    value: float | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        if (why := readout_note(f"{self.module}{self.feature}")) is not None:
            raise CircuitError(why)

    @property
    def node_id(self) -> str:
        return f"P{self.position}{self.module}{self.feature}"

    @property
    def text(self) -> str:
        """The form :func:`parse_edit` reads: ``P7L1M379=0``, ``P7L1M379*0.5``."""
        if self.scale is not None:
            return f"{self.node_id}*{self.scale:g}"
        return f"{self.node_id}={self.value:g}"

    def new_activation(self, old: Tensor) -> Tensor | float:
        if self.scale is not None:
            return old * self.scale
        if self.value is None:
            raise CircuitError(f"edit of {self.node_id} neither sets nor scales it")
        return self.value


def parse_edit(text: str) -> Edit:
    """``"P7L1M379=0"`` (set; 0 ablates) or ``"P7L1M379*0.5"`` (scale)."""
    match = _EDIT_RE.match(text)
    if match is None:
        raise CircuitError(f"edit {text!r}: expected e.g. P7L1M379=0 (set) or P7L1M379*2 (scale)")
    try:
        number = float(match[3])
    except ValueError:
        raise CircuitError(
            f"edit {text!r}: {match[3]!r} is not a number (expected e.g. P7L1M379=0 or P7L1M379*2)"
        ) from None
    if not abs(number) <= MAX_EDIT_NUMBER:  # also catches inf and nan
        raise CircuitError(
            f"edit {text!r}: {match[3]} is out of range; values and factors lie within ±{MAX_EDIT_NUMBER:,.0f}"
        )
    try:
        position, module, feature = parse_feature_node(match[1])
    except CircuitError as error:
        raise CircuitError(f"edit {text!r}: {error}") from None
    if match[2] == "=":
        return Edit(position, module, feature, value=number)
    return Edit(position, module, feature, scale=number)


@dataclass(frozen=True)
class BeliefEdit:
    """Make the mine/theirs probe at ``site`` (0 the embeddings, l + 1 after block l) read class
    ``to`` (0 mine, 1 theirs, 2 empty) at ``square``, at ``position``: the residual stream there is
    pushed along the probe's class difference until ``to`` leads every other class by ``margin``
    logits (Li et al. 2023; DESIGN.md §3.9), and the layers above rerun. With ``along`` (a
    residual-stream feature of that site, ``"L3R512"``) the push follows that feature's decoder
    row instead: the smallest multiple of it that gives the lead, if one does."""

    position: int
    site: int
    square: int
    to: int
    margin: float = MARGIN
    along: str | None = None

    @property
    def spec(self) -> str:
        """The form ``--believe`` reads: ``L3:e-4=theirs``, ``L3:e-4=theirs@L3R512``."""
        site = "embed" if self.site == 0 else f"L{self.site - 1}"
        along = f"@{self.along}" if self.along else ""
        return f"{site}:{square_name(self.square)}={PROBE_CLASSES[self.to]}{along}"

    @property
    def node_id(self) -> str:
        """One belief edit per (position, site, square) on a stack: ``P11belief:L3:e-4``."""
        return f"P{self.position}belief:{self.spec.partition('=')[0]}"

    @property
    def text(self) -> str:
        return f"P{self.position}:{self.spec}"


def parse_belief(text: str, position: int, margin: float = MARGIN) -> BeliefEdit:
    """``"L3:e-4=theirs"`` at ``position``: after block 3, make e-4 read theirs;
    ``"L3:e-4=theirs@L3R512"``: by pushing along L3R512's decoder row."""
    match = _BELIEF_RE.match(text)
    if match is None:
        raise CircuitError(
            f"belief edit {text!r}: expected <embed|L<layer>>:<square>=<mine|theirs|empty>[@L<layer>R<feature>], "
            "e.g. L3:e-4=theirs or L3:e-4=theirs@L3R512"
        )
    along = match[4].upper() if match[4] else None
    if along is not None and (match[1] == "embed" or along.partition("R")[0] != match[1].upper()):
        raise CircuitError(
            f"belief edit {text!r}: {along} does not read the residual stream at {match[1]} (a push "
            f"along a residual feature needs one of that site, e.g. {match[1]}:{match[2]}={match[3]}@{match[1]}R0)"
        )
    try:
        square = parse_square(match[2])
    except SquareError as error:
        raise CircuitError(f"belief edit {text!r}: {error}") from None
    site = 0 if match[1] == "embed" else int(match[1][1:]) + 1
    return BeliefEdit(position, site, square, PROBE_CLASSES.index(match[3]), margin, along)
