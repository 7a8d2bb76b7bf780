"""The dictionary sweep of issue 14: train every recipe on one stored set of module outputs.

    othello-tui train activations --tokens 3000000        # once: cache/activations (9 GB)
    python bench/sweep.py train                            # every recipe, resumable
    python bench/sweep.py eval --games 1000                # metrics of every trained recipe
    python bench/sweep.py table                            # the README's sweep table
    python bench/sweep.py select --games 1000              # each module's recipe
    python bench/sweep.py ship                             # copy the winners into weights/

Each recipe is one ``othello-tui train dictionaries`` command (all 12 modules) writing to
``cache/sweep/<recipe>/``; a finished recipe is skipped, an interrupted one resumes from its
checkpoint. ``eval`` appends one JSON line per recipe to ``cache/sweep/results.jsonl``: per
module the spliced fidelity and the meaning metrics of a feature cache over the games, and the
replacement model (all 12 spliced). The shipped dictionaries are measured too, as the baseline.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from othello_tui.dictionary.selection import Choice, Limits, Measured, choose

LIMITS = Limits()

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "cache" / "sweep"
STORE = ROOT / "cache" / "activations"

#: name -> arguments of `othello-tui train dictionaries` (most promising first: a cut-off sweep
#: still has its best arms)
RECIPES = {
    "topk-k8-w1024-2M": "--architecture topk --k 8 --d-sae 1024 --tokens 2000000",
    "batchtopk-k8-w1024-2M": "--architecture batchtopk --k 8 --d-sae 1024 --tokens 2000000",
    "matryoshka-k8-w1024-2M": "--architecture batchtopk --k 8 --d-sae 1024 --matryoshka 64,256 --tokens 2000000",
    "topk-k16-w1024-2M": "--architecture topk --k 16 --d-sae 1024 --tokens 2000000",
    "topk-k32-w1024-2M": "--architecture topk --k 32 --d-sae 1024 --tokens 2000000",
    "topk-k64-w1024-2M": "--architecture topk --k 64 --d-sae 1024 --tokens 2000000",
    "matryoshka-k32-w1024-2M": "--architecture batchtopk --k 32 --d-sae 1024 --matryoshka 64,256 --tokens 2000000",
    "batchtopk-k32-w4096-1M": "--architecture batchtopk --k 32 --d-sae 4096 --tokens 1000000",
    "standard-l1-w1024-2M": "--architecture standard --l1 1.0 --d-sae 1024 --tokens 2000000",
    "jumprelu-w1024-2M": "--architecture jumprelu --l0 0.003 --d-sae 1024 --tokens 2000000",
    "topk-k4-w1024-2M": "--architecture topk --k 4 --d-sae 1024 --tokens 2000000",
    "topk-k32-w1024-6M": "--architecture topk --k 32 --d-sae 1024 --tokens 6000000",
}


def train() -> None:
    for name, arguments in RECIPES.items():
        out = SWEEP / name
        if (out / "L5M" / "cfg.json").exists():
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
    """Measure every trained recipe (and the shipped dictionaries, as the baseline) once."""
    model = _model()
    done = {row["recipe"] for row in rows()}
    for name, folder in [(BASELINE, BASELINE_DIR), *((name, SWEEP / name) for name in RECIPES)]:
        if name in done or not (folder / "L5M" / "cfg.json").exists():
            continue
        print(f"== eval {name}", flush=True)
        row = {
            "recipe": name,
            "arguments": RECIPES.get(name, "shipped"),
            **measure(model, name, folder, n_games),
        }
        with (SWEEP / "results.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")


def measure(model, name: str, folder: Path, n_games: int) -> dict:
    """Per module: fidelity (spliced alone) and meaning (a feature cache over ``n_games`` games of
    seed 0); the replacement model with every module of the recipe spliced at once."""
    from othello_tui.dictionary.evaluate import evaluate_dictionaries, evaluate_replacement
    from othello_tui.dictionary.io import load_dictionaries
    from othello_tui.features import build_cache, open_cache

    dictionaries = load_dictionaries(folder, model)
    fidelity = evaluate_dictionaries(model, dictionaries, n_games)
    reference = fidelity["model"]["legal_top1"]
    cache_file = SWEEP / name / "features.h5"  # never inside weights/
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    build_cache(model, dictionaries, n_games, seed=0, top_k=256, path=cache_file)
    cache = open_cache(cache_file)
    meaning = cache.meaning_summary()
    labels = cache.label_summary()
    modules = {
        module: {
            **{
                k: metrics[k]
                for k in ("fvu", "l0", "alive_frac", "coverage", "legal_coverage", "board_reconstruction")
            },
            "legal_drop": round(100 * (reference - metrics["spliced_legal_top1"]), 4),
            "kl": metrics["spliced_kl"],
            **meaning[module].to_dict(),
            "good_labels": labels[module].good,
        }
        for module, metrics in fidelity["modules"].items()
    }
    return {
        "modules": modules,
        "replacement": evaluate_replacement(model, dictionaries, n_games),
        "games": n_games,
    }


def select(n_games: int) -> Choice:
    """Each module's recipe (``othello_tui.dictionary.selection``), measuring combinations."""
    from othello_tui.dictionary.evaluate import evaluate_replacement
    from othello_tui.dictionary.io import load_dictionaries

    model = _model()
    measured = [
        Measured(row["recipe"], module, m["labelled_mass"], m["legal_drop"], m["kl"])
        for row in measured_rows()
        for module, m in row["modules"].items()
    ]
    folders = {row["recipe"]: _folder(row["recipe"]) for row in measured_rows()}

    def replacement_drop(recipes) -> float:
        dictionaries = {m: load_dictionaries(folders[r], model, [m])[m] for m, r in recipes.items()}
        result = evaluate_replacement(model, dictionaries, n_games)
        print(
            f"   all spliced {result['legal_drop']:.2f} points, KL {result['kl']:.4f}: {recipes}", flush=True
        )
        return result["legal_drop"]

    choice = choose(measured, replacement_drop)
    (SWEEP / "choice.json").write_text(json.dumps(vars(choice), indent=2))
    return choice


def ship() -> None:
    """Copy each module's chosen dictionary into weights/dictionaries, with its provenance and
    sweep metrics in its cfg.json metadata (run `othello-tui eval dictionaries --save` afterwards)."""
    import shutil

    choice = json.loads((SWEEP / "choice.json").read_text())
    by_recipe = {row["recipe"]: row for row in measured_rows()}
    target = ROOT / "weights" / "dictionaries"
    for module, recipe in choice["recipes"].items():
        if recipe == BASELINE:
            continue
        shutil.copytree(_folder(recipe) / module, target / module, dirs_exist_ok=True)
        cfg = json.loads((target / module / "cfg.json").read_text())
        cfg["metadata"]["selection"] = {
            "recipe": recipe,
            "arguments": RECIPES[recipe],
            "sweep": by_recipe[recipe]["modules"][module],
            "replacement_drop_points": choice["all_drop"],
        }
        (target / module / "cfg.json").write_text(json.dumps(cfg, indent=2) + "\n")
        print(f"{module}: {recipe}")


def table() -> None:
    """The README table (one row per recipe, losers included: mean and range over modules) and
    docs/sweep.md (every recipe on every module: the frontier of labelled mass against fidelity)."""
    print(
        "| recipe | labelled mass, min–max (mean) | monosemantic | mass in >10% features | worst module: "
        "legality drop (pts), KL | modules within 0.3 pts and KL 0.01 | all 12 spliced: pts, KL | mean FVU |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows():
        modules = list(row["modules"].values())
        mass = [m["labelled_mass"] for m in modules]
        faithful = sum(_faithful(m) for m in modules)
        print(
            f"| {row['recipe']} | {min(mass):.2f}–{max(mass):.2f} ({sum(mass) / len(mass):.2f}) "
            f"| {_mean(modules, 'monosemantic_share'):.0%} | {_mean(modules, 'dense_mass_10'):.2f} "
            f"| {max(m['legal_drop'] for m in modules):.2f}, {max(m['kl'] for m in modules):.4f} "
            f"| {faithful} / {len(modules)} "
            f"| {row['replacement']['legal_drop']:.2f}, {row['replacement']['kl']:.3f} "
            f"| {_mean(modules, 'fvu'):.3f} |"
        )
    lines = [
        "# The dictionary sweep, module by module",
        "",
        "Written by `python bench/sweep.py table` from `cache/sweep/results.jsonl` (1,000 games: fidelity on",
        "held-out games, meaning from a feature cache of games 0…999 of seed 0). Each cell: labelled mass /",
        "spliced legality drop in points / spliced KL; **bold** where the module meets the fidelity limits",
        "(≤ 0.3 points, KL ≤ 0.01). The README explains the recipes and the choice.",
        "",
    ]
    modules = list(rows()[0]["modules"]) if rows() else []
    lines.append("| recipe | " + " | ".join(modules) + " |")
    lines.append("|---|" + "---|" * len(modules))
    for row in rows():
        cells = []
        for module in modules:
            m = row["modules"][module]
            cell = f"{m['labelled_mass']:.2f} / {m['legal_drop']:.2f} / {m['kl']:.3f}"
            cells.append(f"**{cell}**" if _faithful(m) else cell)
        lines.append(f"| {row['recipe']} | " + " | ".join(cells) + " |")
    (ROOT / "docs" / "sweep.md").write_text("\n".join(lines) + "\n")


def _faithful(m: dict) -> bool:
    return m["legal_drop"] <= LIMITS.module_drop and m["kl"] <= LIMITS.module_kl


def _mean(modules: list[dict], key: str) -> float:
    return sum(m[key] for m in modules) / len(modules)


BASELINE = "shipped-topk-auto"
BASELINE_DIR = ROOT / "weights" / "dictionaries"


def _folder(recipe: str) -> Path:
    return BASELINE_DIR if recipe == BASELINE else SWEEP / recipe


def _model():
    from othello_tui.model.weights import load_model

    return load_model(ROOT / "weights", "cpu")[0]


def rows() -> list[dict]:
    path = SWEEP / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def measured_rows() -> list[dict]:
    """What `select` and `ship` need of each recipe on each module (labelled mass, legality drop,
    KL): from results.jsonl, or, where that cache is gone, from the committed docs/sweep.md."""
    return rows() or _rows_from_table(ROOT / "docs" / "sweep.md")


def _rows_from_table(path: Path) -> list[dict]:
    lines = [line for line in path.read_text().splitlines() if line.startswith("| ")]
    modules = [cell.strip() for cell in lines[0].strip("|").split("|")][1:]
    result = []
    for line in lines[1:]:
        recipe, *cells = [cell.strip().strip("*") for cell in line.strip("|").split("|")]
        values = [[float(v) for v in cell.split(" / ")] for cell in cells]
        keys = ("labelled_mass", "legal_drop", "kl")
        result.append(
            {
                "recipe": recipe,
                "modules": {m: dict(zip(keys, v, strict=True)) for m, v in zip(modules, values, strict=True)},
            }
        )
    return result


if __name__ == "__main__":
    GAMES = int(sys.argv[sys.argv.index("--games") + 1]) if "--games" in sys.argv else 1000
    what = sys.argv[1] if len(sys.argv) > 1 else "train"
    if what == "train":
        train()
    elif what == "eval":
        evaluate(GAMES)
    elif what == "select":
        print(json.dumps(vars(select(GAMES)), indent=2))
    elif what == "ship":
        ship()
    elif what == "table":
        table()
    else:
        sys.exit(f"unknown step {what!r}: train, eval, select, ship or table")
