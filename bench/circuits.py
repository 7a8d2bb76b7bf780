"""Attribution speed on CPU after a game's forward pass is cached (issue 6 targets: a single
attribution ≤ 30 ms, a depth-3 tree with the top 8 per level ≤ 500 ms).

    python bench/circuits.py [--targets 40] [--trees 8] [--threads 1] [--seed 0] [--random --k 64]

The shipped model and dictionaries (random TopK dictionaries of 1024 features with ``--k`` active
where ``weights/dictionaries`` is missing; ``--random`` forces them). Attribution targets sit at random positions of a random 59-move
game; feature targets are active features (what a tree expands). Prints medians and maxima.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from shipped import model_and_dictionaries, random_dictionaries

from othello_tui.circuits.nodes import Target
from othello_tui.circuits.trace import GameTrace
from othello_tui.game.generator import generate_games
from othello_tui.game.squares import TOKEN_TO_SQUARE


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def random_target(trace: GameTrace, kind: str, rng: np.random.Generator) -> Target:
    i = int(rng.integers(trace.n_positions))
    if kind == "logit (DLA)":
        return Target("logit", i, square=int(TOKEN_TO_SQUARE[rng.integers(1, 61)]))
    if kind == "score (QK)":
        return Target(
            "score", i, layer=int(rng.integers(6)), head=int(rng.integers(8)), key=int(rng.integers(i + 1))
        )
    module = f"L{rng.integers(6)}{'M' if kind.startswith('MLP') else 'A'}"
    features = trace.active_features(i, module)
    return Target("feature", i, module=module, feature=features[rng.integers(len(features))][0])


def features_only_tree(trace: GameTrace, target: Target, depth: int, top: int) -> int:
    """The worst case of a tree: expand the top ``top`` *feature* contributors at every level
    (random dictionaries leave large error nodes that a real tree would show as leaves).
    Returns the number of attributions computed."""
    features = [node for node, _ in trace.contributions(target).top(200) if node.kind == "feature"][:top]
    if depth == 1:
        return 1
    return 1 + sum(features_only_tree(trace, node.as_target(), depth - 1, top) for node in features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=64, help="active features per token and module")
    parser.add_argument("--targets", type=int, default=40, help="attributions timed per kind")
    parser.add_argument("--trees", type=int, default=8, help="depth-3 trees timed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--random", action="store_true", help="random dictionaries even if weights/ has some")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, dictionaries, source = model_and_dictionaries(k=args.k)
    if args.random:
        dictionaries, source = (
            random_dictionaries(model, args.k, args.seed),
            f"random k-{args.k} dictionaries",
        )
    tokens = generate_games(1, args.seed).tokens[0, :59].astype(np.int64)
    builds = [timed(lambda: GameTrace(model, dictionaries, tokens)) for _ in range(5)]
    trace = GameTrace(model, dictionaries, tokens)
    rng = np.random.default_rng(args.seed)
    print(f"6 layers, d_model 128, 12 dictionaries of 1024 features ({source}), {args.threads} thread(s)")
    print(f"{trace.decomposition.vectors_ND.shape[0]:,} nodes in the game's decomposition")
    print(
        f"{'forward pass + decomposition':<32} median {statistics.median(builds):7.1f} ms  max {max(builds):7.1f} ms"
    )
    for kind in ("logit (DLA)", "MLP feature (ADC)", "attention feature (OV)", "score (QK)"):
        targets = [random_target(trace, kind, rng) for _ in range(args.targets)]
        times = [timed(lambda t=t: trace.contributions(t).top(8)) for t in targets]
        print(
            f"{kind:<32} median {statistics.median(times):7.1f} ms  max {max(times):7.1f} ms  (target ≤ 30)"
        )
    targets = [random_target(trace, "logit (DLA)", rng) for _ in range(args.trees)]
    times = [timed(lambda t=t: trace.expand(t, depth=3, top=8)) for t in targets]
    print(
        f"{'depth-3 tree, top 8 per level':<32} median {statistics.median(times):7.1f} ms  max {max(times):7.1f} ms  (target ≤ 500)"
    )
    counts = []
    times = [timed(lambda t=t: counts.append(features_only_tree(trace, t, 3, 8))) for t in targets]
    label = f"… features only ({statistics.median(counts):.0f} attrib.)"
    print(f"{label:<32} median {statistics.median(times):7.1f} ms  max {max(times):7.1f} ms  (target ≤ 500)")


if __name__ == "__main__":
    main()
