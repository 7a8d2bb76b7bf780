"""Building an attribution graph on the CPU after a game's forward pass is cached (issue 16: well
under a second or two for a logit target on the shipped model).

    python bench/graph.py [--targets 12] [--budgets 200 500] [--threads 1] [--seed 0]

Targets: the logit of the top prediction at random positions of a random 59-move game. Times
the build (``build_graph``: the expansions and the frontier's rankings) and then the pruning and
the graph JSON at circuit-tracer's default thresholds (what ``G`` in the app and ``trace --graph``
do after the forward pass). Prints medians and maxima, and the graph's size.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from shipped import model_and_dictionaries

from othello_tui.circuits.graph import build_graph
from othello_tui.circuits.graph_json import trace_attribution_graph
from othello_tui.circuits.nodes import Target
from othello_tui.circuits.provenance import Provenance
from othello_tui.circuits.pruning import GraphSettings
from othello_tui.circuits.trace import GameTrace
from othello_tui.game.generator import generate_games
from othello_tui.game.squares import TOKEN_TO_SQUARE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=12, help="logit targets timed per budget")
    parser.add_argument("--budgets", type=int, nargs="+", default=[200, 500], help="features expanded")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, dictionaries, source = model_and_dictionaries()
    tokens = generate_games(1, args.seed).tokens[0, :59].astype(np.int64)
    trace = GameTrace(model, dictionaries, tokens)
    rng = np.random.default_rng(args.seed)
    positions = rng.integers(trace.n_positions, size=args.targets).tolist()
    targets = [
        Target("logit", i, square=int(TOKEN_TO_SQUARE[int(trace.logits_TV[i].argmax())])) for i in positions
    ]
    print(f"6 layers, d_model 128, 12 dictionaries ({source}), {args.threads} thread(s)")
    print(f"{trace.decomposition.vectors_ND.shape[0]:,} nodes in the game's decomposition")
    for budget in args.budgets:
        settings = GraphSettings(max_features=budget)
        builds, prunes, sizes = [], [], []
        for target in targets:
            start = time.perf_counter()
            graph = build_graph(trace, target, budget)
            built = time.perf_counter()
            provenance = Provenance.of_graph("", target.position, target.spec, settings, "m" * 16, "d" * 16)
            written = trace_attribution_graph(trace, graph, provenance, settings)
            builds.append((built - start) * 1000)
            prunes.append((time.perf_counter() - built) * 1000)
            sizes.append(
                (len(graph.nodes), len(graph.edges.weight_E), len(written["nodes"]), len(written["links"]))
            )
        nodes, links, kept_nodes, kept_links = (
            statistics.median(column) for column in zip(*sizes, strict=True)
        )
        total = [b + p for b, p in zip(builds, prunes, strict=True)]
        median = statistics.median
        print(
            f"budget {budget:>4}: build median {median(builds):6.0f} ms (max {max(builds):4.0f}), "
            f"prune + JSON {median(prunes):4.0f} ms, together median {median(total):6.0f} ms "
            f"(max {max(total):4.0f}); {nodes:.0f} nodes, {links:,.0f} links "
            f"-> kept {kept_nodes:.0f}, {kept_links:,.0f}"
        )


if __name__ == "__main__":
    main()
