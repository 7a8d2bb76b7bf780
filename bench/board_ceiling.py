"""How well any readout of this model's residual stream can rebuild the board: the shipped probes
scored with the residual dictionaries' board metrics (issue 15 targets: board reconstruction ≥ 0.95,
mine/theirs coverage ≥ 0.7, legal-move coverage ≥ 0.85).

    python bench/board_ceiling.py [--games 500]

Board reconstruction (``dictionary/metrics.py``, Karvonen et al. 2024) predicts the 128 mine/theirs
properties (square q is mine / is theirs, relative to the player who just moved) from readouts
that are ≥ 95%-precise, and scores the prediction with F1 over all (token, property) pairs. Here
the readout is the shipped probe at each site: (a) every square read as its argmax class, and
(b) only the readings of probability ≥ p*, with p* the smallest probability at which the kept
readings are ≥ 95% precise (the metric's rule for features). Coverage is the mean over properties
of the best F1 any one feature reaches as a classifier of that property; the probe's own F1 per
property (mine/theirs: its argmax reading; legal: the legal probe above 0.5, the 60 squares that can
be moves) is what a feature exactly as good as the probe would reach. Held-out games of the probe
evaluation; the residual dictionaries' own scores are in the README beside them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from othello_tui.game.generator import iter_games
from othello_tui.model.weights import load_model
from othello_tui.probes.data import probe_data
from othello_tui.probes.evaluate import GAMES_PER_FORWARD, PROBE_EVAL_SEED
from othello_tui.probes.families import FAMILY, site_short
from othello_tui.probes.io import load_probes

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
HIGH_PRECISION = 0.95
EMPTY = 2


def f1(predicted_NQ: np.ndarray, truth_NQ: np.ndarray) -> float:
    """F1 over the mine/theirs properties: a reading (class 0 or 1, or −1 for none) is a true
    positive when it equals the truth, a false positive otherwise; a disc not read correctly is a
    false negative."""
    read = predicted_NQ >= 0
    tp = int((read & (predicted_NQ == truth_NQ)).sum())
    fp = int((read & (predicted_NQ != truth_NQ)).sum())
    fn = int(((truth_NQ != EMPTY) & ~(read & (predicted_NQ == truth_NQ))).sum())
    return 2 * tp / max(2 * tp + fp + fn, 1)


def property_f1(predicted_NQ: np.ndarray, truth_NQ: np.ndarray) -> np.ndarray:
    """float [Q]: F1 of a boolean prediction of a boolean property, per square."""
    tp = (predicted_NQ & truth_NQ).sum(0)
    wrong = (predicted_NQ ^ truth_NQ).sum(0)
    return 2 * tp / np.maximum(2 * tp + wrong, 1)


def high_precision_cut(p_N: np.ndarray, right_N: np.ndarray) -> float:
    """The smallest probability whose readings at or above it are ≥ 95% right (inf: none is)."""
    order = np.argsort(-p_N, kind="stable")
    precision = np.cumsum(right_N[order]) / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(precision >= HIGH_PRECISION)
    return float(p_N[order][ok[-1]]) if len(ok) else float("inf")


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", type=int, default=500)
    args = parser.parse_args()
    model, _ = load_model(WEIGHTS)
    probes, _ = load_probes(WEIGHTS, model)
    probs, truths, legal_probs, legal_truths = [], [], [], []
    for chunk in iter_games(args.games, PROBE_EVAL_SEED):
        for start in range(0, len(chunk), GAMES_PER_FORWARD):
            x_NSD, labels = probe_data(model, chunk[start : start + GAMES_PER_FORWARD], list(probes.sites))
            probs.append(probes.family_logits("mine_theirs", x_NSD).softmax(-1).numpy())
            truths.append(labels["mine_theirs"].numpy())
            legal_probs.append(probes.family_logits("legal", x_NSD).sigmoid().numpy())
            legal_truths.append(labels["legal"].numpy().astype(bool))
    p_NSQC, truth_NQ = np.concatenate(probs), np.concatenate(truths)
    legal_NSQ, legal_NQ = np.concatenate(legal_probs), np.concatenate(legal_truths)
    movable_Q = np.ones(64, dtype=bool)
    movable_Q[list(FAMILY["legal"].constant_squares)] = False
    print(f"{len(truth_NQ):,} tokens of {args.games} held-out games (seed {PROBE_EVAL_SEED})")
    print(
        f"{'site':<6} {'F1, every reading':>18} {'F1, ≥95%-precise readings':>26} {'p*':>6}"
        f" {'mine/theirs coverage':>21} {'legal coverage':>15}"
    )
    for s in range(len(probes.sites)):
        reading_NQ = p_NSQC[:, s].argmax(-1)
        disc_NQ = np.where(reading_NQ == EMPTY, -1, reading_NQ)
        p_NQ = p_NSQC[:, s].max(-1)
        is_disc = disc_NQ >= 0
        cut = high_precision_cut(p_NQ[is_disc], (disc_NQ == truth_NQ)[is_disc])
        kept_NQ = np.where(p_NQ >= cut, disc_NQ, -1)
        coverage = np.mean([property_f1(reading_NQ == c, truth_NQ == c) for c in (0, 1)])
        legal = property_f1(legal_NSQ[:, s] > 0.5, legal_NQ)[movable_Q].mean()
        print(
            f"{site_short(s):<6} {f1(disc_NQ, truth_NQ):>18.3f} {f1(kept_NQ, truth_NQ):>26.3f} {cut:>6.2f}"
            f" {coverage:>21.3f} {legal:>15.3f}"
        )


if __name__ == "__main__":
    main()
