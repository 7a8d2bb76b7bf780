"""The public Othello-GPT's size against the shipped model, side by side (issue 16 targets for the
public config on this CPU: load + first screen ≤ 3 s, a key step ≤ 50 ms p95, one attribution
≤ 30 ms, ``trace --depth 2`` ≤ 1 s).

    python bench/foreign_model.py [--runs 3] [--keys 100] [--d-sae 4096] [--k 32]

The public model (8 layers, d_model 512, n_ctx 59, LNPre: 25M parameters) cannot be downloaded
here: a random one of exactly that config is written as ``torch.save(state_dict)`` with
TransformerLens keys (and its ``mask``/``IGNORE`` buffers), config inferred, with random TopK
dictionaries (``--d-sae`` features, ``--k`` active) saved beside it. The shipped model runs with
its own dictionaries. Rows:

- load + first analysis: a fresh process (torch already imported) loads the app's engine (model,
  dictionaries, probes, the digests that find a feature cache) and analyses one game, what the
  app does before the first screen with predictions and features (median of ``--runs``);
- key step: a step (←/→) through an analysed game (the session's view, the analysis cached);
  a game the analysis cache has not seen, one forward pass over all of it plus the view (what a
  move played cost before the incremental pass); and the next move played after it, a pass over
  that one move from the game's cached keys and values plus the view (p50 / p95 of ``--keys``
  games, both in the same run);
- one attribution: DLA, ADC (MLP feature), OV (attention feature) and QK, median over targets;
- ``trace --depth 2``: the whole ``othello-tui trace`` command, the Python + torch start-up
  every command pays, and the tree alone in process (medians of ``--runs``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from othello_tui.circuits.nodes import Target  # noqa: E402
from othello_tui.dictionary.io import save_dictionary  # noqa: E402
from othello_tui.dictionary.sae import Dictionary, DictionaryConfig, hook_name_of, module_names  # noqa: E402
from othello_tui.game.generator import generate_games  # noqa: E402
from othello_tui.game.rules import Game  # noqa: E402
from othello_tui.game.squares import TOKEN_TO_SQUARE, square_name  # noqa: E402
from othello_tui.model.weights import load_model, model_fingerprint  # noqa: E402

PUBLIC = dict(n_layers=8, d_model=512, n_heads=8, d_head=64, d_mlp=2048, n_ctx=59)


def write_public_model(folder: Path, d_sae: int, k: int) -> Path:
    """A random public-config checkpoint (``synthetic_model.pth``) and its dictionaries beside it."""
    g = torch.Generator().manual_seed(0)
    L, D, H, E, M, T = PUBLIC.values()
    state = OrderedDict(
        [
            ("embed.W_E", torch.randn(61, D, generator=g)),
            ("pos_embed.W_pos", torch.randn(T, D, generator=g) * 0.5),
        ]
    )
    for layer in range(L):
        b = f"blocks.{layer}."
        for n in "QKV":
            state[f"{b}attn.W_{n}"] = torch.randn(H, D, E, generator=g) * D**-0.5
        state[b + "attn.W_O"] = torch.randn(H, E, D, generator=g) * (H * E) ** -0.5
        for n in "QKV":
            state[f"{b}attn.b_{n}"] = torch.zeros(H, E)
        state[b + "attn.b_O"] = torch.zeros(D)
        state[b + "attn.mask"] = torch.tril(torch.ones(T, T, dtype=torch.bool))
        state[b + "attn.IGNORE"] = torch.tensor(-1e5)
        state[b + "mlp.W_in"], state[b + "mlp.b_in"] = (
            torch.randn(D, M, generator=g) * D**-0.5,
            torch.zeros(M),
        )
        state[b + "mlp.W_out"], state[b + "mlp.b_out"] = (
            torch.randn(M, D, generator=g) * M**-0.5,
            torch.zeros(D),
        )
    state["unembed.W_U"], state["unembed.b_U"] = torch.randn(D, 61, generator=g) * D**-0.5, torch.zeros(61)
    path = folder / "synthetic_model.pth"
    torch.save(state, path)
    model, _ = load_model(path)
    fingerprint = model_fingerprint(model)
    for module in module_names(L):
        cfg = DictionaryConfig(module, hook_name_of(module), "topk", d_in=D, d_sae=d_sae, k=k)
        dictionary = Dictionary(cfg)
        dictionary.reset_parameters(g)
        save_dictionary(
            dictionary, folder / "synthetic_model" / "dictionaries", {"model_fingerprint": fingerprint}
        )
    return path


def child_load(weights: str) -> None:
    """In a fresh process: seconds from loading the engine to the first game analysed."""
    from othello_tui.tui.engine import load_engine

    squares = game_squares(0)
    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        engine = load_engine(Path(weights), "cpu", cache_dir=Path(cache_dir))
        engine.analyse(squares)
        print(time.perf_counter() - start)


def game_squares(index: int) -> list[int]:
    games = generate_games(index + 1, 7)
    return [int(s) for s in games.squares[index] if s >= 0]


def median_of(runs: int, fn) -> float:
    return statistics.median(fn() for _ in range(runs))


def load_seconds(weights: Path, runs: int) -> float:
    def once() -> float:
        out = subprocess.run(
            [sys.executable, __file__, "--child-load", str(weights)],
            capture_output=True,
            text=True,
            check=True,
        )
        return float(out.stdout.split()[-1])

    return median_of(runs, once)


def percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def key_steps_ms(weights: Path, keys: int) -> dict[str, tuple[float, float]]:
    """(p50, p95) of a step (←/→) through an analysed game; of a game the analysis cache has not
    seen (one pass over all of it: what a move played cost before the incremental pass); and of
    the next move played after it (a pass over that one move, from the game's keys and values)."""
    from othello_tui.tui.session import Session

    session = Session.from_weights(weights, device="cpu", build=False)
    session.load()
    game = Game.from_squares(game_squares(2))
    session.analyse(game)
    steps = []
    for n in list(range(1, 59)) * 2:
        start = time.perf_counter()
        session.analyse(game)  # what the app asks before each screen: the cache answers
        session.view(game, n)
        steps.append((time.perf_counter() - start) * 1000)
    times: dict[str, list[float]] = {"whole": [], "played": []}
    for index in range(keys):
        squares = game_squares(index)
        n = 10 + index % 45  # a different game every key: never in the analysis cache
        for kind, moves in (("whole", n), ("played", n + 1)):
            game = Game.from_squares(squares[:moves])
            start = time.perf_counter()
            session.analyse(game)
            assert session.view(game, moves).probs is not None
            times[kind].append((time.perf_counter() - start) * 1000)
    return {"step": percentiles(steps), **{kind: percentiles(t) for kind, t in times.items()}}


def attribution_ms(weights: Path) -> dict[str, float]:
    from othello_tui.tui.engine import load_engine

    engine = load_engine(weights, "cpu")
    trace = engine.trace(game_squares(1))
    rng = np.random.default_rng(0)
    kinds = {"DLA": [], "ADC": [], "OV": [], "QK": []}
    for _ in range(30):
        i = int(rng.integers(5, trace.n_positions))
        layer = int(rng.integers(trace.model.cfg.n_layers))
        targets = {
            "DLA": Target("logit", i, square=int(TOKEN_TO_SQUARE[rng.integers(1, 61)])),
            "QK": Target("score", i, layer=layer, head=int(rng.integers(8)), key=int(rng.integers(i + 1))),
        }
        for kind, module in (("ADC", f"L{layer}M"), ("OV", f"L{max(layer, 1)}A")):
            if module in trace.dictionaries:
                active = np.flatnonzero(trace.activations[module][i].cpu().numpy() > 0)
                targets[kind] = Target("feature", i, module=module, feature=int(active[0]))
        for kind, target in targets.items():
            start = time.perf_counter()
            trace.contributions(target)
            kinds[kind].append((time.perf_counter() - start) * 1000)
    return {kind: statistics.median(v) for kind, v in kinds.items() if v}


def trace_seconds(weights: Path, runs: int) -> tuple[float, float, float]:
    from othello_tui.tui.engine import load_engine

    squares = game_squares(1)
    moves = " ".join(square_name(s) for s in squares)
    command = [sys.executable, "-m", "othello_tui", "trace", "--weights", str(weights), "--moves", moves]
    command += ["--target", "logit:e-1", "--depth", "2", "--top", "8"]

    def once() -> float:
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, cwd=ROOT)
        return time.perf_counter() - start

    whole = median_of(runs, once)
    engine = load_engine(weights, "cpu")
    trace = engine.trace(squares)
    target = Target("logit", trace.n_positions - 1, square=int(TOKEN_TO_SQUARE[1]))

    def tree() -> float:
        start = time.perf_counter()
        trace.expand(target, 2, 8)
        return time.perf_counter() - start

    def start_up() -> float:  # what every command pays before it loads anything
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, othello_tui.cli"], check=True, cwd=ROOT)
        return time.perf_counter() - start

    return whole, median_of(runs, start_up), median_of(runs, tree)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--d-sae", type=int, default=4096)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--child-load", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in the app
    if args.child_load:
        child_load(args.child_load)
        return
    with tempfile.TemporaryDirectory() as folder:
        public = write_public_model(Path(folder), args.d_sae, args.k)
        rows = {}
        for name, weights in (("shipped (weights/)", ROOT / "weights"), ("public config (random)", public)):
            keys = key_steps_ms(weights, args.keys)
            whole, start_up, tree = trace_seconds(weights, args.runs)
            rows[name] = {
                "load + first analysis (s)": f"{load_seconds(weights, args.runs):.2f}",
                "step ←/→ p50 / p95 (ms)": "{:.2f} / {:.2f}".format(*keys["step"]),
                "unseen game, whole pass p50 / p95 (ms)": "{:.0f} / {:.0f}".format(*keys["whole"]),
                "move played, one position p50 / p95 (ms)": "{:.0f} / {:.0f}".format(*keys["played"]),
                "one attribution DLA/ADC/OV/QK (ms)": " / ".join(
                    f"{v:.1f}" for v in attribution_ms(weights).values()
                ),
                "trace --depth 2: command (s)": f"{whole:.2f}",
                "  of which python + torch import (s)": f"{start_up:.2f}",
                "  the depth-2 tree alone (ms)": f"{1000 * tree:.1f}",
            }
    names = list(rows)
    print(f"{'':42}" + "".join(f"{n:>26}" for n in names))
    for metric in rows[names[0]]:
        print(f"{metric:42}" + "".join(f"{rows[n][metric]:>26}" for n in names))
    print(
        f"(public: {PUBLIC}, LNPre, random TopK dictionaries d_sae {args.d_sae}, k {args.k}; one torch thread)"
    )


if __name__ == "__main__":
    main()
