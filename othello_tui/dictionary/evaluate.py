"""Evaluating dictionaries against the model on held-out games (issue 4; metrics in ``metrics.py``).

For each module one forward pass over the games replaces the module's output by its dictionary
reconstruction (``model.hooks``) and, in the same hook, records the true output and the feature
activations. That gives the reconstruction metrics, the firing statistics and the spliced
prediction metrics together; the board metrics then use the recorded activations, with the first
half of the games for feature labels and coverage and the second half for board reconstruction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from othello_tui.dictionary.metrics import (
    LEGAL,
    MINE,
    THEIRS,
    SparseCodes,
    board_properties,
    board_reconstruction,
    coverage,
    feature_labels,
    property_counts,
)
from othello_tui.dictionary.sae import Dictionary
from othello_tui.game.generator import generate_games
from othello_tui.model.evaluate import EVAL_SEED, prediction_metrics
from othello_tui.model.targets import model_inputs
from othello_tui.model.transformer import OthelloGPT

#: a seed range of its own, disjoint from model training (below EVAL_SEED) and model evaluation
DICTIONARY_EVAL_SEED = EVAL_SEED + 7
ALIVE_RATE = 1e-5  # a feature is alive if it fires on at least 1 in 10^5 tokens
DENSE_RATE = 0.1  # and dense if it fires on more than 10% of tokens


@dataclass
class DictionaryMetrics:
    fvu: float
    rel_error: float  # mean‖x − x̂‖ / mean‖x‖
    l0: float
    alive_frac: float
    dense_features: int
    spliced_legal_top1: float
    spliced_kl: float  # KL(original ‖ spliced) of the next-move distributions, nats per position
    coverage: float  # mine/theirs squares (128 properties)
    board_reconstruction: float
    legal_coverage: float  # legal next move per square (64 properties)
    mean_norm: float  # mean‖x‖
    mean_error: float  # mean‖x − x̂‖
    tokens: int

    def to_dict(self) -> dict:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}


def kl_per_position(logits_BTV: Tensor, spliced_BTV: Tensor) -> Tensor:
    """``KL(softmax(logits) ‖ softmax(spliced))`` at every position [B, T]."""
    logp, logq = torch.log_softmax(logits_BTV.float(), -1), torch.log_softmax(spliced_BTV.float(), -1)
    return (logp.exp() * (logp - logq)).sum(-1)


class _Recorder:
    """A hook that replaces the module output by its reconstruction and accumulates statistics."""

    def __init__(self, dictionary: Dictionary):
        self.dictionary = dictionary
        self.valid_BT: Tensor | None = None
        self.sums = dict.fromkeys(("sse", "sq", "norm", "error", "n"), 0.0)
        self.sum_x = torch.zeros(dictionary.cfg.d_in, dtype=torch.float64)
        self.fires_F = torch.zeros(dictionary.cfg.d_sae, dtype=torch.float64)
        self.codes: list[SparseCodes] = []

    def __call__(self, x_BTD: Tensor) -> Tensor:
        x_hat_BTD, c_BTF = self.dictionary(x_BTD)
        x_ND, x_hat_ND, c_NF = (
            x_BTD[self.valid_BT].double(),
            x_hat_BTD[self.valid_BT].double(),
            c_BTF[self.valid_BT],
        )
        self.sums["sse"] += (x_ND - x_hat_ND).pow(2).sum().item()
        self.sums["sq"] += x_ND.pow(2).sum().item()
        self.sums["norm"] += x_ND.norm(dim=-1).sum().item()
        self.sums["error"] += (x_ND - x_hat_ND).norm(dim=-1).sum().item()
        self.sums["n"] += len(x_ND)
        self.sum_x += x_ND.sum(0).cpu()
        self.fires_F += (c_NF > 0).sum(0).double().cpu()
        self.codes.append(SparseCodes.from_dense(c_NF.cpu()))
        return x_hat_BTD


@torch.no_grad()
def evaluate_dictionaries(
    model: OthelloGPT,
    dictionaries: dict[str, Dictionary],
    n_games: int = 2000,
    seed: int = DICTIONARY_EVAL_SEED,
    batch: int = 250,
) -> dict:
    """``{"model": {"legal_top1", "games", "tokens"}, "modules": {module: DictionaryMetrics dict}}``."""
    model.eval()
    games = generate_games(n_games, seed)
    tokens_BT, legal_BTV = model_inputs(games, model.device)
    valid_BT = tokens_BT != 0
    props_BTG = torch.from_numpy(board_properties(games))
    props_NG = props_BTG[valid_BT.cpu()]
    n_label = int(valid_BT[: n_games // 2].sum())
    starts = range(0, n_games, batch)
    clean = [model(tokens_BT[s : s + batch]) for s in starts]
    reference = prediction_metrics(torch.cat(clean).cpu(), legal_BTV.cpu())
    positions_BT = legal_BTV.any(-1)
    results = {}
    for module, dictionary in dictionaries.items():
        recorder = _Recorder(dictionary.to(model.device))
        spliced, kl_sum = [], 0.0
        with model.hooks([(dictionary.cfg.hook_name, recorder)]):
            for s, logits in zip(starts, clean, strict=True):
                recorder.valid_BT = valid_BT[s : s + batch]
                spliced.append(model(tokens_BT[s : s + batch]))
                kl_sum += kl_per_position(logits, spliced[-1])[positions_BT[s : s + batch]].sum().item()
        sums, n = recorder.sums, int(recorder.sums["n"])
        centred = sums["sq"] - recorder.sum_x.pow(2).sum().item() / n  # Σ‖x − x̄‖²
        rate_F = recorder.fires_F / n
        codes = SparseCodes.concatenate(recorder.codes)
        label_codes, test_codes = codes.split(n_label)
        max_F = label_codes.max_per_feature()
        counts = property_counts(label_codes, props_NG[:n_label], max_F)
        results[module] = DictionaryMetrics(
            fvu=sums["sse"] / centred,
            rel_error=sums["error"] / sums["norm"],
            l0=recorder.fires_F.sum().item() / n,
            alive_frac=(rate_F >= ALIVE_RATE).double().mean().item(),
            dense_features=int((rate_F > DENSE_RATE).sum()),
            spliced_legal_top1=prediction_metrics(torch.cat(spliced).cpu(), legal_BTV.cpu()).legal_top1,
            spliced_kl=kl_sum / int(positions_BT.sum()),
            coverage=coverage(counts, slice(MINE.start, THEIRS.stop)),
            board_reconstruction=board_reconstruction(
                test_codes, props_NG[n_label:], feature_labels(counts), max_F
            ),
            legal_coverage=coverage(counts, LEGAL),
            mean_norm=sums["norm"] / n,
            mean_error=sums["error"] / n,
            tokens=n,
        ).to_dict()
    return {
        "model": {
            "legal_top1": round(reference.legal_top1, 6),
            "games": n_games,
            "tokens": int(valid_BT.sum()),
        },
        "modules": results,
        "seed": seed,
    }


@torch.no_grad()
def evaluate_replacement(
    model: OthelloGPT,
    dictionaries: dict[str, Dictionary],
    n_games: int = 2000,
    seed: int = DICTIONARY_EVAL_SEED,
    batch: int = 250,
) -> dict:
    """The replacement model: every module's output replaced by its dictionary's reconstruction
    at once. ``{"legal_top1", "model_legal_top1", "legal_drop", "kl", "modules", "games"}`` (drop
    in points of top-1 legality, KL in nats per position)."""
    model.eval()
    games = generate_games(n_games, seed)
    tokens_BT, legal_BTV = model_inputs(games, model.device)
    positions_BT = legal_BTV.any(-1)
    placed = [d.to(model.device) for d in dictionaries.values()]
    hooks = [(d.cfg.hook_name, lambda x, d=d: d(x)[0]) for d in placed]
    clean, spliced, kl_sum = [], [], 0.0
    for s in range(0, n_games, batch):
        clean.append(model(tokens_BT[s : s + batch]))
        with model.hooks(hooks):
            spliced.append(model(tokens_BT[s : s + batch]))
        kl_sum += kl_per_position(clean[-1], spliced[-1])[positions_BT[s : s + batch]].sum().item()
    reference = prediction_metrics(torch.cat(clean).cpu(), legal_BTV.cpu()).legal_top1
    replaced = prediction_metrics(torch.cat(spliced).cpu(), legal_BTV.cpu()).legal_top1
    return {
        "legal_top1": round(replaced, 6),
        "model_legal_top1": round(reference, 6),
        "legal_drop": round(100 * (reference - replaced), 4),
        "kl": round(kl_sum / int(positions_BT.sum()), 6),
        "modules": list(dictionaries),
        "games": n_games,
    }
