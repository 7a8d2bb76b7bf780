"""How far the direct (patch-free) view is from the causal one (issue 6, "Faithfulness").

For the predicted move's logit at random positions of random games, each of the top feature
contributors by |DLA| is ablated (activation set to 0) and the logit's drop is measured three
ways: with every downstream module output and LayerNorm scale frozen (only the direct path is
left, so the drop equals the DLA: a check of the machinery), with only the LayerNorm scales
frozen, and with nothing frozen (the total effect). Spearman rank correlations between DLA and
each drop summarise the agreement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from othello_tui.circuits.intervention import Edit, intervene_batch
from othello_tui.circuits.nodes import Target
from othello_tui.circuits.trace import GameTrace
from othello_tui.dictionary.sae import Dictionary
from othello_tui.game.generator import generate_games
from othello_tui.game.squares import TOKEN_TO_SQUARE
from othello_tui.model.evaluate import EVAL_SEED
from othello_tui.model.transformer import OthelloGPT

#: (name, freeze_ln, freeze_modules) of the three ways to measure an ablation's effect
MODES = (("frozen", True, True), ("ln_frozen", True, False), ("unfrozen", False, False))


def rank_average(x: np.ndarray) -> np.ndarray:
    """Ranks 1…n of ``x``, ties sharing the mean of their ranks."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    # runs of equal values: the first index of each value and the size of its run
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    sizes = np.diff(np.r_[starts, len(x)])
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(starts + (sizes + 1) / 2, sizes)
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ: the Pearson correlation of the tie-averaged ranks (NaN when one is constant)."""
    rx, ry = rank_average(np.asarray(x, float)), rank_average(np.asarray(y, float))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denominator) if denominator > 0 else float("nan")


@dataclass
class FaithfulnessReport:
    """Per ablated contributor: its DLA and the logit drop in each mode of :data:`MODES`."""

    targets: int
    dla: np.ndarray
    drops: dict[str, np.ndarray]

    def summary(self) -> dict:
        """Spearman ρ per mode, and the largest |drop − DLA| per mode."""
        return {
            "targets": self.targets,
            "ablations": len(self.dla),
            "spearman": {mode: spearman(self.dla, drop) for mode, drop in self.drops.items()},
            "max_abs_difference": {
                mode: float(np.abs(drop - self.dla).max()) if len(drop) else float("nan")
                for mode, drop in self.drops.items()
            },
        }


def ablation_drops(trace: GameTrace, target: Target, top: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """DLA of the top ``top`` feature contributors of a logit target and the logit drop when
    ablating each one alone, in every mode (one batched forward pass per mode)."""
    features = [(node, value) for node, value in trace.contributions(target).top() if node.kind == "feature"][
        :top
    ]
    edit_sets: list[list[Edit]] = [[]]
    edit_sets += [[Edit(node.position, *node.feature_key, value=0.0)] for node, _ in features]
    drops = {}
    for mode, freeze_ln, freeze_modules in MODES:
        logits_BTV, _ = intervene_batch(trace, edit_sets, freeze_ln, freeze_modules)
        logit_B = logits_BTV[:, target.position, target.token].double().cpu().numpy()
        drops[mode] = logit_B[0] - logit_B[1:]  # row 0 (no edit) is the reference in the same batch
    return np.array([value for _, value in features]), drops


def faithfulness(
    model: OthelloGPT,
    dictionaries: Mapping[str, Dictionary],
    n_games: int = 20,
    positions: int = 5,
    top: int = 8,
    seed: int = EVAL_SEED,
) -> FaithfulnessReport:
    """Ablate the top feature contributors of the predicted move's logit at ``positions``
    random positions of each of ``n_games`` random games (game and position draws from ``seed``)."""
    games = generate_games(n_games, seed)
    rng = np.random.default_rng(seed)
    dla: list[np.ndarray] = []
    drops: dict[str, list[np.ndarray]] = {mode: [] for mode, _, _ in MODES}
    for tokens, length in zip(games.tokens, games.lengths, strict=True):
        n_tokens = min(int(length), model.cfg.n_ctx - 1)
        trace = GameTrace(model, dictionaries, tokens[:n_tokens].astype(np.int64))
        for position in rng.choice(n_tokens, size=min(positions, n_tokens), replace=False):
            token = int(trace.logits_TV[position, 1:].argmax()) + 1  # a move token, never padding
            target = Target("logit", int(position), square=int(TOKEN_TO_SQUARE[token]))
            values, mode_drops = ablation_drops(trace, target, top)
            dla.append(values)
            for mode, drop in mode_drops.items():
                drops[mode].append(drop)
    targets = len(dla)
    return FaithfulnessReport(
        targets, np.concatenate(dla), {mode: np.concatenate(d) for mode, d in drops.items()}
    )
