"""Training the dictionaries of several modules together (DESIGN.md §5, issue 4).

One model forward pass per batch of fresh games feeds every module (``buffer.py``); the
dictionaries are one stacked module (``stacked.py``) so a step is a few batched matmuls. Budgets are
wall-clock minutes and/or tokens; the learning-rate schedule follows whichever ends first, so a run
on a busy machine still finishes its schedule. Checkpoints are single safetensors files (weights,
Adam state, counters; a JSON header with step, tokens, time, RNG state, settings) written
atomically; ``resume`` continues from one with fresh games.
"""

from __future__ import annotations

import json
import platform
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from safetensors import safe_open

from othello_tui.dictionary import distributed
from othello_tui.dictionary.buffer import ActivationBuffer
from othello_tui.dictionary.io import save_dictionary
from othello_tui.dictionary.sae import DictionaryConfig, hook_name_of
from othello_tui.dictionary.stacked import StackedDictionaries
from othello_tui.dictionary.store import StoredActivations
from othello_tui.dictionary.trainer import DictionaryTrainConfig, DictionaryTrainer
from othello_tui.model.transformer import OthelloGPT
from othello_tui.model.weights import WeightsError, atomic_save_tensors, model_fingerprint, read_tensors

EMA = 0.98  # smoothing of the displayed per-module FVU and L0
INIT_SAMPLE = 16384  # buffered tokens used for scales and b_dec


def make_trainer(model: OthelloGPT, cfg: DictionaryTrainConfig) -> DictionaryTrainer:
    """BatchTopK trains dictionaries of JumpReLU form (one threshold each, see ``stacked.py``)."""
    batch_top_k = cfg.architecture == "batchtopk"
    configs = [
        DictionaryConfig(
            module,
            hook_name_of(module),
            "jumprelu" if batch_top_k else cfg.architecture,
            d_in=model.cfg.d_model,
            d_sae=cfg.d_sae,
            k=cfg.module_k.get(module, cfg.k) if cfg.architecture == "topk" else None,
            l1_coefficient=cfg.l1_coefficient if cfg.architecture == "standard" else None,
        )
        for module in cfg.modules
    ]
    batch_k = [cfg.module_k.get(module, cfg.k) for module in cfg.modules] if batch_top_k else None
    generator = torch.Generator().manual_seed(cfg.seed)
    stacked = StackedDictionaries(configs, generator, batch_k).to(model.device)
    return DictionaryTrainer(stacked, cfg)


def make_buffer(
    model: OthelloGPT, cfg: DictionaryTrainConfig, rng: np.random.Generator
) -> ActivationBuffer | StoredActivations:
    """Fresh games through the model, or batches of a stored set of module outputs."""
    if cfg.activations:
        fingerprint = model_fingerprint(model)
        return StoredActivations(
            Path(cfg.activations), list(cfg.modules), cfg.batch_tokens, rng, fingerprint, model.device
        )
    hooks = [hook_name_of(module) for module in cfg.modules]
    return ActivationBuffer(model, hooks, cfg.buffer_batches * cfg.batch_tokens, cfg.batch_tokens, rng)


def progress_of(cfg: DictionaryTrainConfig, elapsed: float, tokens: int) -> float:
    by_time = elapsed / (60 * cfg.minutes) if cfg.minutes else 0.0
    by_tokens = tokens / cfg.tokens if cfg.tokens else 0.0
    return max(by_time, by_tokens)


def _same_run(saved: dict, cfg: DictionaryTrainConfig) -> bool:
    keys = ("modules", "architecture", "d_sae", "k", "module_k", "batch_tokens", "matryoshka", "activations")
    return all(
        saved.get(key) == (list(value) if isinstance(value, tuple) else value)
        for key, value in asdict(cfg).items()
        if key in keys
    )


def _status_table(modules: list[str], fvu: np.ndarray, l0: np.ndarray, dead: np.ndarray) -> Table:
    table = Table(box=None, padding=(0, 1), show_edge=False)
    table.add_column("")
    for module in modules:
        table.add_column(module, justify="right")
    table.add_row("FVU", *(f"{v:.4f}" for v in fvu))
    table.add_row("L0", *(f"{v:.1f}" for v in l0))
    table.add_row("dead", *(str(int(v)) for v in dead))
    return table


def train_dictionaries(
    model: OthelloGPT,
    cfg: DictionaryTrainConfig,
    out_dir: Path,
    checkpoint: Path,
    resume: bool = False,
    show_progress: bool = True,
) -> dict:
    """Train, checkpointing atomically, then save one dictionary per module to ``out_dir``.
    Returns the ``training`` provenance written into every dictionary's JSON."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model.eval()
    fingerprint = model_fingerprint(model)
    trainer = make_trainer(model, cfg)
    # under torchrun each rank draws its own games; rank 0 alone logs and writes
    rank, world = distributed.rank(), distributed.size()
    rng = np.random.default_rng(cfg.seed if world == 1 else [cfg.seed, rank])
    show_progress = show_progress and rank == 0
    elapsed = 0.0
    if resume and checkpoint.exists():
        tensors = read_tensors(checkpoint)
        with safe_open(checkpoint, "pt") as f:
            header = json.loads(f.metadata()["header"])
        if header["model_fingerprint"] != fingerprint or not _same_run(header["config"], cfg):
            raise WeightsError(
                f"checkpoint {checkpoint} belongs to another model or other settings; drop --resume"
            )
        states = header.get("rng_ranks", [header["rng"]])
        if len(states) != world:
            raise WeightsError(
                f"checkpoint {checkpoint} was written by {len(states)} process(es); resume it with as many "
                f"(now {world})"
            )
        rng.bit_generator.state = states[rank]
        buffer = make_buffer(model, cfg, rng)  # games the run has not seen yet
        trainer.load_checkpoint_tensors(tensors)
        trainer.steps, trainer.tokens, elapsed = header["steps"], header["tokens"], header["elapsed"]
    else:
        buffer = make_buffer(model, cfg, rng)
        trainer.initialise(buffer.sample(INIT_SAMPLE))

    def write_checkpoint() -> None:
        states = distributed.gather(rng.bit_generator.state)  # every rank takes part
        if rank != 0:
            return
        header = {
            "steps": trainer.steps,
            "tokens": trainer.tokens,
            "elapsed": elapsed,
            "rng": states[0],
            "config": asdict(cfg),
            "model_fingerprint": fingerprint,
        }
        if world > 1:
            header["rng_ranks"] = states
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_tensors(checkpoint, trainer.checkpoint_tensors(), metadata={"header": json.dumps(header)})

    modules = list(cfg.modules)
    fvu_ema, l0_ema = np.full(len(modules), np.nan), np.full(len(modules), np.nan)
    bar = Progress(
        TextColumn("[bold]train dictionaries"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    )
    # Rich's stub says ``completed: int``, but a task's progress is a float (``update`` takes one)
    completed = progress_of(cfg, elapsed, trainer.tokens)
    task = bar.add_task("train", total=1.0, status="", completed=completed)  # type: ignore[arg-type]
    last_checkpoint, last_draw = elapsed, 0.0
    console = Console()
    # a terminal gets a live bar and table; a pipe or a log file gets whole lines, one per
    # checkpoint (a Live display there prints its last frame, bar characters and all)
    live_display = show_progress and console.is_terminal
    log_lines = show_progress and not live_display
    with Live(Group(bar), refresh_per_second=2, console=console) if live_display else nullcontext() as live:
        while (progress := progress_of(cfg, elapsed, trainer.tokens)) < 1.0:
            started = time.perf_counter()
            stats = trainer.step(buffer.next_batch(), progress)
            elapsed = distributed.most(elapsed + time.perf_counter() - started)
            fvu, l0 = stats.fvu_M.cpu().numpy(), stats.l0_M.cpu().numpy()
            fvu_ema = np.where(np.isnan(fvu_ema), fvu, EMA * fvu_ema + (1 - EMA) * fvu)
            l0_ema = np.where(np.isnan(l0_ema), l0, EMA * l0_ema + (1 - EMA) * l0)
            if elapsed - last_checkpoint >= 60 * cfg.checkpoint_every_minutes:
                write_checkpoint()
                last_checkpoint = elapsed
                if log_lines:
                    cells = " ".join(
                        f"{m} {f:.4f}/{z:.1f}" for m, f, z in zip(modules, fvu_ema, l0_ema, strict=True)
                    )
                    console.print(f"{elapsed / 60:.1f} min · {trainer.tokens:,} tokens · FVU/L0 {cells}")
            if live is not None and elapsed - last_draw >= 1.0:  # a Live exactly when live_display
                last_draw = elapsed
                status = f"step {trainer.steps:,} · {trainer.tokens:,} tokens · {trainer.tokens / max(elapsed, 1e-9):,.0f} tok/s"
                bar.update(task, completed=min(1.0, progress_of(cfg, elapsed, trainer.tokens)), status=status)
                dead = trainer.dead_MF().sum(-1).cpu().numpy()
                live.update(Group(bar, _status_table(modules, fvu_ema, l0_ema, dead)))
        bar.update(task, completed=1.0)
    write_checkpoint()
    dead = trainer.dead_MF().sum(-1).cpu().numpy()
    training = {
        "command": cfg.extra.get("command", ""),
        "settings": {k: v for k, v in asdict(cfg).items() if k != "extra"},
        "steps": trainer.steps,
        "tokens": trainer.tokens,
        "wall_minutes": round(elapsed / 60, 2),
        "machine": f"{platform.machine()} · {torch.get_num_threads()} threads · {model.device} · torch {torch.__version__}",
        "final_running": {
            module: {"fvu": round(float(f), 5), "l0": round(float(z), 2), "dead": int(d)}
            for module, f, z, d in zip(modules, fvu_ema, l0_ema, dead, strict=True)
        },
    }
    if world > 1:
        training["processes"] = world
    if rank == 0:
        for dictionary in trainer.dicts.to_dictionaries().values():
            save_dictionary(
                dictionary.cpu(), out_dir, {"model_fingerprint": fingerprint, "training": training}
            )
    return training
