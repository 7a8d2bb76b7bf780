"""Merge the shard files of one feature-cache build (``shard.py``) into the file that one build
over all the games writes: the same counts, top examples, panels and labels.

Counts, histograms and true positives add. Top-k lists merge exactly: each keeps the k largest
(value, earliest token) keys, and the k largest of a union are the k largest of the parts' top
k (so the merge is associative). Labels are scored again from the merged counts. A feature's
anchor and partner predicates are those of the first shard where it fires, as in one build; a
later shard that chose others for it counted its conjunctions for those, so those counts are
taken again over that shard's games with the model (only shards and modules that need it). The
model-free pass (panels and triple counts) then runs over all the games.

Shape legend: F features, K top tokens, P predicates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch

from othello_tui.dictionary.sae import Dictionary
from othello_tui.features.accumulate import ModuleStatistics
from othello_tui.features.build import (
    ProgressCallback,
    accumulate,
    batches,
    create_tokens,
    sort_modules,
    write_statistics,
)
from othello_tui.features.format import FORMAT, BuildSettings, dictionaries_hash
from othello_tui.features.labels import PredicateCounts
from othello_tui.features.openings import OpeningFilter
from othello_tui.features.shard import Shard
from othello_tui.game.corpus import atomic_path
from othello_tui.game.generator import N_MOVES
from othello_tui.model.transformer import OthelloGPT
from othello_tui.model.weights import model_fingerprint


class MergeError(ValueError):
    """The files are not the complete shards of one build for these weights."""


def merge_caches(
    shard_paths: Sequence[Path],
    model: OthelloGPT,
    dictionaries: Mapping[str, Dictionary],
    path: Path,
    progress: ProgressCallback | None = None,
) -> Path:
    """Write to ``path`` the cache that one build would have written, from the shard files of
    that build (any order); ``model`` and ``dictionaries`` are the ones they were built with."""
    report = progress or (lambda phase, done, total: None)
    dictionaries = sort_modules(dictionaries)
    shards = _read_shards(shard_paths, model_fingerprint(model), dictionaries_hash(dictionaries))
    settings = shards[0][1]
    device = model.device
    predicates = PredicateCounts(device)
    for _, _, f in shards:
        predicates.n_tokens += int(f.attrs["n_tokens"])
        predicates.count_P += torch.from_numpy(f["predicate_count"][:]).to(device)
        predicates.pairs_PP += torch.from_numpy(f["merge/predicate_pairs"][:]).to(device)
    stats, mismatched = {}, {}
    for m, d in dictionaries.items():
        stats[m], mismatched[m] = _merged_statistics(m, d.cfg.d_sae, settings.top_k, shards, device)
    _recount_conjunctions(model, dictionaries, stats, mismatched, shards, settings, report)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as out:
            tokens = create_tokens(out, settings.n_games)
            for shard, _, f in shards:
                games = shard.games(settings.n_games, settings.batch_games)
                tokens[games.start : games.stop] = f["games/tokens"][games.start : games.stop]
            write_statistics(
                out, model, dictionaries, settings, stats, predicates, range(settings.n_games), report
            )
    finally:
        for _, _, f in shards:
            f.close()
    return path


def _read_shards(paths: Sequence[Path], model_digest: str, dictionaries_digest: str):
    """[(shard, settings, open file)] in shard order, checked to be all N shards of one build."""
    shards, expected = [], None
    try:
        for path in paths:
            try:
                f = h5py.File(path, "r")
            except (OSError, FileNotFoundError) as error:
                raise MergeError(f"{path}: not a readable HDF5 file ({error})") from None
            shards.append(f)
            if f.attrs.get("format") != FORMAT or "shard_count" not in f.attrs:
                raise MergeError(f"{path}: not a shard of a feature cache (build it with --shard i/N)")
            identity = {
                key: (f.attrs[key].item() if hasattr(f.attrs[key], "item") else f.attrs[key])
                for key in (
                    "format_version",
                    "model_fingerprint",
                    "dictionaries_hash",
                    "shard_count",
                    "modules",
                )
            }
            identity |= BuildSettings(
                *(int(f.attrs[k]) for k in BuildSettings.__dataclass_fields__)
            ).to_dict()
            if expected is None:
                expected = (path, identity)
            elif identity != expected[1]:
                differ = ", ".join(k for k in identity if identity[k] != expected[1][k])
                raise MergeError(f"{path} and {expected[0]} are shards of different builds ({differ} differ)")
        if expected is None:
            raise MergeError("no shards to merge")
        if expected[1]["model_fingerprint"] != model_digest:
            raise MergeError("the shards were built with another model than --weights")
        if expected[1]["dictionaries_hash"] != dictionaries_digest:
            raise MergeError("the shards were built with other dictionaries than those of --weights")
        count = expected[1]["shard_count"]
        indices = sorted(int(f.attrs["shard_index"]) for f in shards)
        if indices != list(range(count)):
            missing = sorted(set(range(count)) - set(indices))
            twice = sorted({i for i in indices if indices.count(i) > 1})
            problems = ([f"missing {missing}"] if missing else []) + ([f"repeated {twice}"] if twice else [])
            raise MergeError(f"need each of the {count} shards once: " + "; ".join(problems))
    except BaseException:
        for f in shards:
            f.close()
        raise
    settings = _settings(shards[0])
    ordered = sorted(shards, key=lambda f: int(f.attrs["shard_index"]))
    return [(Shard(int(f.attrs["shard_index"]), count), settings, f) for f in ordered]


def shard_settings(path: Path) -> BuildSettings:
    """The build settings a shard file records."""
    try:
        with h5py.File(path, "r") as f:
            return _settings(f)
    except (OSError, KeyError) as error:
        raise MergeError(f"{path}: not a shard of a feature cache ({error})") from None


def _settings(f: h5py.File) -> BuildSettings:
    return BuildSettings(*(int(f.attrs[k]) for k in BuildSettings.__dataclass_fields__))


def _merged_statistics(module: str, n_features: int, top_k: int, shards, device):
    """The module's statistics over all shards, and {shard index: bool [F]} where the shard chose
    another anchor or partner than the merge: there its conjunction counts are left out, for
    ``_recount_conjunctions``."""
    stats = ModuleStatistics(n_features, top_k, device)
    labels = stats.labels
    mismatched = {}

    def read(data: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(data)).to(device)

    for shard, _, f in shards:
        group, state = f[f"modules/{module}"], f[f"merge/{module}"]
        summary, details = group["summary"][:], group["details"][:]
        stats.activation_sum_F += read(summary["activation_sum"])
        stats.histogram_FB += read(details["histogram"])
        fires_F = read(summary["fire_count"])
        labels.fires_F += fires_F
        labels.tp_FP += read(group["predicate_tp"][:].astype(np.int64))
        anchor_F, partner_F = (read(state[name][:].astype(np.int64)) for name in ("anchor", "partner"))
        first_F = ~labels.chosen_F & (fires_F > 0)
        labels.anchor_F[first_F], labels.partner_F[first_F] = anchor_F[first_F], partner_F[first_F]
        labels.chosen_F |= first_F
        mismatched[shard.index] = (fires_F > 0) & (
            (anchor_F != labels.anchor_F) | (partner_F != labels.partner_F)
        )
        for name in ("conjunction_tp", "triple_tp"):
            counts_FP = read(state[name][:].astype(np.int64))
            getattr(labels, f"{name}_FP")[:] += counts_FP.masked_fill(mismatched[shard.index][:, None], 0)
        used_FK = details["top_game"] >= 0
        token_E = details["top_game"][used_FK].astype(np.int64) * N_MOVES + details["top_position"][used_FK]
        stats.top.update(
            read(np.nonzero(used_FK)[0]), read(token_E), read(details["top_activation"][used_FK])
        )
    return stats, mismatched


def _recount_conjunctions(
    model, dictionaries, stats, mismatched, shards, settings: BuildSettings, report
) -> None:
    """Count, with the model, the conjunction true positives of the features whose anchor or
    partner a shard chose differently, over that shard's games, for the merged choice."""
    for shard, _, _ in shards:
        modules = [m for m in dictionaries if mismatched[m][shard.index].any()]
        if not modules:
            continue
        recount = {m: ModuleStatistics(stats[m].n_features, 1, model.device) for m in modules}
        for m in modules:
            labels = recount[m].labels
            labels.anchor_F[:], labels.partner_F[:] = stats[m].labels.anchor_F, stats[m].labels.partner_F
            labels.chosen_F[:] = True
        games = shard.games(settings.n_games, settings.batch_games)
        predicates = PredicateCounts(model.device)
        for start, batch in batches(settings, games):
            accumulate(
                model,
                {m: dictionaries[m] for m in modules},
                recount,
                predicates,
                batch,
                start,
                OpeningFilter(),
            )
            report(f"recount {shard}", start + len(batch) - games.start, len(games))
        for m in modules:
            redo_F1 = mismatched[m][shard.index][:, None]
            for name in ("conjunction_tp_FP", "triple_tp_FP"):
                getattr(stats[m].labels, name)[:] += getattr(recount[m].labels, name).masked_fill(~redo_F1, 0)
