"""The feature cache end to end on the tiny model: build, open, check, fetch.

Expected values come from an independent route: the model and dictionaries rerun over the same
batches and sorted by brute force, and boards replayed with the one-game rules.
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch

from othello_tui.cli.loading import WeightsDigests, find_feature_cache
from othello_tui.dictionary.sae import Dictionary, DictionaryConfig, hook_name_of
from othello_tui.features import (
    CacheError,
    FeatureIdError,
    StaleCacheError,
    build_cache,
    dictionaries_hash,
    find_cache,
    open_cache,
)
from othello_tui.features.format import BuildSettings, cache_path
from othello_tui.features.labels import MIN_LIFT
from othello_tui.features.openings import OPENING
from othello_tui.features.predicates import PREDICATE_NAMES, board_predicates
from othello_tui.game.corpus import write_corpus
from othello_tui.game.generator import generate_games
from othello_tui.game.rules import BLACK, Game
from othello_tui.game.squares import TOKEN_TO_SQUARE, parse_square
from othello_tui.model.weights import model_fingerprint

SETTINGS = BuildSettings(n_games=40, seed=3, top_k=8, batch_games=16)


@pytest.fixture(scope="module")
def cache_file(tiny_model, tiny_dictionaries, tmp_path_factory):
    s = SETTINGS
    calls = []
    path = build_cache(
        tiny_model, tiny_dictionaries, s.n_games, s.seed, s.top_k, tmp_path_factory.mktemp("cache") / "features.h5",
        progress=lambda *call: calls.append(call), batch_games=s.batch_games,
    )  # fmt: skip
    assert calls[-1] == ("panels", s.n_games, s.n_games) and ("games", 16, 40) in calls
    return path


@pytest.fixture(scope="module")
def reference(tiny_model, tiny_dictionaries):
    """Per module: activations [N, F] of every model token, and their global ids game*60+position,
    computed batch by batch exactly as the build does."""
    games = generate_games(SETTINGS.n_games, SETTINGS.seed)
    acts, ids = {m: [] for m in tiny_dictionaries}, []
    for start in range(0, len(games), SETTINGS.batch_games):
        tokens = games.tokens[start : start + SETTINGS.batch_games, :59]
        valid = tokens != 0
        with torch.inference_mode():
            _, cache = tiny_model.run_with_cache(torch.from_numpy(tokens.astype(np.int64)))
            for module, dictionary in tiny_dictionaries.items():
                acts[module].append(
                    dictionary.encode(cache[dictionary.cfg.hook_name][torch.from_numpy(valid)]).numpy()
                )
        ids.append(((start + np.arange(len(tokens)))[:, None] * 60 + np.arange(59))[valid])
    return {m: np.concatenate(a) for m, a in acts.items()}, np.concatenate(ids)


def first_openings(ids: np.ndarray) -> np.ndarray:
    """bool per token: not an opening position (< OPENING) whose moves an earlier token repeats."""
    tokens = generate_games(SETTINGS.n_games, SETTINGS.seed).tokens
    seen, keep = set(), []
    for game, position in (divmod(int(i), 60) for i in ids):
        prefix = tuple(tokens[game, : position + 1])
        keep.append(position >= OPENING or prefix not in seen)
        seen.add(prefix)
    return np.array(keep)


def test_top_examples_counts_and_histograms_equal_brute_force(cache_file, reference):
    cache = open_cache(cache_file)
    acts, ids = reference
    distinct = first_openings(ids)
    assert cache.n_tokens == len(ids) and not distinct.all()  # the 40 games share openings
    for module in cache.modules:
        for f in range(cache.n_features[module]):
            stats = cache.feature(f"{module}{f}")
            column = acts[module][:, f]
            fired = np.flatnonzero(column > 0)
            candidates = np.flatnonzero((column > 0) & distinct)  # repeated openings never twice
            best = candidates[np.lexsort((ids[candidates], -column[candidates]))][: SETTINGS.top_k]
            assert [(e.game, e.position) for e in stats.examples] == [divmod(int(i), 60) for i in ids[best]]
            assert [e.activation for e in stats.examples] == column[best].tolist()
            assert stats.fire_count == len(fired) == stats.histogram.sum()
            assert stats.mean_activation == pytest.approx(
                column[fired].astype(np.float64).mean() if len(fired) else 0.0
            )


def test_panels_equal_counts_from_replayed_games(cache_file):
    cache = open_cache(cache_file)
    for feature_id in ("L0A3", "L0M17", "L1A40", "L1M63"):
        stats = cache.feature(feature_id)
        expected = {name: np.zeros(64, int) for name in ("move", "legal", "flipped", "empty")}
        board, black, move_number = np.zeros(64), 0, np.zeros(60, int)
        for example in stats.examples:
            squares = TOKEN_TO_SQUARE[cache.game_tokens(example.game)[: example.position + 1]]
            move = Game.from_squares([int(s) for s in squares]).moves[-1]
            assert example.square == move.square
            expected["move"][move.square] += 1
            expected["legal"][list(move.legal_next)] += 1
            expected["flipped"][list(move.flipped)] += 1
            expected["empty"] += move.board == 0
            board += move.board * move.player
            black += move.player == BLACK
            move_number[example.position] += 1
        for name, counts in expected.items():
            assert np.array_equal(getattr(stats, name), counts.reshape(8, 8)), (feature_id, name)
        assert np.allclose(stats.board, (board / max(stats.n_examples, 1)).reshape(8, 8))
        assert stats.player_black == black and np.array_equal(stats.move_number, move_number)


def test_logit_effect_is_the_decoder_row_through_the_unembedding(cache_file, tiny_model, tiny_dictionaries):
    stats = open_cache(cache_file).feature("L1M5")
    effect = (tiny_dictionaries["L1M"].W_dec[5] @ tiny_model.unembed.W_U).detach().numpy()
    flat = stats.logit_effect.ravel()
    assert np.allclose(flat[TOKEN_TO_SQUARE[1:]], effect[1:], atol=1e-6)
    assert np.isnan(flat[[27, 28, 35, 36]]).all()


def test_predicate_f1_equals_brute_force(cache_file, reference):
    cache = open_cache(cache_file)
    acts, _ = reference
    games = generate_games(SETTINGS.n_games, SETTINGS.seed)
    predicates = board_predicates(games)[:, :59][games.tokens[:, :59] != 0]  # token order = ids order
    for module, name in (("L0A", "mine=c-4"), ("L1M", "flipped=d-2"), ("L1A", "legal=e-5")):
        fires = acts[module] > 0
        holds = predicates[:, PREDICATE_NAMES.index(name)]
        for negate, truth in ((False, holds), (True, ~holds)):
            tp = (fires & truth[:, None]).sum(0)
            expected = 2 * tp / np.maximum(fires.sum(0) + truth.sum(), 1)
            expected[tp / np.maximum(fires.sum(0), 1) < truth.mean() + MIN_LIFT] = 0  # uninformative
            assert np.allclose(cache.predicate_f1(module, name, negate), expected, atol=1e-6)
    with pytest.raises(ValueError, match="no predicate"):
        cache.predicate_f1("L0A", "mine=z-9")


def test_labels_agree_with_feature_stats(cache_file):
    cache = open_cache(cache_file)
    labels = cache.labels("L0A")
    assert len(labels) == cache.n_features["L0A"]
    for f, label in enumerate(labels):
        stats = cache.feature(f"L0A{f}")
        assert stats.label == label
        assert cache.label(f"L0A{f}") == (None if label is None else str(label))
        assert [c.f1 for c in stats.candidates[1:]] == sorted(
            (c.f1 for c in stats.candidates[1:]), reverse=True
        )
    summary = cache.label_summary()
    assert set(summary) == set(cache.modules)
    assert all(0 <= s.good <= s.labelled <= s.alive <= cache.n_features[m] for m, s in summary.items())


def test_feature_ids_are_checked(cache_file):
    cache = open_cache(cache_file)
    assert cache.parse(" l1m7 ") == ("L1M", 7)
    for bad, message in (("L9M1", "no module L9M"), ("L0A64", "0…63"), ("banana", "not a feature id")):
        with pytest.raises(FeatureIdError, match=message):
            cache.feature(bad)


def test_planted_flip_feature_gets_its_label_end_to_end(tiny_model, tmp_path):
    """A dictionary feature that fires exactly when c-2 is flipped, planted by replacing L0A's
    output with the indicator (the hook runs before the build's own caching hook)."""
    n_games, batch = 48, 16
    flipped_c2 = generate_games(n_games, 5).flipped_mask()[:, :59, parse_square("c-2")]
    starts = iter(range(0, n_games, batch))

    def plant(value):
        start = next(starts)
        planted = torch.zeros_like(value)
        planted[..., 0] = torch.from_numpy(flipped_c2[start : start + len(value)]).float()
        return planted

    cfg = DictionaryConfig("L0A", hook_name_of("L0A"), "standard", d_in=tiny_model.cfg.d_model, d_sae=2)
    dictionary = Dictionary(cfg)
    with torch.no_grad():
        dictionary.W_enc.zero_()
        dictionary.W_enc[0, 0] = dictionary.W_enc[1, 1] = 1.0  # feature 1 reads a dimension that stays 0
        dictionary.b_enc.fill_(-0.5)
    with tiny_model.hooks([("blocks.0.hook_attn_out", plant)]):
        path = build_cache(
            tiny_model, {"L0A": dictionary}, n_games, 5, 16, tmp_path / "planted.h5", batch_games=batch
        )
    cache = open_cache(path)
    stats = cache.feature("L0A0")
    assert stats.label is not None and stats.label.text == "flipped=c-2"
    assert (stats.label.precision, stats.label.recall, stats.label.f1) == (1.0, 1.0, 1.0)
    assert str(stats.label) == "flipped=c-2 (P 1.00, R 1.00)"
    assert stats.fire_count == flipped_c2[generate_games(n_games, 5).tokens[:, :59] != 0].sum()
    assert stats.n_examples == 16 and stats.flipped[2, 2] == 16
    dead = cache.feature("L0A1")
    assert dead.fire_count == 0 and dead.examples == [] and dead.label is None
    assert cache.label_summary()["L0A"].alive == 1 and cache.label_summary()["L0A"].good == 1


def test_identity_and_staleness(cache_file, tiny_model, tiny_dictionaries, tmp_path):
    model_digest, dictionaries_digest = model_fingerprint(tiny_model), dictionaries_hash(tiny_dictionaries)
    cache = open_cache(cache_file, model_digest, dictionaries_digest)
    assert cache.settings == SETTINGS and cache.model_fingerprint == model_digest
    with pytest.raises(StaleCacheError, match="other model weights"):
        open_cache(cache_file, expect_model="0" * 16)
    with pytest.raises(StaleCacheError, match="other dictionaries"):
        open_cache(cache_file, model_digest, "1" * 16)
    old = tmp_path / "old.h5"
    shutil.copy(cache_file, old)
    with h5py.File(old, "a") as f:
        f.attrs["format_version"] = 0
    with pytest.raises(StaleCacheError, match="format 0"):
        open_cache(old)
    # the name a build would give these weights and settings; find_cache looks for it by content
    named = cache_path(tmp_path, model_digest, dictionaries_digest, SETTINGS)
    assert (
        named.name.startswith("features-")
        and named.name != cache_path(tmp_path, "x", dictionaries_digest, SETTINGS).name
    )
    shutil.copy(cache_file, named)
    assert find_cache(tmp_path, model_digest, dictionaries_digest) == named
    assert find_cache(tmp_path, "0" * 16, dictionaries_digest) is None


def test_the_commands_hash_the_weights_only_when_a_cache_may_be_theirs(
    cache_file, tiny_model, tiny_dictionaries, tmp_path
):
    digests = WeightsDigests(tiny_model, tiny_dictionaries)
    cache, note = find_feature_cache(None, digests, tmp_path)
    assert cache is None and "cache build" in note
    assert "model" not in vars(digests) and "dictionaries" not in vars(digests)  # nothing hashed
    shutil.copy(cache_file, tmp_path / "features-any.h5")
    cache, note = find_feature_cache(None, digests, tmp_path)
    assert note is None and cache.path == tmp_path / "features-any.h5"
    assert (digests.model, digests.dictionaries) == (
        model_fingerprint(tiny_model),
        dictionaries_hash(tiny_dictionaries),
    )


def test_broken_files_are_never_trusted(cache_file, tmp_path):
    data = cache_file.read_bytes()
    truncated, text, foreign, missing_dataset, corrupt = (
        tmp_path / n for n in ("t.h5", "x.h5", "g.h5", "m.h5", "c.h5")
    )
    truncated.write_bytes(data[: len(data) // 2])
    text.write_text("not hdf5")
    write_corpus(foreign, 3, 0, show_progress=False)
    for path, message in (
        (truncated, "truncated"),
        (text, "not a readable HDF5"),
        (foreign, "HDF5 file but not a feature cache"),
        (tmp_path / "none.h5", "no feature cache"),
    ):
        with pytest.raises(CacheError, match=message) as error:
            open_cache(path)
        assert not isinstance(error.value, StaleCacheError)
        assert "delete" not in str(error.value)  # nothing says the project wrote it
    shutil.copy(cache_file, missing_dataset)
    with h5py.File(missing_dataset, "a") as f:
        del f["modules/L1A/details"]
        f.attrs["modules"] = '{"L0A": 64, "L1A": 64}'
    damaged_cache = open_cache(missing_dataset)  # modules are checked on first use, not all at open
    assert damaged_cache.feature("L0A1").index == 1
    with pytest.raises(CacheError, match="incomplete"):
        damaged_cache.feature("L1A1")
    with h5py.File(missing_dataset, "a") as f:
        f.attrs["modules"] = "[nonsense"
    with pytest.raises(CacheError, match="incomplete"):
        open_cache(missing_dataset)
    with h5py.File(cache_file, "r") as f:
        offset = f["modules/L0A/details"].id.get_chunk_info(0).byte_offset
    damaged = bytearray(data)
    damaged[offset + 50 : offset + 60] = bytes(10)
    corrupt.write_bytes(bytes(damaged))
    cache = open_cache(corrupt)  # the header is intact; the damage shows when the chunk is read
    with pytest.raises(CacheError, match="cannot be read"):
        cache.feature("L0A0")


@pytest.mark.parametrize("phase, error", [("games", KeyboardInterrupt), ("panels", RuntimeError)])
def test_interrupted_build_leaves_nothing(tiny_model, tiny_dictionaries, tmp_path, phase, error):
    def interrupt(at, done, total):
        if at == phase and done >= 16:
            raise error

    with pytest.raises(error):
        build_cache(
            tiny_model,
            tiny_dictionaries,
            40,
            0,
            4,
            tmp_path / "cache" / "f.h5",
            progress=interrupt,
            batch_games=8,
        )
    assert list((tmp_path / "cache").iterdir()) == []
