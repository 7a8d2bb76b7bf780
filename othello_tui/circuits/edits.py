"""An edit of one feature's activation at one position (DESIGN.md §3.8): what an intervention
applies. Plain data, no torch, so that an app can hold a stack of them before any model loads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from othello_tui.circuits.nodes import CircuitError, parse_feature_node

if TYPE_CHECKING:
    from torch import Tensor

#: beyond this an activation (float32, at most ~1e38) times a decoder row only overflows
MAX_EDIT_NUMBER = 1e6
_EDIT_RE = re.compile(r"^\s*([^=*\s]+)\s*([=*])\s*(\S+)\s*$")  # node and number checked apart


@dataclass(frozen=True)
class Edit:
    """Feature ``module``/``feature`` at ``position``: set to ``value``, or scaled by ``scale``."""

    position: int
    module: str
    feature: int
    value: float | None = None
    scale: float | None = None

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
        return old * self.scale if self.scale is not None else self.value


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
