"""``othello-tui train dictionaries`` and ``othello-tui eval dictionaries``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from othello_tui.cli import output
from othello_tui.cli.groups import DEFAULT_CACHE_DIR, default_checkpoint, evaluate, train
from othello_tui.cli.loading import load_model_or_fail, weights_home, weights_option

ARCHITECTURES = ("topk", "batchtopk", "standard", "jumprelu")


def _modules(value: str | None, n_layers: int) -> list[str]:
    """The named dictionaries bottom to top: module outputs (``L0A`` … ``L5M``, the default) or
    residual-stream dictionaries (``L0R`` … ``L5R``)."""
    from othello_tui.dictionary.sae import module_names, residual_names

    known = module_names(n_layers) + residual_names(n_layers)
    if value is None:
        return module_names(n_layers)
    wanted = [m.strip().upper() for m in value.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in known]
    if unknown:
        raise click.ClickException(
            f"unknown module(s) {', '.join(unknown)}; this model has {', '.join(known)}"
        )
    return sorted(set(wanted), key=known.index)


def _default_folder(modules: list[str], weights: Path) -> Path:
    """``WEIGHTS/residual`` for residual-stream dictionaries, ``WEIGHTS/dictionaries`` for module
    outputs; one run trains one kind, so the two folders never mix (DESIGN.md §2)."""
    from othello_tui.dictionary.sae import is_residual

    residual = [m for m in modules if is_residual(m)]
    if residual and len(residual) < len(modules):
        raise click.UsageError(
            f"train residual-stream dictionaries ({', '.join(residual)}) in a run of their own: they "
            "are saved to WEIGHTS/residual, the module outputs to WEIGHTS/dictionaries"
        )
    return weights_home(weights) / ("residual" if residual else "dictionaries")


def _k_setting(value: str, modules: list[str]) -> tuple[int, dict[str, int]]:
    """``"auto"``, ``"32"`` or ``"32,L1A=15"``: the default k and per-module overrides; ``auto`` is
    half the write-up's L0 per module (``half_writeup_k``), 32 for modules it does not report."""
    from othello_tui.dictionary.trainer import half_writeup_k

    default, overrides = 32, {}
    for item in (part.strip() for part in value.split(",") if part.strip()):
        if item.lower() == "auto":
            overrides.update(half_writeup_k(modules))
            continue
        name, _, number = item.rpartition("=")
        if not number.isdigit() or int(number) < 1:
            raise click.BadParameter(f"{item!r} is not a positive k", param_hint="--k")
        if not name:
            default = int(number)
        elif name.upper() in modules:
            overrides[name.upper()] = int(number)
        else:
            raise click.BadParameter(f"{name!r} is not one of the modules trained", param_hint="--k")
    return default, overrides


def _prefixes(value: str, d_sae: int) -> tuple[int, ...]:
    try:
        prefixes = tuple(sorted({int(part) for part in value.split(",") if part.strip()}))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a list of sizes", param_hint="--matryoshka") from None
    if any(not 0 < width < d_sae for width in prefixes):
        raise click.BadParameter(
            f"prefix sizes must lie between 1 and {d_sae - 1}", param_hint="--matryoshka"
        )
    return prefixes


@train.command("activations")
@click.option(
    "--tokens", type=click.IntRange(min=4096), default=3_000_000, show_default=True, help="Tokens to store."
)
@click.option("--modules", default=None, help="Comma-separated modules (default: all).")
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True, help="Seed of the games.")
@weights_option()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_CACHE_DIR / "activations",
    show_default=True,
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
def train_activations_command(tokens, modules, seed, weights, config_file, out_dir, device) -> None:
    """Store module outputs once (float16), so a sweep of dictionary recipes skips the model."""
    from rich.progress import Progress

    from othello_tui.dictionary.sae import hook_name_of
    from othello_tui.dictionary.store import write_store

    model = load_model_or_fail(weights, device, config_file)
    module_list = _modules(modules, model.cfg.n_layers)
    with Progress(console=output.console()) as bar:
        task = bar.add_task("module outputs", total=tokens)
        write_store(
            model, [hook_name_of(m) for m in module_list], module_list, tokens, seed, out_dir,
            lambda done, total: bar.update(task, completed=done),
        )  # fmt: skip
    output.console().print(f"wrote {tokens:,} tokens × {len(module_list)} modules to {out_dir}")


@train.command("dictionaries")
@click.option(
    "--modules",
    default=None,
    help="Comma-separated modules, e.g. L0A,L3M (default: L0A … L5M), or residual-stream "
    "dictionaries L0R … L5R in a run of their own.",
)
@click.option("--architecture", type=click.Choice(ARCHITECTURES), default="topk", show_default=True)
@click.option(
    "--k",
    "k_setting",
    default="auto",
    show_default=True,
    help="Active features per token (topk): 'auto' (half the write-up's L0 per module) or a number, "
    "then optional per-module overrides, e.g. 32,L1A=15.",
)
@click.option(
    "--matryoshka",
    default="",
    help="Nested prefix sizes for a Matryoshka loss (topk, batchtopk), e.g. 64,256.",
)
@click.option(
    "--activations",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Train on a stored set of module outputs (`train activations`) instead of fresh games.",
)
@click.option(
    "--l1", "l1_coefficient", type=float, default=1.0, show_default=True, help="L1 coefficient (standard)."
)
@click.option(
    "--l0", "l0_coefficient", type=float, default=3e-4, show_default=True, help="L0 coefficient (jumprelu)."
)
@click.option(
    "--d-sae", type=click.IntRange(min=1), default=1024, show_default=True, help="Features per dictionary."
)
@click.option(
    "--tokens", type=click.IntRange(min=1), default=None, help="Budget in training tokens per dictionary."
)
@click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=80.0,
    show_default=True,
    help="Wall-clock budget (whichever ends first).",
)
@click.option(
    "--batch",
    "batch_tokens",
    type=click.IntRange(min=1),
    default=4096,
    show_default=True,
    help="Tokens per step.",
)
@click.option("--lr", type=float, default=3e-3, show_default=True, help="Adam learning rate.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Torch CPU threads.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@weights_option()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder [default: dictionaries/ of --weights (the folder, or beside the file); residual/ for L0R … L5R].",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Checkpoint file [default: checkpoints/dictionaries.safetensors in the repository for the shipped weights/,"
    " else OUT.checkpoints/dictionaries.safetensors beside --out OUT]",
)
@click.option("--resume", is_flag=True, help="Continue from --checkpoint.")
def train_dictionaries_command(
    modules,
    architecture,
    k_setting,
    matryoshka,
    activations,
    l1_coefficient,
    l0_coefficient,
    d_sae,
    tokens,
    minutes,
    batch_tokens,
    lr,
    seed,
    threads,
    device,
    weights,
    config_file,
    out_dir,
    checkpoint,
    resume,
) -> None:
    """Train one sparse dictionary per module output, all modules together, on fresh games.

    Data-parallel on several processes with `torchrun --nproc-per-node N -m othello_tui train
    dictionaries …` (gloo on CPU, nccl on CUDA, one GPU per process): each process draws its own
    games, so a step sees N × --batch-tokens tokens; process 0 logs, checkpoints and writes, and
    --resume needs the same N.
    """
    from othello_tui.dictionary import distributed
    from othello_tui.dictionary.train import train_dictionaries
    from othello_tui.dictionary.trainer import DictionaryTrainConfig
    from othello_tui.model.weights import WeightsError

    distributed.use_local_gpu(device)
    model = load_model_or_fail(weights, device, config_file)
    with distributed.process_group(model.device):
        if minutes is not None and minutes <= 0:
            minutes = None
        module_list = _modules(modules, model.cfg.n_layers)
        k, module_k = _k_setting(k_setting, module_list)
        prefixes = _prefixes(matryoshka, d_sae)
        try:
            cfg = DictionaryTrainConfig(
                modules=tuple(module_list),
                architecture=architecture,
                d_sae=d_sae,
                k=k,
                module_k=module_k,
                matryoshka=prefixes,
                activations=str(activations) if activations else None,
                l1_coefficient=l1_coefficient,
                l0_coefficient=l0_coefficient,
                tokens=tokens,
                minutes=minutes,
                batch_tokens=batch_tokens,
                lr=lr,
                seed=seed,
                threads=threads,
                extra={"command": " ".join(["othello-tui", *sys.argv[1:]])},
            )
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        out_dir = out_dir or _default_folder(module_list, weights)
        checkpoint = checkpoint or default_checkpoint(out_dir, "dictionaries.safetensors")
        try:
            training = train_dictionaries(model, cfg, out_dir, checkpoint, resume=resume)
        except WeightsError as error:
            raise click.ClickException(str(error)) from None
        summary = ", ".join(
            f"{m} FVU {v['fvu']:.4f} L0 {v['l0']:.1f}" for m, v in training["final_running"].items()
        )
        if distributed.rank() == 0:
            click.echo(
                f"wrote {len(cfg.modules)} dictionaries to {out_dir} after {training['tokens']:,} tokens each ({summary})"
            )


COLUMNS = (
    ("FVU", "fvu", "{:.4f}"),
    ("rel err", "rel_error", "{:.3f}"),
    ("L0", "l0", "{:.1f}"),
    ("alive", "alive_frac", "{:.1%}"),
    ("dense", "dense_features", "{}"),
    ("spliced legal", "spliced_legal_top1", "{:.2%}"),
    ("spliced KL", "spliced_kl", "{:.4f}"),
    ("coverage", "coverage", "{:.3f}"),
    ("board rec.", "board_reconstruction", "{:.3f}"),
    ("legal cov.", "legal_coverage", "{:.3f}"),
)


MEANING_COLUMNS = (
    ("labelled mass", "labelled_mass", "{:.2f}"),
    ("monosemantic", "monosemantic_share", "{:.0%}"),
    ("mass >10%", "dense_mass_10", "{:.2f}"),
)


@evaluate.command("dictionaries")
@click.option(
    "--games", "n_games", type=click.IntRange(min=2), default=2000, show_default=True, help="Held-out games."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--modules", default=None, help="Comma-separated modules (default: every dictionary found).")
@weights_option()
@click.option(
    "--dictionaries",
    "dict_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Dictionary folder [default: WEIGHTS/dictionaries; WEIGHTS/residual with --residual].",
)
@click.option(
    "--residual",
    is_flag=True,
    help="Evaluate the residual-stream dictionaries (L0R … L5R, WEIGHTS/residual): each spliced "
    "alone in place of blocks.l.hook_resid_post (they are readouts: never all at once).",
)
@click.option(
    "--save", is_flag=True, help="Also write the metrics into each dictionary's cfg.json (metadata.metrics)."
)
@click.option(
    "--cache",
    "cache_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Feature cache for the meaning metrics [default: the newest in cache/ for these weights].",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
def eval_dictionaries_command(
    n_games, as_json, modules, weights, config_file, dict_dir, residual, save, cache_file, device
) -> None:
    """Fidelity (spliced alone and all at once), reconstruction, sparsity, board-state metrics and,
    from the feature cache, meaning (labelled mass, top-k monosemantic share, density)."""
    from rich.table import Table

    from othello_tui.cli.loading import WeightsDigests, find_feature_cache
    from othello_tui.dictionary.evaluate import evaluate_dictionaries, evaluate_replacement
    from othello_tui.dictionary.io import load_dictionaries, load_residual, provenance_files, record_metrics
    from othello_tui.dictionary.sae import is_residual
    from othello_tui.model.weights import WeightsError

    model = load_model_or_fail(weights, device, config_file)
    module_list = _modules(modules, model.cfg.n_layers) if modules else None
    residual = residual or (module_list is not None and all(is_residual(m) for m in module_list))
    dict_dir = dict_dir or (
        weights_home(weights) / "residual" if residual else _default_folder(module_list or [], weights)
    )
    try:
        dictionaries = load_dictionaries(dict_dir, model, module_list)
        # the feature cache covers the module-output and the residual dictionaries together
        # (`cache build` reads --dictionaries and WEIGHTS/residual)
        if not residual:
            covered = {**dictionaries, **load_residual(weights, model)}
        elif (weights / "dictionaries").is_dir():
            covered = {**load_dictionaries(weights / "dictionaries", model), **dictionaries}
        else:
            covered = dictionaries
    except WeightsError as error:
        raise click.ClickException(str(error)) from None
    if residual != all(is_residual(m) for m in dictionaries):
        raise click.UsageError(
            f"{dict_dir} mixes module-output and residual-stream dictionaries, or --residual names "
            "module outputs; evaluate each kind in a run of its own"
        )
    try:
        provenance = provenance_files(dict_dir, dictionaries) if save else {}
    except WeightsError as error:
        raise click.UsageError(
            f"--save records metrics only in othello-tui's own dictionaries; {error}"
        ) from None
    results = evaluate_dictionaries(model, dictionaries, n_games)
    if not residual:  # residual dictionaries are readouts: each spliced alone, never all at once
        results["replacement"] = evaluate_replacement(model, dictionaries, n_games)
    cache, note = (
        find_feature_cache(cache_file, WeightsDigests(model, covered)) if not modules else (None, None)
    )
    if cache is not None:
        for module, meaning in cache.meaning_summary().items():
            if module in results["modules"]:
                results["modules"][module].update(meaning.to_dict())
    for module, path in provenance.items():
        record_metrics(
            path,
            {
                **results["modules"][module],
                "games": n_games,
                "seed": results["seed"],
                "model_legal_top1": results["model"]["legal_top1"],
                **({} if residual else {"all_spliced": results["replacement"]}),
                **({"meaning_cache": cache.path.name} if cache is not None else {}),
            },
        )
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    table = Table(
        title=f"dictionaries in {dict_dir} · {n_games:,} held-out games · "
        f"model top-1 legal {results['model']['legal_top1']:.2%}"
    )
    table.add_column("module")
    for title, _, _ in COLUMNS:
        table.add_column(title, justify="right")
    columns = COLUMNS + (MEANING_COLUMNS if cache is not None else ())
    for title, _, _ in columns[len(COLUMNS) :]:
        table.add_column(title, justify="right")
    for module, metrics in results["modules"].items():
        table.add_row(module, *(fmt.format(metrics[key]) for _, key, fmt in columns))
    meaning = f" · meaning from {cache.path.name}" if cache is not None else f" · {note}" if note else ""
    if residual:
        table.caption = f"residual-stream dictionaries, each spliced alone in place of resid_post{meaning}"
    else:
        replacement = results["replacement"]
        table.caption = (
            f"all {len(dictionaries)} spliced at once: top-1 legal {replacement['legal_top1']:.2%} "
            f"(−{replacement['legal_drop']:.2f} points), KL {replacement['kl']:.4f}{meaning}"
        )
    console = output.console()
    console.print(table)
