"""Training Othello-GPT on games generated on the fly, with soft targets (DESIGN.md §4).

Muon updates the blocks' weight matrices and AdamW the rest (embeddings, unembedding, biases,
LayerNorms): on this CPU Muon reached in 600 steps what AdamW needed ~1,500 for
(shared/CALIBRATION.md). The learning rate warms up over ``warmup_steps`` and then follows a
cosine to ``final_lr_frac`` over the budget, which may be wall-clock minutes, so a run on a
busy machine still finishes its schedule on time.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from othello_tui.game.generator import random_games
from othello_tui.model.checkpoint import load_checkpoint, save_checkpoint
from othello_tui.model.config import ModelConfig
from othello_tui.model.evaluate import EVAL_SEED, evaluate_model
from othello_tui.model.muon import Muon
from othello_tui.model.targets import model_inputs, soft_target_loss
from othello_tui.model.transformer import OthelloGPT
from othello_tui.model.weights import save_model

MUON_WEIGHTS = ("W_Q", "W_K", "W_V", "W_O", "W_in", "W_out")


@dataclass
class TrainConfig:
    minutes: float | None = 110.0
    games: int | None = None
    batch: int = 256
    lr: float = 4e-3  # AdamW
    muon_lr: float = 0.02
    optimizer: str = "muon"  # "muon": Muon on block matrices + AdamW on the rest; "adamw": AdamW on all
    weight_decay: float = 0.01
    warmup_steps: int = 200
    final_lr_frac: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    eval_games: int = 500  # held-out games for the learning curve
    eval_every_minutes: float = 5.0
    checkpoint_every_minutes: float = 5.0
    snapshot_minutes: tuple[float, ...] = ()  # also keep the weights at these training minutes
    threads: int | None = None
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self):
        if self.minutes is None and self.games is None:
            raise ValueError("give a budget: minutes, games or both")
        if self.optimizer not in ("muon", "adamw"):
            raise ValueError(f"unknown optimizer {self.optimizer!r} (muon or adamw)")
        if self.seed >= EVAL_SEED:
            raise ValueError(f"training seeds must be below {EVAL_SEED} (evaluation uses those)")


class _TrainState(TypedDict):
    """Training progress, saved in the checkpoint header."""

    step: int
    games: int
    elapsed: float  # seconds
    curve: list[dict[str, float]]  # held-out evaluations: minutes, games, legal_top1


class TrainingInterrupted(Exception):
    """Ctrl-C during training; the checkpoint holds every step done so far."""


def lr_scale(step: int, progress: float, cfg: TrainConfig) -> float:
    """Multiplier of the base learning rates: linear warm-up, then cosine to ``final_lr_frac``."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return warm * (cfg.final_lr_frac + (1 - cfg.final_lr_frac) * cosine)


def _is_block_matrix(name: str) -> bool:
    return name.startswith("blocks.") and name.endswith(MUON_WEIGHTS)


def make_optimizers(model: OthelloGPT, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    if cfg.optimizer == "adamw":
        return [
            torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
        ]
    matrices = [p for n, p in model.named_parameters() if _is_block_matrix(n)]
    others = [p for n, p in model.named_parameters() if not _is_block_matrix(n)]
    return [
        Muon(matrices, lr=cfg.muon_lr),
        torch.optim.AdamW(others, lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay),
    ]


_COLUMNS = (
    TextColumn("[bold]train model"),
    BarColumn(),
    TextColumn("{task.percentage:>5.1f}%"),
    TimeElapsedColumn(),
    TimeRemainingColumn(),
    TextColumn("{task.fields[status]}"),
)


def _progress(cfg: TrainConfig, elapsed: float, games: int) -> float:
    by_time = elapsed / (60 * cfg.minutes) if cfg.minutes else 0.0
    by_games = games / cfg.games if cfg.games else 0.0
    return max(by_time, by_games)


def _train_step(
    model: OthelloGPT, optimizers, cfg: TrainConfig, scale: float, tokens, legal
) -> tuple[float, float]:
    """One optimiser step at ``scale`` × the base learning rates; returns (loss, batch legality)."""
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * scale
    logits = model(tokens)
    loss = soft_target_loss(logits, legal)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    for opt in optimizers:
        opt.step()
        opt.zero_grad(set_to_none=True)
    with torch.no_grad():
        valid = legal.any(-1)
        hit = legal.gather(-1, logits.argmax(-1, keepdim=True)).squeeze(-1)
    return loss.item(), hit[valid].float().mean().item()


def train_model(
    cfg: TrainConfig,
    out_dir: Path,
    checkpoint: Path,
    resume: bool = False,
    device: str = "cpu",
    show_progress: bool = True,
    command: str = "",
) -> dict:
    """Train, checkpointing atomically (also on Ctrl-C, then :class:`TrainingInterrupted`), then
    write the weights and their model card to ``out_dir``; return the card's ``training`` info."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model = OthelloGPT(cfg.model)
    model.reset_parameters(seed=cfg.seed)
    model.to(device).train()
    optimizers = make_optimizers(model, cfg)
    for opt in optimizers:
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    rng = np.random.default_rng(cfg.seed)
    state: _TrainState = {"step": 0, "games": 0, "elapsed": 0.0, "curve": []}
    if resume and checkpoint.exists():
        header = load_checkpoint(checkpoint, model, optimizers)
        state, rng.bit_generator.state = header["state"], header["rng"]

    def write_checkpoint() -> None:
        header = {"state": state, "rng": rng.bit_generator.state, "config": asdict(cfg)}
        save_checkpoint(checkpoint, model, optimizers, header)

    def record_eval() -> str:
        model.eval()
        legal = evaluate_model(model, cfg.eval_games, seed=EVAL_SEED + 1).legal_top1
        model.train()
        minutes = state["elapsed"] / 60
        state["curve"].append(
            {"minutes": round(minutes, 2), "games": state["games"], "legal_top1": round(legal, 5)}
        )
        return f"{minutes:6.1f} min · step {state['step']} · {state['games']:,} games · held-out legality {legal:.2%}"

    def write_snapshots() -> None:
        """Weights folders ``snapshots/minute-M`` beside the checkpoint for each snapshot minute passed (issue 14:
        probes over training)."""
        for minute in cfg.snapshot_minutes:
            folder = Path(checkpoint).parent / "snapshots" / f"minute-{minute:g}"
            if state["elapsed"] >= 60 * minute and not folder.exists():
                model.eval()
                card = {
                    "training": {"snapshot_minutes": minute, "steps": state["step"], "games": state["games"]}
                }
                save_model(model, folder, card)
                model.train()

    running: dict[str, float | None] = {"loss": None, "legal": None}
    last_eval = last_checkpoint = state["elapsed"]
    try:
        with Progress(*_COLUMNS, disable=not show_progress) as bar:
            task = bar.add_task("train", total=1.0, status="")
            report = bar.console.print if show_progress else (lambda line: None)
            while (progress := _progress(cfg, state["elapsed"], state["games"])) < 1.0:
                started = time.perf_counter()
                tokens, legal = model_inputs(random_games(cfg.batch, rng), device)
                loss, batch_legal = _train_step(
                    model, optimizers, cfg, lr_scale(state["step"], progress, cfg), tokens, legal
                )
                for key, value in (("loss", loss), ("legal", batch_legal)):
                    previous = running[key]
                    running[key] = value if previous is None else 0.95 * previous + 0.05 * value
                state["step"] += 1
                state["games"] += cfg.batch
                state["elapsed"] += time.perf_counter() - started
                if state["elapsed"] - last_eval >= 60 * cfg.eval_every_minutes:
                    report(record_eval())
                    last_eval = state["elapsed"]
                write_snapshots()
                if state["elapsed"] - last_checkpoint >= 60 * cfg.checkpoint_every_minutes:
                    write_checkpoint()
                    last_checkpoint = state["elapsed"]
                bar.update(
                    task,
                    completed=min(1.0, _progress(cfg, state["elapsed"], state["games"])),
                    status=f"step {state['step']} · loss {running['loss']:.3f} · legal {running['legal']:.2%}",
                )
            report(record_eval())
    except KeyboardInterrupt:
        write_checkpoint()
        raise TrainingInterrupted(
            f"interrupted at step {state['step']}; checkpoint saved to {checkpoint}"
        ) from None
    write_checkpoint()
    model.eval()
    info = {
        "training": {
            "command": command,
            "settings": asdict(cfg),
            "steps": state["step"],
            "games": state["games"],
            "tokens": state["games"] * 59,
            "wall_minutes": round(state["elapsed"] / 60, 2),
            "machine": f"{platform.machine()} · {torch.get_num_threads()} threads · {device} · torch {torch.__version__}",
            "learning_curve": state["curve"],
        }
    }
    save_model(model, out_dir, info)
    return info
