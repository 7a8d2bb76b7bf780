"""The dictionary sweep of issue 14: train every recipe on one stored set of module outputs.

    othello-tui train activations --tokens 3000000        # once: cache/activations (9 GB)
    python bench/sweep.py train                            # every recipe, resumable
    python bench/sweep.py eval --games 1000                # metrics of every trained recipe

Each recipe is one ``othello-tui train dictionaries`` command (all 12 modules) writing to
``cache/sweep/<recipe>/``; a finished recipe is skipped, an interrupted one resumes from its
checkpoint. ``eval`` appends one JSON line per recipe to ``cache/sweep/results.jsonl``
(``othello-tui eval dictionaries --meaning``), which ``sweep.py table`` prints and
``othello-tui eval select`` reads to choose each module's recipe.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "cache" / "sweep"
STORE = ROOT / "cache" / "activations"

#: name -> arguments of `othello-tui train dictionaries` (most promising first: a cut-off sweep
#: still has its best arms)
RECIPES = {
    "topk-k8-w1024-2M": "--architecture topk --k 8 --d-sae 1024 --tokens 2000000",
    "batchtopk-k8-w1024-2M": "--architecture batchtopk --k 8 --d-sae 1024 --tokens 2000000",
    "matryoshka-k8-w1024-2M": "--architecture batchtopk --k 8 --d-sae 1024 --matryoshka 64,256 --tokens 2000000",
    "topk-k4-w1024-2M": "--architecture topk --k 4 --d-sae 1024 --tokens 2000000",
    "topk-k16-w1024-2M": "--architecture topk --k 16 --d-sae 1024 --tokens 2000000",
    "batchtopk-k8-w4096-1M": "--architecture batchtopk --k 8 --d-sae 4096 --tokens 1000000",
    "topk-k8-w1024-8M": "--architecture topk --k 8 --d-sae 1024 --tokens 8000000",
    "topk-k32-w1024-2M": "--architecture topk --k 32 --d-sae 1024 --tokens 2000000",
    "standard-l1-w1024-2M": "--architecture standard --l1 1.0 --d-sae 1024 --tokens 2000000",
    "jumprelu-w1024-2M": "--architecture jumprelu --l0 0.003 --d-sae 1024 --tokens 2000000",
    "matryoshka-k16-w4096-1M": "--architecture batchtopk --k 16 --d-sae 4096 --matryoshka 128,512 --tokens 1000000",
    "topk-k64-w1024-2M": "--architecture topk --k 64 --d-sae 1024 --tokens 2000000",
}


def train() -> None:
    for name, arguments in RECIPES.items():
        out = SWEEP / name
        if (out / "L5M.json").exists():
            continue
        out.mkdir(parents=True, exist_ok=True)
        checkpoint = out / "checkpoint.safetensors"
        command = [
            "othello-tui", "train", "dictionaries", *arguments.split(), "--minutes", "600",
            "--activations", str(STORE), "--out", str(out), "--checkpoint", str(checkpoint),
            *(["--resume"] if checkpoint.exists() else []),
        ]  # fmt: skip
        print(f"== {name}: {' '.join(command)}", flush=True)
        subprocess.run(command, check=True)
        checkpoint.unlink(missing_ok=True)


def evaluate(n_games: int) -> None:
    done = {json.loads(line)["recipe"] for line in _lines()}
    for name in RECIPES:
        out = SWEEP / name
        if name in done or not (out / "L5M.json").exists():
            continue
        print(f"== eval {name}", flush=True)
        result = subprocess.run(
            ["othello-tui", "eval", "dictionaries", "--dictionaries", str(out), "--games", str(n_games),
             "--meaning", "--json"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        row = {"recipe": name, "arguments": RECIPES[name], **json.loads(result.stdout)}
        with (SWEEP / "results.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")


def _lines() -> list[str]:
    path = SWEEP / "results.jsonl"
    return path.read_text().splitlines() if path.exists() else []


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "train"
    if what == "train":
        train()
    elif what == "eval":
        evaluate(int(sys.argv[sys.argv.index("--games") + 1]) if "--games" in sys.argv else 1000)
    else:
        sys.exit(f"unknown step {what!r}: train or eval")
