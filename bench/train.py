"""Training throughput and sample efficiency of the production loop, against its baseline.

    python bench/train.py [--steps 150] [--batch 256]

Runs the production recipe (Muon on block matrices + AdamW on the rest) and the plain baseline
(AdamW on everything, lr 4e-3, the calibration's best plain run) for the same fixed budget of
steps, one after the other in one process, and prints tokens/s and held-out top-1 legality on
2,000 games. Both use the same warm-up and cosine schedule over the budget.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from othello_tui.model.evaluate import evaluate_model
from othello_tui.model.train import TrainConfig, train_model
from othello_tui.model.weights import load_model


def run(optimizer: str, steps: int, batch: int) -> tuple[float, float]:
    cfg = TrainConfig(minutes=None, games=steps * batch, batch=batch, optimizer=optimizer,
                      warmup_steps=min(200, steps // 4), eval_games=200, eval_every_minutes=1e9)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        info = train_model(cfg, Path(tmp), Path(tmp) / "ckpt.safetensors", show_progress=False)
        seconds = time.perf_counter() - start
        model, _ = load_model(Path(tmp))
    legality = evaluate_model(model, 2000).legal_top1
    return info["training"]["tokens"] / seconds, legality


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    print(f"{args.steps} steps × {args.batch} games")
    print(f"{'recipe':<34} {'tokens/s':>10} {'legality':>9}")
    for name, optimizer in (("production: Muon + AdamW", "muon"), ("baseline: AdamW lr 4e-3", "adamw")):
        rate, legality = run(optimizer, args.steps, args.batch)
        print(f"{name:<34} {rate:>10,.0f} {legality:>9.2%}")


if __name__ == "__main__":
    main()
