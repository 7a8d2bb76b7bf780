"""Training the probes of every (site, family) together, from one model forward pass per batch of
fresh games.

Each forward pass yields the residual stream at every site for a batch of games; a random subset of
its positions (positions of one game are strongly correlated, so more games with fewer positions
each give more information per probe step) is shuffled into mini-batches, each used for one Adam
step on the summed losses. The fit runs on standardised inputs (per site: minus the mean, divided by
one scalar, the RMS of the centred coordinates, both measured on the first batch) because residual
norms grow with depth. A scalar scale leaves probe directions unchanged; the standardisation is
folded into the saved weights, which act on the raw residual stream. Biases start at the class
priors of the first batch (``LinearProbes.set_prior_biases``).

Shape legend: N tokens, S sites, D d_model, Q squares.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor

from othello_tui.game.generator import random_games
from othello_tui.model.evaluate import EVAL_SEED
from othello_tui.model.transformer import OthelloGPT
from othello_tui.probes.data import probe_data
from othello_tui.probes.families import probe_sites
from othello_tui.probes.linear import LinearProbes


@dataclass
class ProbeTrainConfig:
    games: int = 20_000  # fresh games in all
    games_per_forward: int = 250
    positions_per_game: int | None = 16  # random positions kept per game (None: all)
    batch_tokens: int = 512  # tokens per Adam step
    lr: float = 1e-2  # Adam, on standardised inputs
    final_lr_frac: float = 0.05  # cosine decay to this fraction of ``lr``
    seed: int = 0
    threads: int | None = None

    def __post_init__(self):
        if self.games < 1 or self.games_per_forward < 1 or self.batch_tokens < 1:
            raise ValueError("games, games per forward pass and batch tokens must be positive")
        if self.positions_per_game is not None and self.positions_per_game < 1:
            raise ValueError("positions per game must be positive (or None for all)")
        if not 0 <= self.seed < EVAL_SEED:
            raise ValueError(f"training seeds must be in 0…{EVAL_SEED - 1} (evaluation uses the seeds above)")


@dataclass
class ProbeBatch:
    """Activations [N, S, D] at the probe sites, labels [N, Q] per family, and how many games
    they came from (the training budget counts games)."""

    x_NSD: Tensor
    labels: dict[str, Tensor]
    games: int


def lr_at(progress: float, cfg: ProbeTrainConfig) -> float:
    """Cosine decay from ``lr`` to ``final_lr_frac · lr`` over the budget (``progress`` in 0…1)."""
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return cfg.lr * (cfg.final_lr_frac + (1 - cfg.final_lr_frac) * cosine)


def model_batches(
    model: OthelloGPT, sites: list[str], cfg: ProbeTrainConfig, rng: np.random.Generator
) -> Iterator[ProbeBatch]:
    """Batches from ``cfg.games`` fresh games, one forward pass each, keeping
    ``positions_per_game`` random positions per game on average."""
    done = 0
    while done < cfg.games:
        n = min(cfg.games_per_forward, cfg.games - done)
        x_NSD, labels = probe_data(model, random_games(n, rng), sites)
        if cfg.positions_per_game is not None:
            keep = min(len(x_NSD), cfg.positions_per_game * n)
            index = torch.from_numpy(rng.choice(len(x_NSD), keep, replace=False)).to(x_NSD.device)
            x_NSD, labels = x_NSD[index], {name: value[index] for name, value in labels.items()}
        done += n
        yield ProbeBatch(x_NSD, labels, n)


def fit_probes(
    probes: LinearProbes,
    batches: Iterator[ProbeBatch],
    cfg: ProbeTrainConfig,
    on_step: Callable[[float, dict[str, float]], None] | None = None,
) -> dict[str, int]:
    """Fit ``probes`` on ``batches`` until they end or ``cfg.games`` games have been seen; returns
    counters. The first batch sets the standardisation and the initial biases.

    ``on_step(progress, status)`` is called after every step (``status``: loss and the mine/theirs
    accuracy of the step at its best site, when that family is probed)."""
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(probes.parameters(), lr=cfg.lr)
    mean_SD: Tensor | None = None
    scale_S: Tensor | None = None  # both set by the first batch
    games = tokens = steps = 0
    for batch in batches:
        if mean_SD is None or scale_S is None:
            mean_SD = batch.x_NSD.mean(0)
            scale_S = (batch.x_NSD - mean_SD).pow(2).mean((0, 2)).sqrt().clamp(min=1e-6)
            probes.set_prior_biases(batch.labels)
        x_NSD = (batch.x_NSD - mean_SD) / scale_S[:, None]
        order = torch.randperm(len(x_NSD), generator=generator).to(x_NSD.device)
        chunks = order.split(cfg.batch_tokens)
        for k, index in enumerate(chunks):
            progress = (games + batch.games * k / len(chunks)) / cfg.games
            for group in optimizer.param_groups:
                group["lr"] = lr_at(progress, cfg)
            logits = probes(x_NSD[index])
            labels = {name: value[index] for name, value in batch.labels.items()}
            loss = probes.loss(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            if on_step is not None:
                on_step(progress, _status(probes, logits, labels, loss))
        games += batch.games
        tokens += len(x_NSD)
        if games >= cfg.games:
            break
    if mean_SD is None or scale_S is None:
        raise ValueError("no batches to fit the probes on")
    probes.fold_input_affine(mean_SD, scale_S)
    return {"games": games, "tokens": tokens, "steps": steps}


@torch.no_grad()
def _status(probes: LinearProbes, logits: dict, labels: dict, loss: Tensor) -> dict[str, float]:
    status = {"loss": loss.item()}
    if "mine_theirs" in logits:
        hit_NSQ = probes.predict(logits)["mine_theirs"] == labels["mine_theirs"][:, None]
        status["mine_theirs"] = hit_NSQ.float().mean((0, 2)).max().item()
    return status


def train_probes(
    model: OthelloGPT, cfg: ProbeTrainConfig, show_progress: bool = True, command: str = ""
) -> tuple[LinearProbes, dict]:
    """Probes of every family at every site of ``model``, and the ``training`` provenance."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model.eval()
    sites = probe_sites(model.cfg.n_layers)
    probes = LinearProbes(sites, model.cfg.d_model).to(model.device)
    rng = np.random.default_rng(cfg.seed)
    columns = (
        TextColumn("[bold]train probes"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
    )  # fmt: skip
    started = time.perf_counter()
    with Progress(*columns, disable=not show_progress) as bar:
        task = bar.add_task("train", total=1.0, status="")
        running: dict[str, float] = {}

        def on_step(progress: float, status: dict[str, float]) -> None:
            for key, value in status.items():
                running[key] = value if key not in running else 0.9 * running[key] + 0.1 * value
            text = f"loss {running['loss']:.4f} · mine/theirs {running['mine_theirs']:.2%} (best site)"
            bar.update(task, completed=progress, status=text)

        counters = fit_probes(probes, model_batches(model, sites, cfg, rng), cfg, on_step)
        bar.update(task, completed=1.0)
    training = {
        "command": command,
        "settings": asdict(cfg),
        **counters,
        "wall_minutes": round((time.perf_counter() - started) / 60, 2),
        "machine": f"{platform.machine()} · {torch.get_num_threads()} threads · {model.device} · torch {torch.__version__}",
    }
    return probes.eval(), training
