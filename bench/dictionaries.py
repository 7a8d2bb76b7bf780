"""Training throughput of the dictionaries: all modules at once vs one at a time (issue 4).

    nice -n 5 python bench/dictionaries.py [--steps 16] [--threads 2]
    nice -n 5 python bench/dictionaries.py --compare [--modules L1A,L3M] [--steps 300]

Three ways to train the 12 dictionaries of the real configuration (d_model 128, 1024 features,
TopK), each timed over the same number of steps of 4,096 tokens, model forward passes and buffer
refills included:

- ``stacked``: one forward pass per batch of games feeds all 12; one batched (``bmm``) step;
- ``shared forward, 12 steps``: the same forward passes, but a separate step per dictionary;
- ``one at a time``: a separate run per dictionary, each with its own forward passes (measured on
  two modules, scaled to 12).

Tokens/s is per dictionary: how fast each dictionary advances while all 12 are being trained.
The model is ``checkpoints/model.safetensors`` (read-only) when present, else a random init, which
costs the same.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from othello_tui.dictionary.metrics import fvu, l0
from othello_tui.dictionary.sae import MODULES
from othello_tui.dictionary.train import INIT_SAMPLE, make_buffer, make_trainer
from othello_tui.dictionary.trainer import DictionaryTrainConfig
from othello_tui.model.checkpoint import load_checkpoint
from othello_tui.model.config import ModelConfig
from othello_tui.model.transformer import OthelloGPT

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "model.safetensors"


def load_model() -> tuple[OthelloGPT, str]:
    model = OthelloGPT(ModelConfig())
    model.reset_parameters(seed=0)
    if CHECKPOINT.exists():
        load_checkpoint(CHECKPOINT, model, [])
        return model.eval(), f"{CHECKPOINT} (model tensors only)"
    return model.eval(), "random init (no checkpoint)"


CPU_SECONDS: dict[int, float] = {}  # id of a timed run -> CPU seconds per step (all threads)


def timed(step, steps: int) -> float:
    """Wall-clock seconds per step after one warm-up step; CPU seconds go to :data:`CPU_SECONDS`
    (on a busy machine, CPU time is the steadier measure of the work done)."""
    step()
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    CPU_SECONDS[len(CPU_SECONDS)] = (time.process_time() - cpu) / steps
    return (time.perf_counter() - started) / steps


def stacked(model: OthelloGPT, cfg: DictionaryTrainConfig, steps: int) -> float:
    trainer, buffer = make_trainer(model, cfg), make_buffer(model, cfg, np.random.default_rng(0))
    trainer.initialise(buffer.sample(INIT_SAMPLE))
    return cfg.batch_tokens / timed(lambda: trainer.step(buffer.next_batch(), 0.5), steps)


def shared_forward(model: OthelloGPT, cfg: DictionaryTrainConfig, steps: int) -> float:
    buffer = make_buffer(model, cfg, np.random.default_rng(0))
    sample = buffer.sample(INIT_SAMPLE)
    trainers = []
    for m, module in enumerate(cfg.modules):
        trainers.append(make_trainer(model, DictionaryTrainConfig(**{**cfg.__dict__, "modules": (module,)})))
        trainers[-1].initialise(sample[m : m + 1])

    def step() -> None:
        batch = buffer.next_batch()
        for m, trainer in enumerate(trainers):
            trainer.step(batch[m : m + 1], 0.5)

    return cfg.batch_tokens / timed(step, steps)


def one_at_a_time(model: OthelloGPT, cfg: DictionaryTrainConfig, steps: int, modules: list[str]) -> float:
    seconds = [
        1 / stacked(model, DictionaryTrainConfig(**{**cfg.__dict__, "modules": (m,)}), steps) for m in modules
    ]
    return 1 / (np.mean(seconds) * len(cfg.modules))


#: --compare: (architecture, setting) pairs trained side by side on the same batches
VARIANTS = (
    ("topk", {"k": 16}),
    ("topk", {"k": 32}),
    ("standard", {"l1_coefficient": 0.3}),
    ("standard", {"l1_coefficient": 1.0}),
    ("standard", {"l1_coefficient": 3.0}),
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
        trainers.append(
            make_trainer(
                model, DictionaryTrainConfig(**{**base.__dict__, "architecture": architecture, **setting})
            )
        )
        trainers[-1].initialise(sample)
    for i in range(steps):
        batch = buffer.next_batch()
        for trainer in trainers:
            trainer.step(batch, i / steps)
    held_out = make_buffer(model, base, np.random.default_rng(1)).sample(INIT_SAMPLE)
    print(f"{steps} steps of {batch_tokens} tokens; held-out FVU / L0 / dead features per module")
    print(f"{'variant':<26}" + "".join(f"{m:>22}" for m in modules))
    for (architecture, setting), trainer in zip(VARIANTS, trainers, strict=True):
        cells = []
        for m, dictionary in enumerate(trainer.dicts.to_dictionaries().values()):
            x_hat, c = dictionary(held_out[m])
            dead = int(trainer.dead_MF()[m].sum())
            cells.append(f"{fvu(held_out[m], x_hat):.4f} / {l0(c):5.1f} / {dead:4d}")
        label = f"{architecture} {', '.join(f'{k}={v}' for k, v in setting.items())}"
        print(f"{label:<26}" + "".join(f"{cell:>22}" for cell in cells))


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
    cfg = DictionaryTrainConfig(modules=tuple(MODULES), tokens=1, minutes=None)
    print(
        f"model: {source}; {args.threads} threads; {args.steps} steps of {cfg.batch_tokens} tokens; "
        f"{cfg.architecture} k={cfg.k}, {cfg.d_sae} features, {len(cfg.modules)} modules"
    )
    rates, cpu_rates = {}, {}
    for name, run in (
        ("stacked (12 at once)", lambda: stacked(model, cfg, args.steps)),
        ("shared forward, 12 steps", lambda: shared_forward(model, cfg, args.steps)),
        ("one at a time", lambda: one_at_a_time(model, cfg, args.steps, ["L0A", "L5M"])),
    ):
        first = len(CPU_SECONDS)
        rates[name] = run()
        cpu_per_step = np.mean([CPU_SECONDS[i] for i in range(first, len(CPU_SECONDS))])
        dictionaries_per_run = len(cfg.modules) if name != "one at a time" else 1
        cpu_rates[name] = cfg.batch_tokens * dictionaries_per_run / cpu_per_step / len(cfg.modules)
    base, cpu_base = rates["one at a time"], cpu_rates["one at a time"]
    print(f"{'variant':<28}{'tokens/s per dict.':>20}{'× one at a time':>17}{'per CPU-second':>17}{'×':>7}")
    for name, rate in rates.items():
        print(
            f"{name:<28}{rate:>20,.0f}{rate / base:>17.2f}{cpu_rates[name]:>17,.0f}{cpu_rates[name] / cpu_base:>7.2f}"
        )
    print(
        f"minutes for 30M tokens per dictionary at the stacked rate: {30e6 / rates['stacked (12 at once)'] / 60:,.0f}"
    )


if __name__ == "__main__":
    main()
