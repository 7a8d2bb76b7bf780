"""The torch half of the session: the model and its dictionaries, one forward pass per game
(and, for the circuits backend, a game's whole :class:`GameTrace` on demand).

Imported only from :meth:`othello_tui.tui.session.Session.load` (in a worker thread), because
importing torch takes seconds and the board must be on screen before that.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from othello_tui.circuits.trace import GameTrace
from othello_tui.dictionary.sae import Dictionary, hook_name_of, is_residual, module_names, residual_names
from othello_tui.features import (
    BuildSettings,
    CacheError,
    FeatureCache,
    cache_path,
    dictionaries_hash,
    find_cache,
    open_cache,
)
from othello_tui.game.squares import tokens_of
from othello_tui.model.device import resolve_device
from othello_tui.model.transformer import KVCache, OthelloGPT
from othello_tui.model.weights import WeightsError, load_model, model_fingerprint, weights_home
from othello_tui.probes.alignment import FlipFeatures, decoder_readings, flip_features
from othello_tui.probes.beliefs import belief_probs
from othello_tui.probes.families import site_of_module
from othello_tui.probes.io import load_probes
from othello_tui.probes.linear import LinearProbes
from othello_tui.tui.analysis import GameAnalysis, ModelUnavailableError
from othello_tui.tui.cache_build import CacheRequest
from othello_tui.tui.feature_acts import FeatureActs
from othello_tui.tui.views import Labels

DICTIONARIES_SUBDIR = "dictionaries"
FIRST_CACHE_GAMES = 1_000  # a first feature cache this big is built in about half a minute on 2 cores


class ModelEngine:
    """Runs the model over a game and encodes every module's output with its dictionary, and
    the residual stream after each block with its residual-stream dictionary (``L0R`` …, after
    ``L5M`` in :attr:`modules`; readouts: :meth:`trace` keeps them out of the decomposition)."""

    def __init__(
        self,
        model: OthelloGPT,
        dictionaries: dict[str, Dictionary],
        features_note: str | None = None,
        feature_cache: FeatureCache | None = None,
        labels_note: str | None = None,
        cache_requests: tuple[CacheRequest, ...] = (),
        probes: LinearProbes | None = None,
        probes_note: str | None = None,
        model_note: str | None = None,
    ):
        self.model = model.eval()
        self.model_note = model_note  # e.g. that the model's config was inferred from its tensors
        self.n_ctx = model.cfg.n_ctx  # moves the model reads: a game is analysed up to there
        self.probes, self.probes_note = probes, probes_note
        self.dictionaries = dictionaries
        names = module_names(model.cfg.n_layers) + residual_names(model.cfg.n_layers)
        self.modules = tuple(m for m in names if m in dictionaries)
        self.n_features = {m: dictionaries[m].cfg.d_sae for m in self.modules}
        self.features_note = features_note
        self.feature_cache, self.labels_note, self.cache_requests = feature_cache, labels_note, cache_requests
        self.labels: Labels | None = feature_cache.label if feature_cache else None
        self.residual_note: str | None = None  # why weights/residual could not be read, if it could not
        #: per probe site with a residual dictionary, the features a belief edit along a feature uses
        self.flip_features: dict[int, FlipFeatures] = {}
        #: per residual dictionary, what each feature writes into the probe: [F, 64] (feature pages)
        self.decoder_readings: dict[str, np.ndarray] = {}
        for module in filter(is_residual, self.modules):
            if probes is not None:
                site = probes.sites.index(site_of_module(module))
                self.flip_features[site] = flip_features(probes, module, dictionaries[module])
                self.decoder_readings[module] = decoder_readings(probes, module, dictionaries[module])

    @functools.cached_property
    def identity(self) -> tuple[str, str]:
        """(model fingerprint, dictionaries hash): the weights an export says it used (hashing
        every parameter: call it from a worker)."""
        return model_fingerprint(self.model), dictionaries_hash(self.dictionaries)

    def use_cache(self, path: Path) -> None:
        """Take the feature cache at ``path`` (just built) if it was built for exactly these
        weights: its labels are read in full now, so the screen never waits on the file.
        Raises ``CacheError`` when it was not."""
        cache = open_cache(path, model_fingerprint(self.model), dictionaries_hash(self.dictionaries))
        for module in self.modules:
            cache.labels(module)
        self.feature_cache, self.labels, self.labels_note = cache, cache.label, None

    @torch.inference_mode()
    def analyse(self, squares: Sequence[int], reuse: GameAnalysis | None = None) -> GameAnalysis:
        """Probabilities and activations at every position the model reads (the first ``n_ctx``
        moves); the model is causal, so position t is exactly what a pass over the first t+1 moves
        alone would give. ``reuse``, the analysis of the game's first P moves (fewer than it reads)
        with its keys and values, makes the pass run only the moves after them: a move played
        costs one position, not the whole game."""
        tokens_1T = torch.from_numpy(tokens_of(squares[: self.n_ctx]))[None].to(self.model.device)
        if reuse is not None and reuse.kv is None:
            raise ValueError("an analysis without keys and values cannot be extended")
        past = None if reuse is None else reuse.kv
        start, n_layers = (0 if past is None else len(past)), self.model.cfg.n_layers
        hooks = {m: hook_name_of(m) for m in self.modules}
        sites = self.probes.sites if self.probes is not None else ()
        names = [*hooks.values(), *sites, *KVCache.hook_names(n_layers)]
        logits_1TV, cache = self.model.run_with_cache(tokens_1T[:, start:], names, past)
        probs_TV = torch.softmax(logits_1TV[0].float(), dim=-1)
        acts = {
            m: FeatureActs.of(self.dictionaries[m].encode(cache[hook][0]).float().cpu().numpy())
            for m, hook in hooks.items()
        }
        beliefs = self.beliefs({site: cache[site][0] for site in sites}) if sites else None
        later = GameAnalysis(probs_TV.cpu().numpy(), acts, beliefs, KVCache.of(cache, n_layers, past))
        return later if reuse is None else reuse.followed_by(later)

    def beliefs(self, residuals: dict[str, torch.Tensor]) -> np.ndarray:
        """float32 [T, S, 64, 3]: the mine/theirs probe's probabilities (mine, theirs, empty) at
        every position and probe site, from the residual stream at each site (``[T, D]``)."""
        if self.probes is None:
            raise RuntimeError(self.probes_note or "no probes are loaded")
        return belief_probs(self.probes, residuals).float().cpu().numpy()

    def trace(self, squares: Sequence[int]) -> GameTrace:
        """The game's forward pass kept whole and split into nodes, for attributions and
        interventions (a few MB per game: the circuits backend caches a handful), up to the moves
        the model reads."""
        return GameTrace(self.model, self.dictionaries, tokens_of(squares[: self.n_ctx]), self.probes)


def load_engine(
    weights: Path,
    device: str = "auto",
    dictionaries: Path | None = None,
    cache: Path | None = None,
    cache_dir: Path | None = None,
    build_settings: BuildSettings | None = None,
    config: Path | None = None,
) -> ModelEngine:
    """The model from ``weights`` (a folder, or a checkpoint file with its ``config`` JSON); when
    present, the dictionaries from ``dictionaries`` (default ``dictionaries/`` of
    :func:`weights_home`) and the feature cache ``cache`` (default: the newest cache in
    ``cache_dir`` built for these weights, the full one first). Missing dictionaries or labels are
    not errors: the engine carries a note saying why they are missing, and, when ``cache_dir``
    lacks the full cache for the dictionaries of ``weights`` (``build_settings``, default those of
    ``othello-tui cache build``), the :class:`CacheRequest` s that build it there: first a small
    one when there is no cache at all, then the full one."""
    try:
        device = resolve_device(device)
    except ValueError as error:  # asked for cuda without one, or an unknown name
        raise ModelUnavailableError(str(error)) from None
    if torch.device(device).type == "cpu":
        # One game at a time is too small to share between threads: with two, a pass waits on
        # any other busy process (the background cache build, a training run) and a key press
        # that needs one can take seconds; with one it stays near 70 ms.
        torch.set_num_threads(1)
    try:
        model, meta = load_model(Path(weights), device, config)
    except WeightsError as error:
        raise ModelUnavailableError(str(error)) from None
    default_directory = weights_home(weights) / DICTIONARIES_SUBDIR
    directory = Path(dictionaries) if dictionaries else default_directory
    found, note = _load_dictionaries(directory, model)
    residual_note = None
    if found:  # residual-stream dictionaries go with module ones: one feature cache covers both
        residual, residual_note = _load_residual(weights_home(weights), model)
        found = {**found, **residual}
    probes, probes_note = _load_probes(weights_home(weights), model)
    engine = ModelEngine(
        model,
        {m: d.to(device).eval() for m, d in found.items()},
        note,
        probes=probes,
        probes_note=probes_note,
        model_note=meta.get("note"),
    )
    engine.residual_note = residual_note
    if not found:
        return engine
    digests = model_fingerprint(model), dictionaries_hash(engine.dictionaries)
    settings = build_settings or BuildSettings()
    full = cache_path(cache_dir, *digests, settings) if cache_dir else None
    # the full cache, else any other built for these weights (a first, smaller one), newest first
    path = cache or (full if full is not None and full.exists() else None)
    path = path or (find_cache(cache_dir, *digests) if cache_dir else None)
    # `cache build` reads the dictionaries beside the weights: it can build only for those
    buildable = directory.resolve() == default_directory.resolve()
    if cache is None and cache_dir is not None and path != full and buildable:
        engine.cache_requests = _requests(
            Path(weights), device, cache_dir, digests, settings, config, first=path is None
        )
    if path is None:
        engine.labels_note = "No labels: no feature cache for these weights (`othello-tui cache build`)."
        return engine
    try:
        engine.use_cache(path)
    except CacheError as error:
        engine.labels_note = f"No labels: {error}"
    return engine


def _requests(
    weights: Path,
    device: str,
    cache_dir: Path,
    digests: tuple[str, str],
    settings: BuildSettings,
    config: Path | None,
    first: bool,
) -> tuple[CacheRequest, ...]:
    """The builds ``play`` runs for a missing cache: with ``first``, a first cache over
    :data:`FIRST_CACHE_GAMES` games, whose labels are ready within a minute, then the full one."""
    full = CacheRequest(
        weights,
        cache_path(cache_dir, *digests, settings),
        device,
        settings.n_games,
        settings.seed,
        settings.top_k,
        config,
    )
    if not first or settings.n_games <= FIRST_CACHE_GAMES:
        return (full,)
    small = replace(settings, n_games=FIRST_CACHE_GAMES)
    quick = CacheRequest(
        weights, cache_path(cache_dir, *digests, small), device, small.n_games, small.seed, small.top_k,
        config, f"a first cache over {small.n_games:,} games",
    )  # fmt: skip
    later = f"the full cache over {settings.n_games:,} games (the first one's labels meanwhile)"
    return quick, replace(full, stage=later)


def _load_dictionaries(directory: Path, model: OthelloGPT) -> tuple[dict[str, Dictionary], str | None]:
    try:
        from othello_tui.dictionary.io import load_dictionaries
    except ModuleNotFoundError as error:
        if error.name != "othello_tui.dictionary.io":
            raise
        return {}, "Dictionaries are not part of this version yet."
    try:
        return load_dictionaries(directory, model=model), None
    except WeightsError as error:
        return {}, f"No dictionaries: {error}"


def _load_residual(weights: Path, model: OthelloGPT) -> tuple[dict[str, Dictionary], str | None]:
    """The residual-stream dictionaries of ``weights/residual`` (none when it does not exist),
    or none and why not (a broken folder must not cost the module dictionaries)."""
    from othello_tui.dictionary.io import load_residual

    try:
        return load_residual(weights, model), None
    except WeightsError as error:
        return {}, f"No residual-stream dictionaries: {error}"


def _load_probes(weights: Path, model: OthelloGPT) -> tuple[LinearProbes | None, str | None]:
    """The probes beside the model (for the believed board), or None and why not."""
    try:
        probes, _ = load_probes(weights, model)
    except WeightsError as error:
        return None, f"No believed board: {error}"
    return probes.to(model.device), None
