"""Loading weights for a command: a clear message (naming the command that makes them) instead
of a traceback when they are missing or do not fit."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from othello_tui.cli.groups import DEFAULT_WEIGHTS

if TYPE_CHECKING:
    from othello_tui.dictionary.sae import Dictionary
    from othello_tui.model.transformer import OthelloGPT

F = TypeVar("F", bound=Callable[..., Any])  # a command function, before click.command

WEIGHTS_HELP = (
    "Model: our weights folder, or one TransformerLens checkpoint file (.safetensors, .pth, .pt; its"
    " config in the .json of the same name beside it, or --config, else inferred). Dictionaries and"
    " probes live in the folder, or for a file in the folder of its name beside it."
)


def weights_option(help: str = WEIGHTS_HELP) -> Callable[[F], F]:
    """``--weights PATH`` (a folder or a checkpoint file) and ``--config FILE`` (parameters
    ``weights`` and ``config_file``)."""

    def decorate(function: F) -> F:
        function = click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            default=None,
            help='HookedTransformerConfig JSON (bare or under "config") for a --weights checkpoint '
            "file, instead of the one beside it.",
        )(function)
        return click.option(
            "--weights",
            type=click.Path(path_type=Path),
            default=DEFAULT_WEIGHTS,
            show_default=True,
            help=help,
        )(function)

    return decorate


def weights_home(weights: Path) -> Path:
    """Where the dictionaries and probes of ``weights`` live (the folder, or beside a file)."""
    from othello_tui.model.weights import weights_home

    return weights_home(weights)


def load_model_or_fail(weights: Path, device: str = "auto", config: Path | None = None) -> OthelloGPT:
    """The model in ``weights`` (a folder or a checkpoint file, ``config`` its config JSON) on
    ``device`` (auto, cpu or cuda); a config inferred from the tensor shapes is said on stderr."""
    from othello_tui.model.device import resolve_device
    from othello_tui.model.weights import WeightsError, load_model

    try:
        model, meta = load_model(weights, resolve_device(device), config)
    except (WeightsError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    if meta.get("note"):
        click.echo(f"note: {meta['note']}", err=True)
    return model


def load_model_and_dictionaries_or_fail(
    weights: Path,
    device: str = "auto",
    dictionaries: Path | None = None,
    config: Path | None = None,
    required: bool = True,
) -> tuple[OthelloGPT, dict[str, Dictionary]]:
    """(model, dictionaries): the model in ``weights`` and the dictionaries in ``dictionaries``
    (default ``dictionaries/`` in :func:`weights_home`), ours or SAELens folders, plus the
    residual-stream dictionaries of ``residual/`` there when that folder exists (readouts: a
    :class:`~othello_tui.circuits.trace.GameTrace` keeps them out of its decomposition). Unless
    ``required``, a model with no default dictionaries folder (a checkpoint just downloaded) has
    none: its modules are whole nodes, and stderr says so."""
    from othello_tui.dictionary.io import load_dictionaries, load_residual
    from othello_tui.model.weights import WeightsError

    model = load_model_or_fail(weights, device, config)
    default = weights_home(weights) / "dictionaries"
    if not required and dictionaries is None and not default.is_dir():
        click.echo(
            f"note: no dictionaries in {default}: every module is one node"
            " (`othello-tui train dictionaries` makes them)",
            err=True,
        )
        return model, {}
    try:
        loaded = load_dictionaries(
            weights_home(weights) / "dictionaries" if dictionaries is None else dictionaries, model
        )
        loaded.update(load_residual(weights_home(weights), model))
    except WeightsError as error:
        raise click.ClickException(str(error)) from None
    return model, {module: d.to(model.device) for module, d in loaded.items()}


def dictionaries_option(function: F) -> F:
    """The ``--dictionaries DIR`` option (parameter ``dictionaries_dir``)."""
    return click.option(
        "--dictionaries",
        "dictionaries_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder of SAELens folders (cfg.json + sae_weights.safetensors; each is the module "
        "its hook_name names), ours or anyone's; older {module}.json + .safetensors pairs too. "
        "[default: the weights' dictionaries/]",
    )(function)


def load_probes_or_fail(weights: Path, model):
    """The probes beside the model in ``weights`` (in :func:`weights_home`), on the model's device."""
    from othello_tui.model.weights import WeightsError
    from othello_tui.probes.io import load_probes

    try:
        probes, _ = load_probes(weights_home(weights), model)
    except WeightsError as error:
        raise click.ClickException(str(error)) from None
    return probes.to(model.device)


def cache_option(purpose: str) -> Callable[[F], F]:
    """The ``--cache FILE`` option (parameter ``cache_file``) of the commands that read a feature cache."""
    return click.option(
        "--cache",
        "cache_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help=f"{purpose} (default: the newest cache in cache/ built for --weights).",
    )


class WeightsDigests:
    """The model fingerprint and dictionaries hash of loaded weights (what finds their feature
    cache, their notes, and what an export says it used), each hashed once and only when asked:
    hashing every tensor of a large model takes a good part of a second, and a command that
    finds no cache or notes to compare with needs neither."""

    def __init__(self, model: OthelloGPT, dictionaries: Mapping[str, Dictionary]):
        self._model, self._dictionaries = model, dictionaries

    @functools.cached_property
    def model(self) -> str:
        from othello_tui.model.weights import model_fingerprint

        return model_fingerprint(self._model)

    @functools.cached_property
    def dictionaries(self) -> str:
        from othello_tui.features import dictionaries_hash

        return dictionaries_hash(self._dictionaries)


def find_feature_cache(cache_file: Path | None, digests: WeightsDigests, directory: Path | None = None):
    """(the feature cache ``cache_file``, else the newest one in cache/ built for the weights of
    ``digests``, or None; a note saying why there is none). ``directory`` defaults to cache/. A
    named file that is stale or broken is an error."""
    from othello_tui.cli.groups import DEFAULT_CACHE_DIR
    from othello_tui.features.format import cache_filename

    directory = directory or DEFAULT_CACHE_DIR
    none = None, "No feature cache for these weights (`othello-tui cache build` makes one)."
    if cache_file is None and not any(directory.glob(cache_filename("*"))):
        return none  # nothing to compare with: no hashing, no h5py
    from othello_tui.features import CacheError, find_cache, open_cache

    path = cache_file or find_cache(directory, digests.model, digests.dictionaries)
    if path is None:
        return none
    try:
        return open_cache(path, digests.model, digests.dictionaries), None
    except CacheError as error:
        raise click.ClickException(str(error)) from None


def user_notes(dictionaries_hash: str, folder: Path):
    """The user's notes on these dictionaries' features (``N`` in the app), or None when there
    are none; a notes file that cannot be read is named on stderr and left alone."""
    from othello_tui.notes import NotesError, NoteStore

    try:
        notes = NoteStore.open(folder, dictionaries_hash)
    except NotesError as error:
        click.echo(f"warning: your notes are not shown: {error}", err=True)
        return None
    return notes if notes.path.exists() else None
