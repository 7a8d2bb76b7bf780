"""``othello-tui train model`` and ``othello-tui eval model``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from othello_tui.cli import output
from othello_tui.cli.groups import DEFAULT_WEIGHTS, default_checkpoint, evaluate, train
from othello_tui.cli.loading import load_model_or_fail, weights_option


@train.command("model")
@click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=110.0,
    show_default=True,
    help="Wall-clock budget of training steps.",
)
@click.option(
    "--games", type=int, default=None, help="Budget in games (stops at whichever budget ends first)."
)
@click.option("--batch", type=int, default=256, show_default=True, help="Games per step.")
@click.option(
    "--lr",
    type=float,
    default=4e-3,
    show_default=True,
    help="AdamW learning rate (embeddings, biases, norms).",
)
@click.option(
    "--muon-lr",
    type=float,
    default=0.02,
    show_default=True,
    help="Muon learning rate (block weight matrices).",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--tiny", is_flag=True, help="A 2-layer d_model-32 model, for quick experiments.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=DEFAULT_WEIGHTS, show_default=True)
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="Checkpoint file [default: checkpoints/model.safetensors in the repository for the shipped"
    " weights/, else DIR.checkpoints/model.safetensors beside --out DIR].",
)
@click.option("--resume", is_flag=True, help="Continue from --checkpoint.")
@click.option(
    "--snapshots",
    default="",
    help="Also keep the weights at these training minutes, e.g. 15,30,60,120 (in snapshots/ beside "
    "--checkpoint; train probes on each with `train probes --weights`).",
)
def train_model_command(
    minutes, games, batch, lr, muon_lr, seed, tiny, device, out_dir, checkpoint, resume, snapshots
) -> None:
    """Train Othello-GPT on freshly generated games (soft next-move targets)."""
    from othello_tui.model.config import TINY, ModelConfig
    from othello_tui.model.device import resolve_device
    from othello_tui.model.train import TrainConfig, TrainingInterrupted, train_model

    checkpoint = checkpoint or default_checkpoint(out_dir, "model.safetensors")
    if resume and not checkpoint.exists():
        raise click.ClickException(f"no checkpoint at {checkpoint} to resume from")
    if checkpoint.exists() and not resume:
        raise click.ClickException(
            f"{checkpoint} exists: pass --resume to continue it, or delete it to start over"
        )
    try:
        snapshot_minutes = tuple(sorted({float(m) for m in snapshots.split(",") if m.strip()}))
    except ValueError:
        raise click.BadParameter(
            f"{snapshots!r} is not a list of minutes", param_hint="--snapshots"
        ) from None
    try:
        cfg = TrainConfig(
            minutes=minutes, games=games, batch=batch, lr=lr, muon_lr=muon_lr, seed=seed,
            model=TINY if tiny else ModelConfig(), snapshot_minutes=snapshot_minutes,
        )  # fmt: skip
        command = " ".join(["othello-tui", *sys.argv[1:]])
        info = train_model(
            cfg, out_dir, checkpoint, resume=resume, device=resolve_device(device), command=command
        )
    except TrainingInterrupted as stop:
        raise click.ClickException(f"{stop}; continue with the same command and --resume") from None
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    curve = info["training"]["learning_curve"]
    click.echo(
        f"wrote {out_dir}; held-out legality {curve[-1]['legal_top1']:.2%} after {info['training']['games']:,} games"
    )


@evaluate.command("model")
@click.option(
    "--games", type=click.IntRange(min=1), default=10_000, show_default=True, help="Fresh held-out games."
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Game seed (default: the held-out evaluation seed).",
)
@weights_option()
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option(
    "--record", is_flag=True, help="Also store the metrics in the weights folder's JSON (the model card)."
)
def eval_model_command(games, seed, weights, config_file, device, as_json, record) -> None:
    """Top-1 legality, legal-set F1, loss against its floor, and legality by move number."""
    import json

    from othello_tui.model.evaluate import EVAL_SEED, evaluate_model
    from othello_tui.model.weights import MODEL_STEM, atomic_write_text, read_json

    if record and Path(weights).is_file():
        raise click.UsageError(
            f"--record writes the model card of a weights folder; {weights} is a checkpoint file"
        )
    model = load_model_or_fail(weights, device, config_file)
    seed = EVAL_SEED if seed is None else seed
    metrics = evaluate_model(model, games, seed).to_dict() | {"games": games, "seed": seed}
    if record:
        meta = read_json(weights / f"{MODEL_STEM}.json")
        meta["metrics"] = metrics
        atomic_write_text(weights / f"{MODEL_STEM}.json", json.dumps(meta, indent=2) + "\n")
        click.echo(f"Recorded these metrics in {weights / f'{MODEL_STEM}.json'} (the model card).", err=True)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    _print_metrics(metrics)


def _print_metrics(metrics: dict) -> None:
    from rich.table import Table

    table = Table(title=f"Othello-GPT on {metrics['games']:,} held-out games (seed {metrics['seed']})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("top-1 legality", f"{metrics['legal_top1']:.3%}")
    table.add_row("legal-set F1 (p > 0.01)", f"{metrics['legal_set_f1']:.4f}")
    table.add_row("legal set exact", f"{metrics['legal_set_exact']:.2%}")
    table.add_row("loss / floor (nats)", f"{metrics['loss']:.4f} / {metrics['loss_floor']:.4f}")
    by_move = metrics["legal_top1_by_move"]
    worst = min(range(len(by_move)), key=by_move.__getitem__)
    table.add_row("worst move number", f"move {worst + 2}: {by_move[worst]:.2%}")
    output.console().print(table)
    for line in legality_rows(by_move):
        output.console().print(line)


def legality_rows(by_move: list[float], per_row: int = 10) -> list[str]:
    """Top-1 legality by move number as numbers, ten moves a line: a sparkline stretched over
    96…100% drew small dips as collapses."""
    lines = ["top-1 legality (%) by move number:"]
    for start in range(0, len(by_move), per_row):
        values = by_move[start : start + per_row]
        first, last = start + 2, start + 1 + len(values)  # entry i predicts move i+2
        lines.append(f"  moves {first:>2}–{last:<2} " + " ".join(f"{100 * v:5.1f}" for v in values))
    return lines
