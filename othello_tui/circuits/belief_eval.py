"""Edit success rate (Li et al. 2023, issue 15): flip one square's believed colour at a position
and ask whether the model's predicted legal moves (p > 0.01) follow the edited board.

At each sampled position a square is drawn among the discs whose colour flip changes the legal
moves of the side to move (otherwise the two boards cannot be told apart). Every (site, margin)
edit of that square runs in one batched forward pass. An edit succeeds when the predicted legal
set is closer to the edited board's than to the real board's (``belief_edit.follows_edit``).

Edits push along the probe's class difference, or, given the residual dictionaries, along the decoder
row of the site's residual feature best aligned with it (``probes.alignment.flip_features``); a
feature no multiple of which flips the reading counts as a failure (``infeasible``).

Shape legend: B edits in a batch, T position, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from othello_tui.circuits.belief_edit import belief_push, follows_edit, predicted_legal
from othello_tui.circuits.edits import BeliefEdit
from othello_tui.circuits.intervention import intervene_batch
from othello_tui.circuits.nodes import CircuitError
from othello_tui.circuits.trace import GameTrace
from othello_tui.dictionary.sae import Dictionary
from othello_tui.game.generator import generate_games
from othello_tui.game.rules import next_turn
from othello_tui.game.squares import SQUARE_TO_TOKEN
from othello_tui.model.transformer import OthelloGPT
from othello_tui.probes.alignment import flip_features
from othello_tui.probes.families import mine_theirs_classes, with_belief
from othello_tui.probes.linear import LinearProbes


@dataclass
class EditSuccess:
    """Successes per (site, margin) over ``positions`` edits; ``unedited`` counts the positions
    where the clean prediction already follows the edited board (the baseline, near 0)."""

    sites: list[int]
    margins: list[float]
    successes: dict[tuple[int, float], int] = field(default_factory=dict)
    flipped: dict[tuple[int, float], int] = field(default_factory=dict)  # the probe reads the new class
    controls: dict[tuple[int, float], int] = field(default_factory=dict)  # random pushes of that size
    push_norm: dict[tuple[int, float], float] = field(default_factory=dict)  # Σ |push| / |residual|
    infeasible: dict[tuple[int, float], int] = field(default_factory=dict)  # no push along the feature
    positions: int = 0
    unedited: int = 0

    def mean(self, counts: Mapping[tuple[int, float], float], site: int, margin: float) -> float:
        return counts.get((site, margin), 0) / max(self.positions, 1)

    def rate(self, site: int, margin: float) -> float:
        return self.mean(self.successes, site, margin)

    def best(self) -> tuple[int, float, float]:
        """(site, margin, rate) of the best edit."""
        site, margin = max(self.successes, key=lambda key: self.successes[key])
        return site, margin, self.rate(site, margin)


def _edited_legal(board, mover: int, square: int) -> tuple[set[int], set[int], int]:
    """(legal moves now, legal moves with ``square``'s colour flipped, the flipped class)."""
    to = 1 - int(mine_theirs_classes(board, mover)[square])  # mine <-> theirs
    original = set(next_turn(board, mover)[1])
    return original, set(next_turn(with_belief(board, mover, square, to), mover)[1]), to


@torch.no_grad()
def edit_success(
    model: OthelloGPT,
    probes: LinearProbes,
    n_games: int,
    positions_per_game: int,
    sites: Sequence[int],
    margins: Sequence[float],
    seed: int,
    residual: Mapping[str, Dictionary] | None = None,
) -> EditSuccess:
    """Measure the success rate of every (site, margin) belief edit on the same positions; with
    ``residual`` (``L{l}R`` for every site l + 1), the edits go along the best-aligned features."""
    rng, control_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    games = generate_games(n_games, seed)
    result = EditSuccess(list(sites), list(margins))
    flips = (
        {site: flip_features(probes, f"L{site - 1}R", residual[f"L{site - 1}R"]) for site in sites}
        if residual is not None
        else {}
    )
    for k in range(n_games):
        squares = [int(s) for s in games.squares[k] if s >= 0]
        trace = GameTrace(model, residual or {}, SQUARE_TO_TOKEN[squares].astype(np.int64), probes)
        boards, players = games.board()[k], games.player[k]
        for i in rng.choice(np.arange(4, len(squares) - 2), positions_per_game, replace=False):
            board, mover = boards[i], int(players[i])
            candidates = []
            for occupied in np.flatnonzero(board):
                original, edited, to = _edited_legal(board, mover, int(occupied))
                if original != edited:
                    candidates.append((int(occupied), original, edited, to))
            if not candidates:
                continue
            square, original, edited, to = candidates[rng.integers(len(candidates))]
            grid, edits = [], []
            for key in ((site, margin) for site in sites for margin in margins):
                along = flips[key[0]].feature(square, to)[0] if flips else None
                edit = BeliefEdit(int(i), key[0], square, to, key[1], along)
                if _feasible(trace, edit):
                    grid.append(key)
                    edits.append([edit])
                else:
                    result.infeasible[key] = result.infeasible.get(key, 0) + 1
            result.positions += 1
            result.unedited += follows_edit(predicted_legal(trace.logits_TV[i].softmax(-1)), original, edited)
            if not edits:
                continue
            logits_BTV, kept = intervene_batch(trace, edits, keep=[probes.sites[s] for s in set(sites)])
            control_BTV = _random_pushes(trace, edits, control_rng)
            for b, key in enumerate(grid):
                site = probes.sites[key[0]]
                predicted = predicted_legal(logits_BTV[b, i].softmax(-1))
                reads = (
                    int(probes.square_logits("mine_theirs", key[0], square, kept[site][b, i]).argmax()) == to
                )
                control = predicted_legal(control_BTV[b, i].softmax(-1))
                push = float((kept[site][b, i] - trace.cache[site][i]).norm() / trace.cache[site][i].norm())
                for counts, hit in (
                    (result.successes, follows_edit(predicted, original, edited)),
                    (result.flipped, reads),
                    (result.controls, follows_edit(control, original, edited)),
                ):
                    counts[key] = counts.get(key, 0) + hit
                result.push_norm[key] = result.push_norm.get(key, 0) + push
    return result


def _feasible(trace: GameTrace, edit: BeliefEdit) -> bool:
    """Whether the edit has a push (one along a feature may not)."""
    try:
        belief_push(trace, edit)
    except CircuitError:
        return False
    return True


def _random_pushes(
    trace: GameTrace, edit_sets: list[list[BeliefEdit]], rng: np.random.Generator
) -> torch.Tensor:
    """Logits [B, T, V] with each belief push replaced by a random direction of the same norm:
    the control that tells a belief edit from any large kick to the residual stream."""
    pushes = [belief_push(trace, edits[0]) for edits in edit_sets]
    hooks = []
    for name in {name for name, _ in pushes}:
        delta_BTD = torch.zeros(len(pushes), trace.n_positions, trace.model.cfg.d_model)
        for b, ((site, push_D), edits) in enumerate(zip(pushes, edit_sets, strict=True)):
            if site == name:
                random_D = torch.as_tensor(rng.standard_normal(len(push_D)), dtype=push_D.dtype)
                delta_BTD[b, edits[0].position] = random_D * push_D.norm() / random_D.norm()
        hooks.append((name, lambda x_BTD, delta_BTD=delta_BTD: x_BTD + delta_BTD.to(x_BTD.device)))
    with trace.model.hooks(hooks):
        return trace.model(trace.tokens_T.expand(len(pushes), -1))
