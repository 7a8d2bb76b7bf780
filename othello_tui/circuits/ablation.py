"""Batch ablation: scale one dictionary feature wherever it fires, over many dataset games, and
measure what changes downstream (the causal check of a feature, beyond one game).

Scaling ``c_{m,k,i}`` by ``s`` adds ``(s − 1)·c·o_i·d_{m,k}`` to ``out_{m,i}`` (DESIGN.md §3.8; o_i
the decoder's output scale at the token, 1 unless the dictionary normalises its input), at every
position where the feature fires (``c > 0``), or only at one position. Everything above is
recomputed. A position can change only at or after the first edit of its game (the model is
causal): the legality and KL figures are over those "affected" positions.

Shape legend: B games, T position, D d_model, F features, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from othello_tui.circuits.nodes import CircuitError
from othello_tui.dictionary.sae import Dictionary, hook_name_of, is_residual, module_names
from othello_tui.game.generator import iter_games
from othello_tui.game.squares import TOKEN_TO_SQUARE, square_name
from othello_tui.model.targets import model_inputs
from othello_tui.model.transformer import OthelloGPT

BATCH_GAMES = 64


@dataclass
class AblationReport:
    feature: str
    scale: float
    position: int | None  # None: every position
    games: int
    edits: int  # (game, position) pairs where the feature fired and was scaled
    affected_positions: int  # positions at or after a game's first edit
    legal_before: float  # top-1 legality over the affected positions
    legal_after: float
    mean_kl: float  # KL(before ‖ after) of the next-move distribution, over the affected positions
    logits: list[tuple[str, float]]  # square -> mean Δlogit at the edited positions, largest |Δ| first
    downstream: list[tuple[str, float]]  # feature -> mean |Δactivation| over affected positions

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self, seed: int) -> list[str]:
        """The report as text, as ``othello-tui ablate`` prints it and the app shows it."""
        where = "wherever it fires" if self.position is None else f"at P{self.position} where it fires"
        moved = ", ".join(f"{square} {value:+.3f}" for square, value in self.logits)
        changed = ", ".join(f"{feature} {value:.4f}" for feature, value in self.downstream)
        if not self.edits:
            return [
                f"{self.feature} never fires {'' if self.position is None else f'at P{self.position} '}"
                f"in {self.games:,} games (seed {seed}): nothing to scale (more --games, or another feature)"
            ]
        return [
            f"{self.feature} × {self.scale:g} {where}: {self.edits:,} edits in {self.games:,} games (seed {seed})",
            f"top-1 legality {self.legal_before:.2%} → {self.legal_after:.2%}, mean KL {self.mean_kl:.4f}"
            f" (over {self.affected_positions:,} positions at or after an edit)",
            f"logits most moved where it fired (mean Δlogit): {moved or 'none'}",
            f"downstream features most changed (mean |Δactivation|): {changed or 'none above this module'}",
        ]


@torch.no_grad()
def ablate_feature(
    model: OthelloGPT,
    dictionaries: Mapping[str, Dictionary],
    module: str,
    feature: int,
    scale: float = 0.0,
    position: int | None = None,
    n_games: int = 500,
    seed: int = 0,
    top: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> AblationReport:
    """Scale feature ``feature`` of ``module`` by ``scale`` (0 ablates) wherever it fires (or at
    ``position`` only) in games 0…n_games−1 of ``seed``; ``progress(done, total)`` per batch."""
    if is_residual(module):
        raise CircuitError(
            f"{module}{feature} is a residual-stream readout (DESIGN.md §2): ablating it is not an "
            "intervention of this model; ablate a module feature (L{l}A, L{l}M) instead"
        )
    order = [m for m in module_names(model.cfg.n_layers) if m in dictionaries]
    above = order[order.index(module) + 1 :]
    target_hook, d_D = hook_name_of(module), dictionaries[module].W_dec[feature]
    totals = {"edits": 0, "affected": 0, "legal_before": 0.0, "legal_after": 0.0, "kl": 0.0}
    delta_logit_V = torch.zeros(model.cfg.d_vocab, device=model.device)
    delta_acts = {m: torch.zeros(dictionaries[m].cfg.d_sae, device=model.device) for m in above}
    done = 0
    for games in iter_games(n_games, seed):
        tokens_BT, legal_BTV = model_inputs(games, model.device)
        valid_BT = tokens_BT > 0
        names = [target_hook, *(hook_name_of(m) for m in above)]
        before_BTV, cache = model.run_with_cache(tokens_BT, names=names)
        c_BT = dictionaries[module].encode(cache[target_hook])[..., feature]
        out_scale_BT = dictionaries[module].token_norm(cache[target_hook]).out_scale_N
        edit_BT = (c_BT > 0) & valid_BT
        if position is not None:
            edit_BT &= torch.arange(edit_BT.shape[1], device=model.device) == position
        delta_BTD = ((scale - 1.0) * c_BT * out_scale_BT * edit_BT)[..., None] * d_D
        kept: dict[str, Tensor] = {}

        def add(out_BTD: Tensor, delta_BTD: Tensor = delta_BTD) -> Tensor:
            return out_BTD + delta_BTD

        def keep(name: str, kept: dict[str, Tensor] = kept):
            return lambda out_BTD: kept.__setitem__(name, out_BTD)  # returns None: the value stays

        with model.hooks([(target_hook, add), *((hook_name_of(m), keep(hook_name_of(m))) for m in above)]):
            after_BTV = model(tokens_BT)
        affected_BT = valid_BT & (edit_BT.cumsum(1) > 0)
        totals["edits"] += int(edit_BT.sum())
        totals["affected"] += int(affected_BT.sum())
        for key, logits_BTV in (("legal_before", before_BTV), ("legal_after", after_BTV)):
            choice_BT = logits_BTV[..., 1:].argmax(-1) + 1
            legal_BT = legal_BTV.gather(-1, choice_BT[..., None])[..., 0]
            totals[key] += float((legal_BT & affected_BT).sum())
        logp_before, logp_after = before_BTV.log_softmax(-1), after_BTV.log_softmax(-1)
        kl_BT = (logp_before.exp() * (logp_before - logp_after)).sum(-1)
        totals["kl"] += float(kl_BT[affected_BT].sum())
        delta_logit_V += (after_BTV - before_BTV)[edit_BT].sum(0)
        for m in above:
            hook = hook_name_of(m)
            change_BTF = dictionaries[m].encode(kept[hook]) - dictionaries[m].encode(cache[hook])
            delta_acts[m] += change_BTF.abs()[affected_BT].sum(0)
        done += len(games.tokens)
        if progress is not None:
            progress(done, n_games)
    edits, affected = max(totals["edits"], 1), max(totals["affected"], 1)
    mean_V = (delta_logit_V / edits).cpu()
    order_V = mean_V[1:].abs().argsort(descending=True)[:top] + 1
    logits = [(square_name(int(TOKEN_TO_SQUARE[int(t)])), float(mean_V[t])) for t in order_V]
    changed = [
        (f"{m}{f}", float(v) / affected) for m in above for f, v in enumerate(delta_acts[m].tolist()) if v
    ]
    return AblationReport(
        f"{module}{feature}", scale, position, done, int(totals["edits"]), int(totals["affected"]),
        totals["legal_before"] / affected, totals["legal_after"] / affected, totals["kl"] / affected,
        logits, sorted(changed, key=lambda item: -item[1])[:top],
    )  # fmt: skip
