"""``othello-tui cache build``, ``othello-tui feature`` and ``othello-tui eval labels``."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import click

from othello_tui.cli import output
from othello_tui.cli.game_args import chosen_game, game_options
from othello_tui.cli.groups import DEFAULT_CACHE_DIR, evaluate, main
from othello_tui.cli.loading import (
    WeightsDigests,
    cache_option,
    dictionaries_option,
    find_feature_cache,
    load_model_and_dictionaries_or_fail,
    user_notes,
    weights_option,
)

_WEIGHTS = weights_option()
_CACHE = cache_option("Cache file to read")


def _open(cache_file: Path | None, weights: Path, dictionaries: Path | None, config: Path | None = None):
    """The cache named by ``--cache``, else the newest one in cache/ built for ``--weights`` (and
    ``--dictionaries``)."""
    from othello_tui.features import CacheError, open_cache

    if cache_file is not None:
        try:
            cache = open_cache(cache_file)
        except CacheError as error:
            raise click.ClickException(str(error)) from None
        if (mismatch := _built_for_other_weights(cache, weights, dictionaries, config)) is not None:
            click.echo(f"Warning: {mismatch}", err=True)
        return cache
    loaded = load_model_and_dictionaries_or_fail(weights, dictionaries=dictionaries, config=config)
    cache, _ = find_feature_cache(None, WeightsDigests(*loaded), DEFAULT_CACHE_DIR)
    if cache is None:
        others = (
            "; the caches there were built for other weights"
            if any(DEFAULT_CACHE_DIR.glob("features-*.h5"))
            else ""
        )
        raise click.ClickException(
            f"no feature cache for {weights} in {DEFAULT_CACHE_DIR}{others}; build it with `othello-tui cache build`"
        )
    return cache


def _decoder_reading(module: str, index: int, weights: Path, config: Path | None):
    """A residual feature's believed board (float32 [64], ``probes.alignment.decoder_readings``);
    None for a module feature, or without the model, residual dictionaries or probes."""
    from othello_tui.dictionary.io import load_residual
    from othello_tui.dictionary.sae import is_residual
    from othello_tui.model.weights import WeightsError, load_model, weights_home
    from othello_tui.probes.alignment import decoder_readings
    from othello_tui.probes.io import load_probes

    if not is_residual(module):
        return None
    try:
        model, _ = load_model(weights, "cpu", config)
        residual = load_residual(weights_home(weights), model)
        probes, _ = load_probes(weights_home(weights), model)
    except WeightsError:
        return None
    return decoder_readings(probes, module, residual[module])[index] if module in residual else None


def _built_for_other_weights(
    cache, weights: Path, dictionaries_dir: Path | None, config: Path | None = None
) -> str | None:
    """Why ``cache`` does not describe the model and dictionaries in ``weights`` (None: it does,
    or there are no weights there to compare with: the cache still describes its own)."""
    from othello_tui.dictionary.io import load_dictionaries, load_residual
    from othello_tui.features import dictionaries_hash
    from othello_tui.model.weights import WeightsError, load_model, model_fingerprint, weights_home

    try:
        model, _ = load_model(weights, "cpu", config)
        dictionaries = load_dictionaries(dictionaries_dir or weights_home(weights) / "dictionaries", model)
        dictionaries.update(load_residual(weights_home(weights), model))
    except WeightsError:
        return None
    for what, built, now in (
        ("model", cache.model_fingerprint, model_fingerprint(model)),
        ("dictionaries", cache.dictionaries_hash, dictionaries_hash(dictionaries)),
    ):
        if built != now:
            return (
                f"{cache.path} was built for another {what} ({built}) than the one in {weights} ({now});"
                " it describes that one's features"
            )
    return None


@main.group("cache")
def cache_group() -> None:
    """The HDF5 cache of dataset-level feature statistics (top examples, panels, labels)."""


@cache_group.command("build")
@click.option(
    "--games",
    "n_games",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="Games to run (59 tokens each).",
)
@click.option(
    "--top-k",
    type=click.IntRange(1, 2**15 - 1),
    default=256,
    show_default=True,
    help="Top tokens kept per feature.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Games are games 0…N−1 of this seed.",
)
@_WEIGHTS
@dictionaries_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: cache/features-<id>.h5).",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option(
    "--force", is_flag=True, help="Rebuild even if a sound cache for these weights and settings exists."
)
@click.option(
    "--shard",
    default=None,
    metavar="i/N",
    help="Build shard i of N (0-based) over its share of the games, for `othello-tui cache merge`; needs --out.",
)
@click.option(
    "--progress-lines",
    is_flag=True,
    help="Report progress as `PHASE DONE TOTAL` lines instead of a bar (always when not on a terminal).",
)
def cache_build(
    n_games: int,
    top_k: int,
    seed: int,
    weights: Path,
    config_file: Path | None,
    dictionaries_dir: Path | None,
    out: Path | None,
    device: str,
    force: bool,
    shard: str | None,
    progress_lines: bool,
) -> None:
    """Run the model and every dictionary over N games and write the feature cache.

    Ctrl-C, a hang-up or a kill (SIGTERM) leaves no file behind. Prints, per module, the share of
    alive features with a label of F1 ≥ 0.8. With --shard i/N, several processes or machines
    each build a share (same --games, --seed, --top-k and weights), and `othello-tui cache merge`
    joins the N files into the cache one build writes.
    """
    from othello_tui.features import (
        BuildSettings,
        CacheError,
        build_cache,
        cache_path,
        dictionaries_hash,
        open_cache,
    )
    from othello_tui.features.shard import Shard
    from othello_tui.model.weights import model_fingerprint

    parsed_shard: Shard | None = None
    if shard is not None:
        try:
            parsed_shard = Shard.parse(shard)
            parsed_shard.games(n_games, BuildSettings.batch_games)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--shard") from None
        if out is None:
            raise click.UsageError("--shard needs --out FILE (a shard is no cache of its own)")
    from othello_tui.dictionary import distributed

    distributed.use_local_gpu(device)
    model, dictionaries = load_model_and_dictionaries_or_fail(weights, device, dictionaries_dir, config_file)
    settings = BuildSettings(n_games, seed, top_k)
    model_digest, dictionaries_digest = model_fingerprint(model), dictionaries_hash(dictionaries)
    path = out or cache_path(DEFAULT_CACHE_DIR, model_digest, dictionaries_digest, settings)
    if path.exists() and not force and parsed_shard is None:
        try:
            cache = open_cache(path, model_digest, dictionaries_digest)
        except CacheError:
            pass  # stale or broken: rebuild it
        else:
            if cache.settings == settings:
                click.echo(f"{path} is up to date (--force rebuilds it)")
                _print_label_summary(cache)
                return
    if parsed_shard is None and distributed.launched():
        _build_across_ranks(model, dictionaries, settings, path, progress_lines)
        return
    with _progress(progress_lines) as progress:
        build_cache(model, dictionaries, n_games, seed, top_k, path, progress=progress, shard=parsed_shard)
    click.echo(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)"
        + (f", shard {parsed_shard}" if parsed_shard else "")
    )
    if parsed_shard is None:
        _print_label_summary(open_cache(path))


def _build_across_ranks(model, dictionaries, settings, path: Path, progress_lines: bool) -> None:
    """Under torchrun: process r builds shard r of N beside ``path``, process 0 merges them."""
    from othello_tui.dictionary import distributed
    from othello_tui.features import build_cache, open_cache
    from othello_tui.features.merge import merge_caches
    from othello_tui.features.shard import Shard

    with distributed.process_group(model.device):
        rank, world = distributed.rank(), distributed.size()
        try:
            shard = Shard(rank, world)
            shard.games(settings.n_games, settings.batch_games)
        except ValueError as error:
            raise click.ClickException(f"torchrun with {world} processes: {error}") from None
        shards = [path.with_name(f".{path.name}.shard-{i}-of-{world}") for i in range(world)]
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with _progress(progress_lines) if rank == 0 else nullcontext(None) as progress:
                build_cache(
                    model, dictionaries, settings.n_games, settings.seed, settings.top_k, shards[rank],
                    progress=progress, shard=shard,
                )  # fmt: skip
            distributed.barrier()
            if rank == 0:
                with _progress(progress_lines) as progress:
                    merge_caches(shards, model, dictionaries, path, progress=progress)
            distributed.barrier()  # the shards stay until the merge is done
        finally:
            shards[rank].unlink(missing_ok=True)
        if rank == 0:
            click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) from {world} processes")
            _print_label_summary(open_cache(path))


@cache_group.command("merge")
@click.argument(
    "shards", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: cache/features-<id>.h5).",
)
@_WEIGHTS
@dictionaries_option
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
def cache_merge(
    shards: tuple[Path, ...],
    out: Path | None,
    weights: Path,
    config_file: Path | None,
    dictionaries_dir: Path | None,
    device: str,
) -> None:
    """Join the N shard files of `cache build --shard i/N` into the cache one build writes.

    Counts and histograms add, top examples merge exactly, labels are scored again from the
    merged counts; the panels take one model-free pass over all the games. Where a shard chose a
    feature's anchor predicate differently from the first shard that saw it fire, that shard's
    conjunction counts are taken again with the model (--weights: the weights of the build).
    """
    from othello_tui.features import cache_path, dictionaries_hash, open_cache
    from othello_tui.features.merge import MergeError, merge_caches, shard_settings
    from othello_tui.model.weights import model_fingerprint

    model, dictionaries = load_model_and_dictionaries_or_fail(weights, device, dictionaries_dir, config_file)
    try:
        if out is None:
            digests = model_fingerprint(model), dictionaries_hash(dictionaries)
            out = cache_path(DEFAULT_CACHE_DIR, *digests, shard_settings(shards[0]))
        with _progress(False) as progress:
            merge_caches(shards, model, dictionaries, out, progress=progress)
    except MergeError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) from {len(shards)} shards")
    _print_label_summary(open_cache(out))


@contextmanager
def _progress(lines: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A ``progress(phase, done, total)`` for the builds: a bar per phase (or ``PHASE DONE TOTAL``
    lines for programs), which stops the work on Ctrl-C, a hang-up or SIGTERM."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("games"),
        TimeElapsedColumn(),
    )
    lines = lines or not sys.stdout.isatty()  # a log file gets lines, not silence
    with _interruptible() as stop_if_asked, Progress(*columns, disable=lines) as bar:
        tasks = {}

        def progress(phase: str, done: int, total: int) -> None:
            stop_if_asked()
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done)
            if lines:
                click.echo(f"{phase} {done} {total}")

        yield progress


@contextmanager
def _interruptible() -> Iterator[Callable[[], None]]:
    """SIGINT, SIGTERM and SIGHUP (a closed terminal) stop the build: yields ``check()``, which
    raises ``KeyboardInterrupt`` once one has arrived, so the temporary file is removed. The
    handlers only record the signal, and ``check()`` runs after every batch: an exception raised
    from a handler at an arbitrary bytecode can land in a finalizer, where Python drops it
    ("Exception ignored in …"), and the build went on to the end. A second signal raises at
    once. SIGINT too: a process started with it ignored (a shell's background job, and every
    child of one, e.g. the build ``play`` starts) would otherwise never stop on a cancel. The
    old handlers come back after."""
    received: list[int] = []

    def check() -> None:
        if received:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():  # handlers are main-thread only
        yield check
        return

    def record(signum: int, _frame) -> None:
        check()  # the second one
        received.append(signum)

    signals = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {s: signal.signal(s, record) for s in signals}
    try:
        yield check
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _print_label_summary(cache) -> None:
    from rich.table import Table

    from othello_tui.features.labels import GOOD_LABEL_F1, LABEL_F1_FLOOR
    from othello_tui.features.meaning import LABELLED_F1

    table = Table(
        "module",
        "alive",
        f"labelled (F1 ≥ {LABEL_F1_FLOOR})",
        f"F1 ≥ {GOOD_LABEL_F1}",
        "share of alive",
        f"labelled mass (F1 ≥ {LABELLED_F1})",
        "monosemantic (top-k)",
        "mass in >10% / >50% dense",
        title="labels and meaning",
    )
    meaning = cache.meaning_summary()
    for module, summary in cache.label_summary().items():
        m = meaning[module]
        table.add_row(
            module,
            str(summary.alive),
            str(summary.labelled),
            str(summary.good),
            f"{summary.good_share:.1%}",
            f"{m.labelled_mass:.2f}",
            f"{m.monosemantic_share:.1%}",
            f"{m.dense_mass_10:.2f} / {m.dense_mass_50:.2f}",
        )
    output.console().print(table)


@main.command("feature")
@click.argument("feature_id")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
@click.option(
    "--examples",
    "n_examples",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Top examples to list.",
)
@game_options(moves_help='Also list the feature\'s activations along this game, e.g. "f-4 f-5 c-3".')
@_CACHE
@_WEIGHTS
@dictionaries_option
def feature(
    feature_id: str,
    as_json: bool,
    n_examples: int,
    moves: str | None,
    game_index: int | None,
    seed: int,
    cache_file: Path | None,
    weights: Path,
    config_file: Path | None,
    dictionaries_dir: Path | None,
) -> None:
    """Show what a feature such as L2M845 responds to.

    Board panels over its top examples (move played, legal next moves, board relative to the
    player who moved, flipped, empty), the logit effect of its decoder row (for a residual-stream
    feature such as L3R512 also its believed board: what the row writes into the mine/theirs
    probe), its automatic label, firing frequency, activation histogram and top examples. With a game (--moves, or --seed and
    --game-index), also where along it the feature fires.
    """

    from othello_tui.features import CacheError, FeatureIdError
    from othello_tui.features.render import feature_view
    from othello_tui.game.squares import square_name

    cache = _open(cache_file, weights, dictionaries_dir, config_file)
    try:
        stats = cache.feature(feature_id)
    except (FeatureIdError, CacheError) as error:
        raise click.ClickException(str(error)) from None
    notes = user_notes(cache.dictionaries_hash, DEFAULT_CACHE_DIR)
    note = notes.get(stats.feature_id) if notes is not None else None
    game = chosen_game(moves, game_index, seed, required=False)
    along = (
        None
        if game is None
        else _activations_along(game, stats.module, stats.index, weights, dictionaries_dir, config_file)
    )
    reading = _decoder_reading(stats.module, stats.index, weights, config_file)
    if as_json:
        data = stats.to_dict()
        data["examples"] = data["examples"][:n_examples]
        if reading is not None:
            data["believed_board"] = [round(float(x), 6) for x in reading]
        if along is not None:
            data["game"] = {"moves": game.text, "activations": along}
        if note is not None:
            data["note"] = notes.note_of(stats.feature_id)
        click.echo(json.dumps(data, indent=2))
        return
    console = output.console()
    if note is not None:
        from rich.text import Text

        console.print(
            Text.assemble((note.shown(), "bold"), " (your note)", f": {note.notes}" if note.notes else "")
        )
    console.print(feature_view(stats, n_examples, reading))
    if along is not None:
        fired = [f"P{t} {square_name(game.squares[t])} {a:.3f}" for t, a in enumerate(along) if a > 0]
        where = ", ".join(fired) if fired else "nowhere"
        console.print(f"{stats.feature_id} along the game ({len(along)} moves) fires at: {where}")


def _activations_along(
    game, module: str, index: int, weights: Path, dictionaries_dir: Path | None, config: Path | None
) -> list[float]:
    """The feature's activation at every position of ``game`` the model reads (its first
    ``n_ctx`` moves), from the model in ``weights``."""
    from othello_tui.circuits.trace import GameTrace
    from othello_tui.game.squares import SQUARE_TO_TOKEN

    if not game.moves:
        raise click.ClickException("--moves is empty: give at least one move, e.g. --moves f-4")
    model, dictionaries = load_model_and_dictionaries_or_fail(
        weights, dictionaries=dictionaries_dir, config=config
    )
    if module not in dictionaries or index >= dictionaries[module].cfg.d_sae:
        raise click.ClickException(f"the dictionaries in {weights} have no feature {module}{index}")
    trace = GameTrace(model, dictionaries, [int(SQUARE_TO_TOKEN[s]) for s in game.squares[: model.cfg.n_ctx]])
    return [round(float(a), 6) for a in trace.activations[module][:, index].tolist()]


@evaluate.command("labels")
@_CACHE
@_WEIGHTS
@dictionaries_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def eval_labels(
    cache_file: Path | None,
    weights: Path,
    config_file: Path | None,
    dictionaries_dir: Path | None,
    as_json: bool,
) -> None:
    """Per module: alive features, labelled ones, the share labelled with F1 ≥ 0.8, and the
    meaning measures (labelled mass, top-k monosemantic share, density profile)."""
    from othello_tui.features import CacheError

    cache = _open(cache_file, weights, dictionaries_dir, config_file)
    try:
        if as_json:
            meaning = cache.meaning_summary()
            summary = {
                m: {**vars(s), "good_share": s.good_share, **meaning[m].to_dict()}
                for m, s in cache.label_summary().items()
            }
            click.echo(json.dumps(summary, indent=2))
        else:
            _print_label_summary(cache)
    except CacheError as error:
        raise click.ClickException(str(error)) from None
