"""``othello-tui train model`` and ``othello-tui eval model``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from othello_tui.cli.groups import DEFAULT_CHECKPOINTS, DEFAULT_WEIGHTS, train


@train.command("model")
@click.option("--minutes", type=float, default=110.0, show_default=True, help="Wall-clock budget of training steps.")
@click.option("--games", type=int, default=None, help="Budget in games (stops at whichever budget ends first).")
@click.option("--batch", type=int, default=256, show_default=True, help="Games per step.")
@click.option("--lr", type=float, default=4e-3, show_default=True, help="AdamW learning rate (embeddings, biases, norms).")
@click.option("--muon-lr", type=float, default=0.02, show_default=True, help="Muon learning rate (block weight matrices).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--tiny", is_flag=True, help="A 2-layer d_model-32 model, for quick experiments.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=DEFAULT_WEIGHTS, show_default=True)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=DEFAULT_CHECKPOINTS / "model.safetensors", show_default=True)
@click.option("--resume", is_flag=True, help="Continue from --checkpoint.")
def train_model_command(minutes, games, batch, lr, muon_lr, seed, tiny, device, out_dir, checkpoint, resume) -> None:
    """Train Othello-GPT on freshly generated games (soft next-move targets)."""
    from othello_tui.model.config import TINY, ModelConfig
    from othello_tui.model.device import resolve_device
    from othello_tui.model.train import TrainConfig, train_model

    cfg = TrainConfig(
        minutes=minutes, games=games, batch=batch, lr=lr, muon_lr=muon_lr, seed=seed,
        model=TINY if tiny else ModelConfig(),
    )
    info = train_model(cfg, out_dir, checkpoint, resume=resume, device=resolve_device(device), command=" ".join(["othello-tui", *sys.argv[1:]]))
    curve = info["training"]["learning_curve"]
    click.echo(f"wrote {out_dir}; held-out legality {curve[-1]['legal_top1']:.2%} after {info['training']['games']:,} games")
