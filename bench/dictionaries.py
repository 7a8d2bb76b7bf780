"""Training throughput of the dictionaries: all modules at once vs one at a time (issue 4), and
(``--compare``) a short architecture comparison at similar L0.

    nice -n 5 python bench/dictionaries.py [--steps 16] [--threads 2]
    nice -n 5 python bench/dictionaries.py --compare [--modules L1A,L3M] [--steps 300]

Ways to train the 12 dictionaries of the real configuration (d_model 128, 1024 features, TopK with
the default per-module k), each timed over the same number of steps of 4,096 tokens, model forward
passes and buffer refills included:

- ``12 at once, per-module products``: one forward pass per batch of games feeds all 12; the step
  differentiates one dictionary at a time (``group_size=1``, the default on a CPU);
- ``12 at once, one stacked product``: the same, but one batched (``bmm``) product over all 12
  (``group_size=12``, the default on a GPU);
- ``one at a time``: a separate run per dictionary, each with its own forward passes (measured on
  two modules, scaled to 12).

Tokens/s is per dictionary: how fast each dictionary advances while all 12 are being trained.
CPU-seconds are reported too: on a shared machine they are the steadier measure. The model is the
shipped one (``weights/``) when present, else ``checkpoints/model.safetensors`` (read-only), else a
random init, which costs the same.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from othello_tui.dictionary.metrics import fvu, l0
from othello_tui.dictionary.sae import MODULES
from othello_tui.dictionary.train import INIT_SAMPLE, make_buffer, make_trainer
from othello_tui.dictionary.trainer import DictionaryTrainConfig, half_writeup_k
from othello_tui.model.checkpoint import load_checkpoint
from othello_tui.model.config import ModelConfig
from othello_tui.model.transformer import OthelloGPT
from othello_tui.model.weights import WEIGHTS_DIR, WeightsError
from othello_tui.model.weights import load_model as load_weights

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "model.safetensors"


def load_model() -> tuple[OthelloGPT, str]:
    try:
        return load_weights(WEIGHTS_DIR)[0], f"{WEIGHTS_DIR}"
    except WeightsError:
        pass
    model = OthelloGPT(ModelConfig())
    model.reset_parameters(seed=0)
    if CHECKPOINT.exists():
        load_checkpoint(CHECKPOINT, model, [])
        return model.eval(), f"{CHECKPOINT} (model tensors only)"
    return model.eval(), "random init (no weights, no checkpoint)"


def timed(step, steps: int) -> tuple[float, float]:
    """(wall-clock, CPU) seconds per step after one warm-up step."""
    step()
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps, (time.process_time() - cpu) / steps


def rate(model: OthelloGPT, cfg: DictionaryTrainConfig, steps: int) -> tuple[float, float]:
    """Tokens per wall-clock second and per CPU-second that each dictionary of ``cfg`` sees."""
    trainer, buffer = make_trainer(model, cfg), make_buffer(model, cfg, np.random.default_rng(0))
    trainer.initialise(buffer.sample(INIT_SAMPLE))
    wall, cpu = timed(lambda: trainer.step(buffer.next_batch(), 0.5), steps)
    return cfg.batch_tokens / wall, cfg.batch_tokens / cpu


def one_at_a_time(
    model: OthelloGPT, cfg: DictionaryTrainConfig, steps: int, modules: list[str]
) -> tuple[float, float]:
    """Per-dictionary rates when the dictionaries are trained one after the other."""
    rates = np.array([rate(model, replace(cfg, modules=(m,)), steps) for m in modules])
    return tuple(1 / (1 / rates).mean(0) / len(cfg.modules))


#: --compare: (architecture, setting) pairs trained side by side on the same batches
VARIANTS = (
    ("topk", {"k": 16}),
    ("topk", {"k": 32}),
    ("topk", {"k": 64}),
    ("standard", {"l1_coefficient": 0.03}),
    ("standard", {"l1_coefficient": 0.1}),
    ("standard", {"l1_coefficient": 0.3}),
)


def compare(model: OthelloGPT, modules: tuple[str, ...], steps: int, batch_tokens: int) -> None:
    """Train every :data:`VARIANTS` entry on the same batches, then FVU and L0 of the saved
    (scale-folded) dictionaries on held-out games."""
    base = DictionaryTrainConfig(
        modules=modules, tokens=steps * batch_tokens, minutes=None, batch_tokens=batch_tokens
    )
    buffer = make_buffer(model, base, np.random.default_rng(0))
    sample = buffer.sample(INIT_SAMPLE)
    trainers = []
    for architecture, setting in VARIANTS:
        trainers.append(make_trainer(model, replace(base, architecture=architecture, **setting)))
        trainers[-1].initialise(sample)
    for i in range(steps):
        batch = buffer.next_batch()
        for trainer in trainers:
            trainer.step(batch, i / steps)
    held_out = make_buffer(model, base, np.random.default_rng(1)).sample(INIT_SAMPLE)
    print(f"{steps} steps of {batch_tokens} tokens; held-out FVU / L0 / dead features per module")
    print(f"{'variant':<30}" + "".join(f"{m:>22}" for m in modules))
    for (architecture, setting), trainer in zip(VARIANTS, trainers, strict=True):
        cells = []
        for m, dictionary in enumerate(trainer.dicts.to_dictionaries().values()):
            x_hat, c = dictionary(held_out[m])
            dead = int(trainer.dead_MF()[m].sum())
            cells.append(f"{fvu(held_out[m], x_hat):.4f} / {l0(c):5.1f} / {dead:4d}")
        label = f"{architecture} {', '.join(f'{k}={v}' for k, v in setting.items())}"
        print(f"{label:<30}" + "".join(f"{cell:>22}" for cell in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=16, help="timed steps per variant (a buffer round is 8)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--compare", action="store_true", help="compare architectures at similar L0 instead")
    parser.add_argument("--modules", default="L1A,L3M", help="--compare: modules to train")
    parser.add_argument("--batch", type=int, default=4096, help="--compare: tokens per step")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, source = load_model()
    if args.compare:
        print(f"model: {source}; {args.threads} threads")
        compare(model, tuple(args.modules.split(",")), args.steps, args.batch)
        return
    cfg = DictionaryTrainConfig(
        modules=tuple(MODULES), tokens=1, minutes=None, module_k=half_writeup_k(MODULES)
    )
    print(
        f"model: {source}; {args.threads} threads; {args.steps} steps of {cfg.batch_tokens} tokens; "
        f"{cfg.architecture}, k per module {list(cfg.module_k.values())}, {cfg.d_sae} features"
    )
    rates = {
        "12 at once, per-module products": rate(model, replace(cfg, group_size=1), args.steps),
        "12 at once, one stacked product": rate(model, replace(cfg, group_size=12), args.steps),
        "one at a time": one_at_a_time(model, cfg, args.steps, ["L0A", "L5M"]),
    }
    (base, cpu_base), best = rates["one at a time"], max(r[0] for r in rates.values())
    print(f"{'variant':<34}{'tokens/s per dictionary':>25}{'×':>7}{'per CPU-second':>17}{'×':>7}")
    for name, (wall, cpu) in rates.items():
        print(f"{name:<34}{wall:>25,.0f}{wall / base:>7.2f}{cpu:>17,.0f}{cpu / cpu_base:>7.2f}")
    print(f"minutes for 25M tokens per dictionary at the best rate: {25e6 / best / 60:,.0f}")


if __name__ == "__main__":
    main()
