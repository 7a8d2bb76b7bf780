"""Editing a belief (Li et al. 2023; DESIGN.md §3.9): the vector that, added to the residual
stream at one probe site and position, makes the mine/theirs probe read the wanted class there.

With probe logits ``z_c = W[:,q,c]·r + b[q,c]``, adding ``α·u`` with ``u = W[:,q,to] − W[:,q,c*]``
(c* the class read now) changes ``z_to − z_c*`` by ``α·|u|²``: ``α = (margin − (z_to − z_c*)) / |u|²``
makes ``to`` lead c* by exactly ``margin``. The third class moves too, so the step repeats
against whichever class still leads (alternating projections, a few rounds).

Shape legend: D d_model, C classes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from othello_tui.circuits.edits import BeliefEdit
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


def predicted_legal(probs_V: Tensor, threshold: float = LEGAL_P) -> set[int]:
    """Board squares the model gives probability above ``threshold`` (vocabulary token t ≥ 1)."""
    return {int(TOKEN_TO_SQUARE[t]) for t in torch.nonzero(probs_V[1:] > threshold).flatten() + 1}


def follows_edit(predicted: set[int], original: set[int], edited: set[int]) -> bool:
    """Li et al.'s success criterion: the predicted legal moves are closer to the edited board's
    legal moves than to the original board's (fewer squares in the symmetric difference)."""
    return len(predicted ^ edited) < len(predicted ^ original)
