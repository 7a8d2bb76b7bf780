"""The torch half of the session: the model and its dictionaries, one forward pass per game.

Imported only from :meth:`othello_tui.tui.session.Session.load` (in a worker thread), because
importing torch takes seconds and the board must be on screen before that.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from othello_tui.dictionary.sae import Dictionary, hook_name_of, module_names
from othello_tui.model.device import resolve_device
from othello_tui.model.transformer import OthelloGPT
from othello_tui.model.weights import WeightsError, load_model, model_fingerprint
from othello_tui.tui.session import GameAnalysis, Labels, ModelUnavailableError, tokens_of

DICTIONARIES_SUBDIR = "dictionaries"


class ModelEngine:
    """Runs the model over a game and encodes every module's output with its dictionary."""

    def __init__(
        self,
        model: OthelloGPT,
        dictionaries: dict[str, Dictionary],
        features_note: str | None = None,
        labels: Labels | None = None,
        labels_note: str | None = None,
    ):
        self.model = model.eval()
        self.dictionaries = dictionaries
        self.modules = tuple(m for m in module_names(model.cfg.n_layers) if m in dictionaries)
        self.features_note = features_note
        self.labels, self.labels_note = labels, labels_note

    @torch.no_grad()
    def analyse(self, squares: Sequence[int]) -> GameAnalysis:
        """Probabilities and activations at every position; the model is causal, so position t
        is exactly what a pass over the first t+1 moves alone would give."""
        tokens_1T = torch.from_numpy(tokens_of(squares))[None].to(self.model.device)
        hooks = {m: hook_name_of(m) for m in self.modules}
        logits_1TV, cache = self.model.run_with_cache(tokens_1T, names=hooks.values())
        probs_TV = torch.softmax(logits_1TV[0].float(), dim=-1)
        acts = {
            m: self.dictionaries[m].encode(cache[hook][0]).float().cpu().numpy() for m, hook in hooks.items()
        }
        return GameAnalysis(probs_TV.cpu().numpy(), acts)


def load_engine(
    weights: Path,
    device: str = "auto",
    dictionaries: Path | None = None,
    cache: Path | None = None,
    cache_dir: Path | None = None,
) -> ModelEngine:
    """The model from ``weights``; when present, the dictionaries from ``dictionaries`` (default
    ``<weights>/dictionaries``) and feature labels from the cache ``cache`` (default: the newest
    cache in ``cache_dir`` built for these weights). Missing dictionaries or labels are not
    errors: the engine carries a note saying why they are missing."""
    try:
        device = resolve_device(device)
    except ValueError as error:  # asked for cuda without one, or an unknown name
        raise ModelUnavailableError(str(error)) from None
    try:
        model, _ = load_model(Path(weights), device)
    except WeightsError as error:
        raise ModelUnavailableError(str(error)) from None
    directory = Path(dictionaries) if dictionaries else Path(weights) / DICTIONARIES_SUBDIR
    found, note = _load_dictionaries(directory, model)
    labels, labels_note = _open_labels(cache, cache_dir, model, found) if found else (None, None)
    return ModelEngine(model, {m: d.to(device).eval() for m, d in found.items()}, note, labels, labels_note)


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


def _open_labels(
    cache: Path | None, cache_dir: Path | None, model: OthelloGPT, dictionaries: dict[str, Dictionary]
) -> tuple[Labels | None, str | None]:
    """``FeatureCache.label`` of the cache built for exactly these weights, read in full now (in
    the loading worker) so that the screen never waits on the HDF5 file."""
    from othello_tui.features import CacheError, dictionaries_hash, find_cache, open_cache

    fingerprint, digest = model_fingerprint(model), dictionaries_hash(dictionaries)
    path = cache or (find_cache(cache_dir, fingerprint, digest) if cache_dir else None)
    if path is None:
        return None, "No labels: no feature cache for these weights (`othello-tui cache build`)."
    try:
        opened = open_cache(path, fingerprint, digest)
        for module in dictionaries:
            opened.labels(module)
    except CacheError as error:
        return None, f"No labels: {error}"
    return opened.label, None
