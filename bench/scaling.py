"""Scaling out on one machine: data-parallel dictionary training and sharded feature-cache builds
against their one-process baselines, with the real commands and the shipped weights.

    python bench/scaling.py [--tokens 400000] [--games 2000] [--weights weights]

Training: `othello-tui train dictionaries` (12 modules) in 1 process (batch 4096, 2 threads) and
under `torchrun --nproc-per-node 2` (batch 2048 per process, 1 thread each: the same 4096-token
step); tokens/s per dictionary is the run's own count over its own training time (the JSON
provenance: model loading and startup excluded). Cache: one `cache build` (2 threads) against 2
`cache build --shard i/2` run at once (1 thread each) plus `cache merge`, wall clock, and the
merged file checked against the one build. Everything is written to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
CLI = [sys.executable, "-m", "othello_tui"]


def run(command: list[str], threads: int) -> None:
    env = {**ENV, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)


def training(weights: Path, tokens: int, folder: Path) -> None:
    rates = {}
    for processes, batch, threads in ((1, 4096, 2), (2, 2048, 1)):
        out = folder / f"dictionaries-{processes}"
        args = [
            "train",
            "dictionaries",
            "--weights",
            str(weights),
            "--tokens",
            str(tokens),
            "--batch",
            str(batch),
        ]
        args += [
            "--threads",
            str(threads),
            "--out",
            str(out),
            "--checkpoint",
            str(folder / f"ckpt-{processes}"),
        ]
        launcher = (
            CLI
            if processes == 1
            else [shutil.which("torchrun"), "--nproc-per-node", "2", "-m", "othello_tui"]
        )
        run([*launcher, *args], threads)
        record = json.loads((out / "L0A" / "cfg.json").read_text())["metadata"]["training"]
        rates[processes] = record["tokens"] / (60 * record["wall_minutes"])
        print(f"train dictionaries, {processes} process(es): {rates[processes]:,.0f} tokens/s per dictionary")
    print(f"2 gloo processes / 1 process: {rates[2] / rates[1]:.2f}×")


def cache(weights: Path, games: int, folder: Path) -> None:
    common = ["cache", "build", "--weights", str(weights), "--games", str(games), "--device", "cpu"]
    started = time.perf_counter()
    run([*CLI, *common, "--out", str(folder / "one.h5")], 2)
    one = time.perf_counter() - started
    started = time.perf_counter()
    shards = [folder / f"shard{i}.h5" for i in range(2)]
    env = {**ENV, "OMP_NUM_THREADS": "1"}
    jobs = [
        subprocess.Popen(
            [*CLI, *common, "--shard", f"{i}/2", "--out", str(s)], env=env, stdout=subprocess.DEVNULL
        )
        for i, s in enumerate(shards)
    ]
    assert all(job.wait() == 0 for job in jobs)
    built = time.perf_counter() - started
    merge = [
        *CLI,
        "cache",
        "merge",
        *map(str, shards),
        "--weights",
        str(weights),
        "--out",
        str(folder / "m.h5"),
    ]
    run(merge + ["--device", "cpu"], 2)
    merged = time.perf_counter() - started
    with h5py.File(folder / "one.h5") as a, h5py.File(folder / "m.h5") as b:
        for m in a["modules"]:
            same = np.array_equal(
                a[f"modules/{m}/details"]["top_activation"], b[f"modules/{m}/details"]["top_activation"]
            )
            same &= np.array_equal(
                a[f"modules/{m}/summary"]["label_candidates"], b[f"modules/{m}/summary"]["label_candidates"]
            )
            assert same, m
    print(
        f"cache build, {games} games: one build {one:.1f} s; 2 shards at once {built:.1f} s, + merge {merged:.1f} s"
    )
    print(
        f"sharded (with merge) / one build: {merged / one:.2f}× the wall time; shards alone {built / one:.2f}×"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=400_000)
    parser.add_argument("--games", type=int, default=2000)
    parser.add_argument("--weights", type=Path, default=REPO / "weights")
    parser.add_argument("--skip", choices=["training", "cache"], default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        weights = (
            Path(folder) / "weights"
        )  # a copy: the dictionaries trained here must not replace the shipped ones
        shutil.copytree(args.weights, weights)
        if args.skip != "training":
            training(weights, args.tokens, Path(folder))
        if args.skip != "cache":
            cache(weights, args.games, Path(folder))


if __name__ == "__main__":
    main()
