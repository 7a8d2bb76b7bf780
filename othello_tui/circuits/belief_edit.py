"""Editing a belief (Li et al. 2023; DESIGN.md §3.9): the vector that, added to the residual
stream at one probe site and position, makes the mine/theirs probe read the wanted class there.

With probe logits ``z_c = W[:,q,c]·r + b[q,c]``, adding ``α·u`` with ``u = W[:,q,to] − W[:,q,c*]``
(c* the class read now) changes ``z_to − z_c*`` by ``α·|u|²``: ``α = (margin − (z_to − z_c*)) / |u|²``
makes ``to`` lead c* by exactly ``margin``. The third class moves too, so the step repeats
against whichever class still leads (alternating projections, a few rounds).

Shape legend: D d_model, C classes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from othello_tui.circuits.edits import BeliefEdit
from othello_tui.circuits.nodes import CircuitError, parse_feature
from othello_tui.circuits.trace import GameTrace
from othello_tui.game.squares import TOKEN_TO_SQUARE

LEGAL_P = 0.01  # a move the model gives more than this counts as one it predicts legal
ROUNDS = 20  # projections onto "to leads c by margin"; two or three suffice in practice


@torch.no_grad()
def belief_push(trace: GameTrace, edit: BeliefEdit) -> tuple[str, Tensor]:
    """(the site's hook name, the vector ``Σ α·u`` [D] to add there at ``edit.position``).
    Identity: the probe's logits on the clean residual plus this vector have ``edit.to`` ahead of
    every other class by at least ``edit.margin`` (zero vector when it already is)."""
    site = trace.check_probe_site(edit.site)
    trace.check_position(edit.position)
    probes = trace.loaded_probes()
    W_DC = probes.W["mine_theirs"][edit.site, :, edit.square]
    b_C = probes.b["mine_theirs"][edit.site, edit.square]
    r_D = trace.cache[site][edit.position]
    if edit.along is not None:
        return site, _push_along(trace, edit, r_D @ W_DC + b_C, W_DC)
    push_D = torch.zeros_like(r_D)
    for _ in range(ROUNDS):
        z_C = (r_D + push_D) @ W_DC + b_C
        rivals_C = z_C.clone()
        rivals_C[edit.to] = -torch.inf
        rival = int(rivals_C.argmax())
        lead = z_C[edit.to] - z_C[rival]
        if lead >= edit.margin - 1e-4:
            break
        u_D = W_DC[:, edit.to] - W_DC[:, rival]
        push_D += (edit.margin - lead) / (u_D @ u_D) * u_D
    return site, push_D


def _push_along(trace: GameTrace, edit: BeliefEdit, z_C: Tensor, W_DC: Tensor) -> Tensor:
    """``α·d`` with d the decoder row of residual feature ``edit.along`` and the α of least
    magnitude that makes every lead ``z_to − z_c`` at least the margin. Each lead is linear in α,
    ``lead_c + α·(d·W[:,to] − d·W[:,c])``, so the feasible α form an interval (maybe empty:
    :class:`CircuitError`)."""
    module, feature = parse_feature(edit.along or "")
    d_D = trace.check_feature(module, feature).W_dec[feature]
    slope_C = d_D @ W_DC
    low, high = -math.inf, math.inf
    for rival in (c for c in range(len(z_C)) if c != edit.to):
        need = float(edit.margin - (z_C[edit.to] - z_C[rival]))  # lead still missing at α = 0
        slope = float(slope_C[edit.to] - slope_C[rival])
        if abs(slope) < 1e-9:
            low, high = (low, high) if need <= 0 else (math.inf, -math.inf)
        elif slope > 0:
            low = max(low, need / slope)
        else:
            high = min(high, need / slope)
    if low > high:
        raise CircuitError(
            f"no push along {edit.along}'s decoder row makes the probe read {edit.spec.partition('@')[0]} "
            f"by a lead of {edit.margin:g}: the row moves that square's logits the wrong way"
        )
    alpha = 0.0 if low <= 0.0 <= high else low if low > 0 else high
    return alpha * d_D


def predicted_legal(probs_V: Tensor, threshold: float = LEGAL_P) -> set[int]:
    """Board squares the model gives probability above ``threshold`` (vocabulary token t ≥ 1)."""
    return {int(TOKEN_TO_SQUARE[t]) for t in torch.nonzero(probs_V[1:] > threshold).flatten() + 1}


def follows_edit(predicted: set[int], original: set[int], edited: set[int]) -> bool:
    """Li et al.'s success criterion: the predicted legal moves are closer to the edited board's
    legal moves than to the original board's (fewer squares in the symmetric difference)."""
    return len(predicted ^ edited) < len(predicted ^ original)
