"""Module outputs at every position of freshly generated games, shuffled across positions.

One model forward pass feeds every module: the buffer stores a token's outputs of all M modules
together (``[capacity, M, D]``). It is filled once, then each round serves a random half of it as
batches and refills exactly the served slots with fresh tokens, so each token is served once and
a batch mixes tokens from many hundred games (positions of one game are strongly correlated).
Shape legend: C capacity, M modules, N tokens, D d_model, B games, T positions.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from othello_tui.game.generator import random_games
from othello_tui.model.transformer import OthelloGPT

GAMES_PER_FORWARD = 64


@torch.no_grad()
def module_outputs(model: OthelloGPT, tokens_BT: Tensor, hook_names: list[str]) -> Tensor:
    """Outputs ``[N, M, D]`` of the named hooks at every non-padding position (token ≠ 0)."""
    _, cache = model.run_with_cache(tokens_BT, names=hook_names)
    valid_BT = tokens_BT != 0
    return torch.stack([cache[name][valid_BT] for name in hook_names], dim=1)


class ActivationBuffer:
    def __init__(
        self,
        model: OthelloGPT,
        hook_names: list[str],
        capacity: int,
        batch_tokens: int,
        rng: np.random.Generator,
    ):
        if capacity < 2 * batch_tokens:
            raise ValueError(f"buffer capacity {capacity} must hold at least two batches of {batch_tokens}")
        self.model, self.hook_names, self.rng = model, hook_names, rng
        self.batch_tokens = batch_tokens
        self.generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        self.data_CMD = torch.empty(capacity, len(hook_names), model.cfg.d_model, device=model.device)
        self.tokens_seen = 0
        self._fill(torch.arange(capacity))
        self._schedule_round()

    def _fresh(self, n: int) -> Tensor:
        """At least ``n`` fresh tokens ``[≥n, M, D]`` from new games."""
        chunks, count = [], 0
        while count < n:
            games = random_games(GAMES_PER_FORWARD, self.rng)
            tokens_BT = torch.from_numpy(games.tokens[:, :-1].astype(np.int64)).to(self.model.device)
            chunks.append(module_outputs(self.model, tokens_BT, self.hook_names))
            count += len(chunks[-1])
        return torch.cat(chunks)

    def _fill(self, slots: Tensor) -> None:
        fresh_NMD = self._fresh(len(slots))
        self.data_CMD[slots.to(self.data_CMD.device)] = fresh_NMD[: len(slots)]
        self.tokens_seen += len(slots)

    def _schedule_round(self) -> None:
        capacity = len(self.data_CMD)
        n_batches = max(1, capacity // 2 // self.batch_tokens)
        order = torch.randperm(capacity, generator=self.generator)
        self._batches = list(order[: n_batches * self.batch_tokens].split(self.batch_tokens))
        self._served: list[Tensor] = []

    def sample(self, n: int) -> Tensor:
        """``n`` random buffered tokens ``[M, n, D]`` without consuming them (statistics, init)."""
        slots = torch.randperm(len(self.data_CMD), generator=self.generator)[:n]
        return self.data_CMD[slots.to(self.data_CMD.device)].transpose(0, 1).contiguous()

    def next_batch(self) -> Tensor:
        """The next shuffled batch ``[M, batch_tokens, D]``."""
        if not self._batches:
            self._fill(torch.cat(self._served))
            self._schedule_round()
        slots = self._batches.pop()
        self._served.append(slots)
        return self.data_CMD[slots.to(self.data_CMD.device)].transpose(0, 1).contiguous()
