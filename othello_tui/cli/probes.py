"""``othello-tui train probes``, ``othello-tui eval probes`` and ``othello-tui eval rediscovery``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from othello_tui.cli import output
from othello_tui.cli.groups import evaluate, train
from othello_tui.cli.loading import (
    WEIGHTS_HELP,
    WeightsDigests,
    cache_option,
    find_feature_cache,
    load_model_or_fail,
    load_probes_or_fail,
    weights_home,
    weights_option,
)

WEIGHTS_OPTION = weights_option(WEIGHTS_HELP)
DEVICE_OPTION = click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")


@train.command("probes")
@click.option(
    "--games", type=click.IntRange(min=1), default=20_000, show_default=True, help="Fresh training games."
)
@click.option(
    "--positions",
    type=click.IntRange(min=1, max=59),
    default=16,
    show_default=True,
    help="Random positions used per game.",
)
@click.option(
    "--batch",
    "batch_tokens",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    help="Tokens per Adam step.",
)
@click.option(
    "--lr", type=float, default=1e-2, show_default=True, help="Adam learning rate (inputs are standardised)."
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--eval-games",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Held-out games for the recorded metrics.",
)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Torch CPU threads.")
@WEIGHTS_OPTION
@DEVICE_OPTION
def train_probes_command(
    games, positions, batch_tokens, lr, seed, eval_games, threads, weights, config_file, device
) -> None:
    """Linear probes on the residual stream after the embeddings and after every block, for the
    board relative to the mover, the board in colours, flipped discs and legal next moves.
    Writes probes.safetensors and probes.json in the weights folder (for a checkpoint file, in
    the folder of its name beside it)."""
    from othello_tui.model.weights import model_fingerprint
    from othello_tui.probes.evaluate import PROBE_EVAL_SEED, evaluate_probes
    from othello_tui.probes.io import probe_paths, save_probes
    from othello_tui.probes.train import ProbeTrainConfig, train_probes

    model = load_model_or_fail(weights, device, config_file)
    try:
        cfg = ProbeTrainConfig(
            games=games,
            positions_per_game=positions,
            batch_tokens=batch_tokens,
            lr=lr,
            seed=seed,
            threads=threads,
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    command = " ".join(["othello-tui", *sys.argv[1:]])
    probes, training = train_probes(model, cfg, command=command)
    metrics = evaluate_probes(model, probes, eval_games)
    info = {
        "model_fingerprint": model_fingerprint(model),
        "training": training,
        "metrics": {"games": eval_games, "seed": PROBE_EVAL_SEED, **metrics.to_dict()},
    }
    save_probes(probes.cpu(), weights_home(weights), info)
    best = metrics.mean("mine_theirs").max()
    click.echo(
        f"wrote {probe_paths(weights_home(weights))[0]} after {training['games']:,} games ({training['wall_minutes']} min); "
        f"mine/theirs accuracy at the best site {best:.2%} on {eval_games:,} held-out games"
    )


@evaluate.command("probes")
@click.option("--games", type=click.IntRange(min=1), default=1000, show_default=True, help="Held-out games.")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Held-out game seed, at least 1e9 [default: the probes' own].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@WEIGHTS_OPTION
@DEVICE_OPTION
def eval_probes_command(games, seed, as_json, weights, config_file, device) -> None:
    """Probe accuracy per site and family on held-out games: mean over squares and the worst square
    (squares whose label never changes are left out), beside the majority-class share."""
    from othello_tui.model.evaluate import EVAL_SEED
    from othello_tui.probes.evaluate import PROBE_EVAL_SEED, evaluate_probes

    if seed is not None and seed < EVAL_SEED:
        raise click.ClickException(f"evaluation seeds start at {EVAL_SEED}; lower seeds are for training")
    model = load_model_or_fail(weights, device, config_file)
    probes = load_probes_or_fail(weights, model)
    seed = PROBE_EVAL_SEED if seed is None else seed
    result = evaluate_probes(model, probes, games, seed)
    if as_json:
        click.echo(json.dumps({"games": games, "seed": seed, **result.to_dict()}, indent=2))
        return

    console = output.console()
    console.print(_accuracy_table(result, f"probes in {weights} · {games:,} held-out games (seed {seed})"))
    if console.is_terminal:
        console.print(_heatmap(result))


def _accuracy_table(result, title: str):
    from rich.table import Table

    from othello_tui.probes.families import site_label

    families = list(result.correct)
    table = Table(title=title)
    table.add_column("site")
    for family in families:
        table.add_column(f"{family}\nmean · worst square", justify="right")
    columns = [zip(result.mean(f), result.worst(f), strict=True) for f in families]
    for site, cells in zip(result.sites, zip(*columns, strict=True), strict=True):
        table.add_row(site_label(site), *(f"{mean:.2%} · {sq} {worst:.1%}" for mean, (sq, worst) in cells))
    table.add_row("majority class", *(f"{result.baseline(f):.2%}" for f in families), style="dim")
    return table


def _heatmap(result):
    """Site × family, each cell coloured from red (the majority-class share) to green (100%)."""
    from rich.table import Table
    from rich.text import Text

    from othello_tui.probes.families import site_label

    families = list(result.correct)
    table = Table(title="mean accuracy (red: majority class, green: 100%)", box=None, padding=(0, 1))
    table.add_column("")
    for family in families:
        table.add_column(family, justify="center")
    means = {f: result.mean(f) for f in families}
    for s, site in enumerate(result.sites):
        cells = []
        for f in families:
            base = result.baseline(f)
            t = min(1.0, max(0.0, (means[f][s] - base) / max(1e-9, 1 - base)))
            colour = f"rgb({int(220 * (1 - t))},{int(60 + 140 * t)},60)"
            cells.append(Text(f" {means[f][s]:6.1%} ", style=f"bold white on {colour}"))
        table.add_row(site_label(site), *cells)
    return table


@evaluate.command("rediscovery")
@click.option(
    "--dictionaries",
    "dict_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Dictionary folder [default: WEIGHTS/dictionaries].",
)
@click.option(
    "--min-cos",
    type=click.FloatRange(0, 1),
    default=0.7,
    show_default=True,
    help="|cos| that counts as rediscovered.",
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Features kept per probe direction (JSON).",
)
@click.option(
    "--min-f1",
    type=click.FloatRange(0, 1),
    default=0.8,
    show_default=True,
    help="F1 (the best feature as a classifier of the probed property) that counts as rediscovered.",
)
@cache_option("Feature cache for the F1s")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (counts and every alignment) instead of a table."
)
@WEIGHTS_OPTION
@DEVICE_OPTION
def eval_rediscovery_command(
    dict_dir, min_cos, top, min_f1, cache_file, as_json, weights, config_file, device
) -> None:
    """How many probe directions some dictionary feature rediscovers: for each module, the probe
    directions of the site it writes into that some feature's decoder row aligns with (|cos| ≥
    --min-cos) or that some feature classifies (F1 ≥ --min-f1 on the probed property over the
    feature cache's tokens; needs `othello-tui cache build`)."""
    from othello_tui.dictionary.io import load_dictionaries, load_residual
    from othello_tui.model.weights import WeightsError
    from othello_tui.probes.alignment import ProbeAligner, rediscovery_counts

    model = load_model_or_fail(weights, device, config_file)
    probes = load_probes_or_fail(weights, model)
    try:
        dictionaries = load_dictionaries(dict_dir or weights_home(weights) / "dictionaries", model)
        dictionaries.update(load_residual(weights_home(weights), model))
    except WeightsError as error:
        raise click.ClickException(str(error)) from None
    cache, note = find_feature_cache(cache_file, WeightsDigests(model, dictionaries))
    alignments = ProbeAligner(probes, dictionaries).align(top, cache.predicate_f1 if cache else None)
    counts = rediscovery_counts(alignments, min_cos, min_f1)
    if as_json:
        click.echo(json.dumps(_rediscovery_json(alignments, counts, min_cos, min_f1, note), indent=2))
        return
    from rich.table import Table

    kinds = list(counts["any"])
    criterion = f"|cos| ≥ {min_cos}" + (f" or F1 ≥ {min_f1}" if cache else "")
    table = Table(title=f"probe directions rediscovered by a dictionary feature ({criterion})")
    table.add_column("module")
    for kind in kinds:
        table.add_column(kind, justify="right")
    for module, row in counts.items():
        label = "any module" if module == "any" else module
        table.add_row(
            label, *(f"{row[k][0]}/{row[k][1]}" for k in kinds), style="bold" if module == "any" else None
        )
    output.console().print(table)
    if note:
        click.echo(note, err=True)


def _match_json(direction, match, reads: str | None = None) -> dict:
    reads = reads or direction.reading(match.cosine)
    return {"feature": match.feature, "cosine": match.cosine, "reads": reads, "f1": match.f1}


def _rediscovery_json(alignments, counts, min_cos: float, min_f1: float, note: str | None) -> dict:
    return {
        "min_cosine": min_cos,
        "min_f1": min_f1,
        "note": note,
        "counts": {module: {kind: list(v) for kind, v in row.items()} for module, row in counts.items()},
        "alignments": [
            {
                "probe": a.direction.name,
                "family": a.direction.contrast.family,
                "module": a.module,
                "site": a.site,
                "matches": [_match_json(a.direction, m) for m in a.matches],
                "best_f1": _match_json(a.direction, a.best_f1, a.direction.reading(1.0))
                if a.best_f1
                else None,
            }
            for a in alignments
        ],
    }
