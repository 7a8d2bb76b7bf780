"""Module outputs computed once and kept on disk, so a sweep of dictionary recipes does not rerun
the model for every recipe (issue 14).

A store is a folder: ``activations.npy`` (float16 ``[N, M, D]``: token, module, d_model; a plain
NumPy file read through a memory map) and ``store.json`` (the modules, the model fingerprint, the
games' seed and counts). Float16 keeps about three significant digits, far below the
reconstruction error of any dictionary, and halves the disk and page-cache footprint.

:class:`StoredActivations` serves batches like :class:`~othello_tui.dictionary.buffer.ActivationBuffer`
(``sample``, ``next_batch``): random tokens without replacement within an epoch, so a batch mixes
positions of many games. Shape legend: N tokens, M modules, D d_model, B games.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from othello_tui.dictionary.buffer import GAMES_PER_FORWARD, module_outputs
from othello_tui.game.corpus import atomic_path
from othello_tui.game.generator import random_games
from othello_tui.model.transformer import OthelloGPT
from othello_tui.model.weights import WeightsError, model_fingerprint

DATA = "activations.npy"
META = "store.json"


def write_store(
    model: OthelloGPT,
    hook_names: list[str],
    modules: list[str],
    n_tokens: int,
    seed: int,
    out_dir: Path,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``n_tokens`` tokens' outputs of the hooks (fresh games of ``seed``'s stream, the last
    one cut short) to ``out_dir``; the data file is renamed into place only once complete."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    M, D = len(hook_names), model.cfg.d_model
    written, n_games = 0, 0
    with atomic_path(out_dir / DATA) as tmp:
        data = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(n_tokens, M, D))
        while written < n_tokens:
            games = random_games(GAMES_PER_FORWARD, rng)
            tokens_BT = torch.from_numpy(games.tokens[:, :-1].astype(np.int64)).to(model.device)
            outputs_NMD = module_outputs(model, tokens_BT, hook_names)[: n_tokens - written]
            data[written : written + len(outputs_NMD)] = outputs_NMD.cpu().numpy().astype(np.float16)
            written += len(outputs_NMD)
            n_games += len(games)
            if progress:
                progress(written, n_tokens)
        data.flush()
        del data
    meta = {
        "modules": modules,
        "hook_names": hook_names,
        "tokens": n_tokens,
        "games": n_games,
        "seed": seed,
        "model_fingerprint": model_fingerprint(model),
    }
    with atomic_path(out_dir / META) as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    return out_dir


def read_store_meta(store_dir: Path) -> dict:
    path = Path(store_dir) / META
    if not path.exists() or not (Path(store_dir) / DATA).exists():
        raise WeightsError(
            f"{store_dir} holds no activation store (make one with `othello-tui train activations`)"
        )
    return json.loads(path.read_text())


class StoredActivations:
    """Batches ``[M, batch_tokens, D]`` (float32, on ``device``) of some of a store's modules."""

    def __init__(
        self,
        store_dir: Path,
        modules: list[str],
        batch_tokens: int,
        rng: np.random.Generator,
        fingerprint: str | None = None,
        device: torch.device | str = "cpu",
    ):
        meta = read_store_meta(store_dir)
        if fingerprint is not None and meta["model_fingerprint"] != fingerprint:
            raise WeightsError(f"the activation store {store_dir} was made with another model")
        missing = [m for m in modules if m not in meta["modules"]]
        if missing:
            raise WeightsError(f"the activation store {store_dir} lacks {', '.join(missing)}")
        self.data_NMD = np.load(Path(store_dir) / DATA, mmap_mode="r")
        self.columns = [meta["modules"].index(m) for m in modules]
        self.batch_tokens, self.rng, self.device = batch_tokens, rng, device
        if len(self.data_NMD) < 2 * batch_tokens:
            raise WeightsError(f"the activation store {store_dir} holds fewer than two batches")
        self._order = np.empty(0, np.int64)
        self.tokens_seen = 0

    def _rows(self, index_N: np.ndarray) -> Tensor:
        rows_NMD = self.data_NMD[np.sort(index_N)][:, self.columns]  # sorted reads: sequential pages
        return torch.from_numpy(rows_NMD.astype(np.float32)).transpose(0, 1).contiguous().to(self.device)

    def sample(self, n: int) -> Tensor:
        return self._rows(self.rng.choice(len(self.data_NMD), min(n, len(self.data_NMD)), replace=False))

    def next_batch(self) -> Tensor:
        if len(self._order) < self.batch_tokens:
            self._order = self.rng.permutation(len(self.data_NMD))
        index_N, self._order = self._order[: self.batch_tokens], self._order[self.batch_tokens :]
        self.tokens_seen += self.batch_tokens
        return self._rows(index_N)
