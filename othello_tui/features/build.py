"""Build the feature cache (DESIGN.md §6; layout in ``format.py``).

Pass 1 runs the model and every dictionary over the games once, streaming per-module statistics
(``accumulate.py``): memory stays flat however many games. Pass 2 regenerates the games from the
seed (cheap: no model) and sums the board predicates over each feature's final top tokens, which
gives the example panels. The file is written under a temporary name and renamed when complete,
so an interruption (Ctrl-C, an exception, a progress callback that raises) leaves nothing.

Shape legend: B games, T positions, N tokens, D d_model, F features, K top tokens, P predicates.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
import torch

from othello_tui.dictionary.sae import Dictionary, is_residual
from othello_tui.features.accumulate import HISTOGRAM_EDGES, ModuleStatistics
from othello_tui.features.format import (
    FORMAT,
    FORMAT_VERSION,
    BuildSettings,
    cache_id,
    details_dtype,
    dictionaries_hash,
    summary_dtype,
)
from othello_tui.features.labels import PredicateCounts, conjunction_counts, score_labels
from othello_tui.features.openings import OpeningFilter
from othello_tui.features.predicates import N_PREDICATES, PREDICATE_NAMES, board_predicates
from othello_tui.features.shard import FULL, Shard, write_state
from othello_tui.game.corpus import atomic_path
from othello_tui.game.generator import N_MOVES, GameBatch, iter_games
from othello_tui.game.squares import TOKEN_TO_SQUARE
from othello_tui.model.transformer import OthelloGPT
from othello_tui.model.weights import model_fingerprint

#: ``progress(phase, done, total)`` with phase "games" (model pass) or "panels"; raising aborts
ProgressCallback = Callable[[str, int, int], None]
N_INPUT = N_MOVES - 1  # the model reads moves 1…59 (``targets.model_inputs``)
PANEL_SLICE = 1 << 16  # top-token entries gathered at once (× P bytes)
DETAIL_ROWS = 4  # features per chunk of ``details``: fetching one decompresses ~20 kB


def build_cache(
    model: OthelloGPT,
    dictionaries: Mapping[str, Dictionary],
    n_games: int,
    seed: int,
    top_k: int,
    path: Path,
    progress: ProgressCallback | None = None,
    batch_games: int = BuildSettings.batch_games,
    shard: Shard | None = None,
) -> Path:
    """Write the cache of ``dictionaries`` (on ``model``'s device) over games 0…n_games−1 of
    ``seed`` to ``path``; modules are stored bottom to top. ``progress`` is called after every
    batch (from the calling thread, so a TUI worker can post it on); an exception it raises
    aborts the build and leaves no file. With ``shard``, over that shard's games only, keeping
    what ``merge.py`` needs (``shard.py``)."""
    if not dictionaries:
        raise ValueError("no dictionaries to build a feature cache for")
    if not (0 < n_games < 2**32 // N_MOVES and top_k > 0 and batch_games > 0):
        raise ValueError(f"bad settings: n_games {n_games}, top_k {top_k}, batch_games {batch_games}")
    dictionaries = sort_modules(dictionaries)
    settings = BuildSettings(n_games, seed, top_k, batch_games)
    report = progress or (lambda phase, done, total: None)
    stats = {m: ModuleStatistics(d.cfg.d_sae, top_k, model.device) for m, d in dictionaries.items()}
    predicates = PredicateCounts(model.device)
    games = (shard or FULL).games(n_games, batch_games)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        tokens = create_tokens(f, n_games)
        openings = OpeningFilter()
        # earlier shards' openings count as seen: their repeats are no top examples here either
        prime = lambda batch: openings.first_seen(batch.tokens[:, :N_INPUT])  # noqa: E731
        for start, batch in batches(settings, games, skipped=prime):
            tokens[start : start + len(batch)] = batch.tokens
            accumulate(model, dictionaries, stats, predicates, batch, start, openings)
            report("games", start + len(batch) - games.start, len(games))
        write_statistics(f, model, dictionaries, settings, stats, predicates, games, report)
        if shard is not None:
            write_state(f, shard, predicates, {m: s.labels for m, s in stats.items()})
    return path


def sort_modules(dictionaries: Mapping[str, Dictionary]) -> dict[str, Dictionary]:
    """Bottom module first (L0A, L0M, L1A, …), then the residual-stream dictionaries (L0R, …):
    the cache's order, the features panel's."""
    order = sorted(dictionaries, key=lambda m: (is_residual(m), int(m[1:-1]), m[-1]))
    return {m: dictionaries[m] for m in order}


def create_tokens(f: h5py.File, n_games: int) -> h5py.Dataset:
    """The empty ``games/tokens`` dataset."""
    return f.create_dataset(
        "games/tokens", (n_games, N_MOVES), np.uint8, chunks=(min(n_games, 1024), N_MOVES),
        compression="gzip", shuffle=True, fletcher32=True,
    )  # fmt: skip


def write_statistics(
    f: h5py.File, model, dictionaries, settings: BuildSettings, stats, predicates, games: range, report
) -> None:
    """After the model pass over ``games``: the model-free pass over them, the header and every
    module."""
    second = _second_pass(stats, settings, games, report)
    _write_header(f, model, dictionaries, settings, predicates)
    for module, module_stats in stats.items():
        _write_module(f, module, dictionaries[module], model, module_stats, predicates, second[module])


def batches(
    settings: BuildSettings, games: range, skipped: Callable[[GameBatch], object] | None = None
) -> Iterator[tuple[int, GameBatch]]:
    """(index of the first game, games) in batches of ``batch_games``, over ``games`` (a run of
    whole batches); the batches before it go to ``skipped``."""
    start = 0
    for chunk in iter_games(games.stop, settings.seed):
        for offset in range(0, len(chunk), settings.batch_games):
            batch = chunk[offset : offset + settings.batch_games]
            if start >= games.start:
                yield start, batch
            elif skipped is not None:
                skipped(batch)
            start += len(batch)


@torch.inference_mode()
def accumulate(
    model, dictionaries, stats, predicates: PredicateCounts, games: GameBatch, start: int, openings
) -> None:
    device = model.device
    tokens_np = games.tokens[:, :N_INPUT]
    valid_BT = tokens_np != 0  # drop padding after a game's end
    token_id_BT = (start + np.arange(len(games)))[:, None] * N_MOVES + np.arange(N_INPUT)
    token_N = torch.from_numpy(token_id_BT[valid_BT]).to(device)
    example_N = torch.from_numpy(openings.first_seen(tokens_np)[valid_BT]).to(device)
    predicates_NP = _token_predicates(board_predicates(games), valid_BT).to(device)
    predicates.update(predicates_NP)
    tokens_BT = torch.from_numpy(tokens_np.astype(np.int64)).to(device)
    valid = torch.from_numpy(valid_BT).to(device)
    hooks = {dictionary.cfg.hook_name for dictionary in dictionaries.values()}
    _, cache = model.run_with_cache(tokens_BT, names=hooks)

    @torch.inference_mode()  # grad mode is per thread
    def encode_and_count(module: str) -> None:
        active = dictionaries[module].encode_entries(cache[dictionaries[module].cfg.hook_name][valid])
        stats[module].update(active, token_N, predicates_NP, predicates, example_N)

    # Modules are independent and most of their steps run on one core: spread them over the
    # cores (torch releases the GIL).
    list(_module_pool().map(encode_and_count, dictionaries))


def _token_predicates(predicates_GTP: np.ndarray, valid_BT: np.ndarray) -> torch.Tensor:
    """int8 [N, P]: the predicates of the model's tokens (moves 1…59 that exist), in token order."""
    return torch.from_numpy(predicates_GTP[:, :N_INPUT][valid_BT]).view(torch.int8)


@functools.cache
def _module_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max(1, torch.get_num_threads()), thread_name_prefix="cache-build")


def _second_pass(
    stats: Mapping[str, ModuleStatistics], settings: BuildSettings, games: range, report: ProgressCallback
):
    """Over the regenerated ``games`` (no model): per module, the triple-conjunction predicate counts
    over all tokens (``conjunction_counts``) and, over each feature's top tokens, the panels:
    predicate counts int32 [F, P], the same counts where the feature's anchor holds and where its
    anchor and partner hold (for the label candidates' top share), position counts int32 [F, 60]
    and the square of each top token's move int8 [F, K] (−1: unused slot)."""
    tops = np.concatenate([module_stats.top.result()[1].cpu().numpy() for module_stats in stats.values()])
    K = tops.shape[1]
    slots = np.argsort(tops.ravel(), kind="stable")[np.count_nonzero(tops < 0) :]  # unused slots hold −1
    tokens, rows = tops.ravel()[slots], slots // K
    positions = np.bincount(rows * N_MOVES + tokens % N_MOVES, minlength=len(tops) * N_MOVES)
    squares: np.ndarray = np.full(tops.size, -1, np.int8)
    anchor_R = torch.cat([module_stats.labels.anchor_F.cpu() for module_stats in stats.values()])
    partner_R = torch.cat([module_stats.labels.partner_F.cpu() for module_stats in stats.values()])
    counts, counts_a, counts_ab = (
        torch.zeros(len(tops), N_PREDICATES) for _ in range(3)
    )  # exact below 2**24
    device = next(iter(stats.values())).labels.anchor_F.device
    triples: dict[str, torch.Tensor | int] = {m: 0 for m in stats}
    for start, batch in batches(settings, games):
        predicates_GTP = board_predicates(batch)
        predicates_NP = _token_predicates(predicates_GTP, batch.tokens[:, :N_INPUT] != 0).to(device)

        def count_triples(module: str, predicates_NP=predicates_NP) -> None:
            labels = stats[module].labels
            triples[module] += conjunction_counts(predicates_NP, labels.anchor_F, labels.partner_F)

        list(_module_pool().map(count_triples, stats))
        lo, hi = np.searchsorted(tokens, [start * N_MOVES, (start + len(batch)) * N_MOVES])
        local, batch_rows = tokens[lo:hi] - start * N_MOVES, torch.from_numpy(rows[lo:hi])
        squares[slots[lo:hi]] = batch.squares.ravel()[local]
        predicates_TP = predicates_GTP.reshape(-1, N_PREDICATES).view(np.uint8)
        for a in range(0, hi - lo, PANEL_SLICE):
            slice_rows = batch_rows[a : a + PANEL_SLICE]
            found = torch.from_numpy(predicates_TP[local[a : a + PANEL_SLICE]].astype(np.float32))
            with_a = found * found.gather(1, anchor_R[slice_rows, None])
            counts.index_add_(0, slice_rows, found)
            counts_a.index_add_(0, slice_rows, with_a)
            counts_ab.index_add_(0, slice_rows, with_a * found.gather(1, partner_R[slice_rows, None]))
        report("panels", start + len(batch) - games.start, len(games))
    positions = positions.reshape(-1, N_MOVES).astype(np.int32)
    squares = squares.reshape(-1, K)
    offsets = np.cumsum([0] + [module_stats.n_features for module_stats in stats.values()])
    return {
        m: (
            triples[m],
            *(x.numpy().astype(np.int32)[a:b] for x in (counts, counts_a, counts_ab)),
            positions[a:b],
            squares[a:b],
        )
        for m, a, b in zip(stats, offsets[:-1], offsets[1:], strict=True)
    }


def top_share(candidates_FCJ: np.ndarray, labels, counts_FP, counts_a_FP, counts_ab_FP, n_examples_F):
    """The share of each feature's top examples that satisfy each label candidate, from the panel
    counts: a single p reads ``counts[p]``, a pair A ∧ X ``counts_a[X]``, a triple A ∧ B ∧ X
    ``counts_ab[X]`` (A the anchor, B the partner)."""
    anchor_F1, partner_F1 = (x.cpu().numpy()[:, None] for x in (labels.anchor_F, labels.partner_F))
    size_FC = (candidates_FCJ >= 0).sum(-1)
    known_FCJ = (candidates_FCJ == anchor_F1[..., None]) | (
        (candidates_FCJ == partner_F1[..., None]) & (size_FC[..., None] == 3)
    )
    extra_FC = np.where(
        size_FC == 1,
        candidates_FCJ[..., 0],
        np.where(known_FCJ | (candidates_FCJ < 0), -1, candidates_FCJ).max(-1),
    )
    rows_F1 = np.arange(len(candidates_FCJ))[:, None]
    # indexed by candidate size (1, 2 or 3 predicates; slot 0 unused)
    table = np.stack([counts_FP, counts_FP, counts_a_FP, counts_ab_FP])
    hits_FC = table[size_FC, rows_F1, np.maximum(extra_FC, 0)]
    return np.where(extra_FC >= 0, hits_FC / np.maximum(n_examples_F, 1)[:, None], 0.0).astype(np.float32)


def _dataset(group: h5py.Group, name: str, data: np.ndarray, rows: int) -> h5py.Dataset:
    """A chunked (``rows`` per chunk), compressed, checksummed dataset: corrupt bytes fail loudly
    on read."""
    return group.create_dataset(
        name,
        data=data,
        chunks=(max(1, min(rows, len(data))), *data.shape[1:]),
        compression="gzip",
        compression_opts=4,
        shuffle=True,
        fletcher32=True,
    )


def _write_header(
    f: h5py.File, model, dictionaries, settings: BuildSettings, predicates: PredicateCounts
) -> None:
    model_digest, dictionaries_digest = model_fingerprint(model), dictionaries_hash(dictionaries)
    f.attrs.update(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        cache_id=cache_id(model_digest, dictionaries_digest, settings),
        model_fingerprint=model_digest,
        dictionaries_hash=dictionaries_digest,
        n_tokens=predicates.n_tokens,
        modules=json.dumps({module: d.cfg.d_sae for module, d in dictionaries.items()}),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        **settings.to_dict(),
    )
    f.create_dataset("predicates", data=np.array(PREDICATE_NAMES, dtype="S"))
    f.create_dataset("predicate_count", data=predicates.count_P.cpu().numpy())
    f.create_dataset("histogram_edges", data=HISTOGRAM_EDGES)


def _write_module(
    f, module: str, dictionary: Dictionary, model, stats: ModuleStatistics, predicates, second
) -> None:
    triple_count_FP, counts_FP, counts_a_FP, counts_ab_FP, positions, squares = second
    group = f.create_group(f"modules/{module}")
    group.attrs.update(
        architecture=dictionary.cfg.architecture, hook_name=dictionary.cfg.hook_name, d_sae=stats.n_features
    )
    top_values, top_tokens = (x.cpu().numpy() for x in stats.top.result())
    # The decoder row's direct effect on the move logits, through the unembedding alone: the
    # final LayerNorm's scale depends on the whole residual at a token, so no per-feature
    # number includes it (DESIGN.md §3.3 freezes it per token instead).
    with torch.no_grad():
        effect_FV = (dictionary.W_dec @ model.unembed.W_U).cpu().numpy()
    effect_F64 = np.full((stats.n_features, 64), np.nan, np.float32)
    effect_F64[:, TOKEN_TO_SQUARE[1:]] = effect_FV[:, 1:]
    summary = np.zeros(stats.n_features, summary_dtype())
    summary["fire_count"] = stats.fire_count_F.cpu().numpy()
    summary["activation_sum"] = stats.activation_sum_F.cpu().numpy()
    candidates, summary["label_scores"] = score_labels(stats.labels, predicates, triple_count_FP)
    summary["label_candidates"] = candidates
    n_examples_F = (top_tokens >= 0).sum(1)
    summary["label_top_share"] = top_share(
        candidates, stats.labels, counts_FP, counts_a_FP, counts_ab_FP, n_examples_F
    )
    details = np.zeros(stats.n_features, details_dtype(top_tokens.shape[1]))
    details["histogram"] = stats.histogram_FB.cpu().numpy()
    details["top_game"] = np.where(top_tokens >= 0, top_tokens // N_MOVES, -1)
    details["top_position"] = np.where(top_tokens >= 0, top_tokens % N_MOVES, -1)
    details["top_square"] = squares
    details["top_activation"] = top_values
    details["example_predicates"], details["example_positions"] = counts_FP, positions
    details["logit_effect"] = effect_F64
    _dataset(group, "summary", summary, rows=len(summary))
    _dataset(group, "details", details, rows=DETAIL_ROWS)
    _dataset(group, "predicate_tp", stats.labels.tp_FP.cpu().numpy().astype(np.int32), rows=len(summary))
