"""Feature statistics without a model: predicates, streaming top-k, label scores, histograms.

Every expected value is computed independently: predicates from the one-game rules, top-k by a
brute-force sort, label counts by direct numpy sums over the tokens.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from othello_tui.dictionary.sae import ActiveEntries
from othello_tui.features.accumulate import HISTOGRAM_EDGES, ModuleStatistics
from othello_tui.features.labels import (
    CONJUNCTION_GAIN,
    MIN_CONJUNCTION_SUPPORT,
    MIN_LIFT,
    LabelCounts,
    PredicateCounts,
    conjunction_counts,
    cooccurrence,
    label_text,
    score_labels,
)
from othello_tui.features.predicates import (
    N_PREDICATES,
    PLAYER_BLACK,
    PLAYER_WHITE,
    PREDICATE_NAMES,
    board_predicates,
    kind_columns,
)
from othello_tui.features.topk import StreamingTopK, pack, unpack
from othello_tui.game.generator import generate_games
from othello_tui.game.rules import BLACK, Game
from othello_tui.game.squares import parse_square


@pytest.fixture(scope="module")
def games():
    return generate_games(40, seed=7)


@pytest.fixture(scope="module")
def token_predicates(games):
    """bool [N, P] over the model's tokens (moves 1…59 that exist), in token order."""
    valid = games.tokens[:, :59] != 0
    return board_predicates(games)[:, :59][valid]


def test_predicate_names_and_layout():
    assert len(PREDICATE_NAMES) == N_PREDICATES == 11 * 64 + 2 + 60 + 8 + 6
    assert PREDICATE_NAMES[kind_columns("flipped").start + 18] == "flipped=c-2"
    assert PREDICATE_NAMES[PLAYER_BLACK] == "moved=black" and PREDICATE_NAMES[PLAYER_WHITE] == "moved=white"


def test_board_predicates_match_the_one_game_rules(games):
    predicates = board_predicates(games)
    for g in range(5):
        game = Game()
        for t, square in enumerate(games.squares[g]):
            if square < 0:
                break
            move = game.play(int(square))
            row = predicates[g, t]
            relative = move.board * move.player
            assert np.flatnonzero(row[kind_columns("move")]).tolist() == [square]
            assert np.flatnonzero(row[kind_columns("flipped")]).tolist() == list(move.flipped)
            assert np.flatnonzero(row[kind_columns("legal")]).tolist() == list(move.legal_next)
            assert np.array_equal(row[kind_columns("mine")], relative == 1)
            assert np.array_equal(row[kind_columns("theirs")], relative == -1)
            assert np.array_equal(row[kind_columns("empty")], relative == 0)
            assert row[PLAYER_BLACK] == (move.player == BLACK) and row[PLAYER_WHITE] == (move.player != BLACK)


def test_pack_orders_by_value_then_earliest_token():
    values = torch.tensor([0.5, 2.0, 2.0, 1e-30, 3e4])
    tokens = torch.tensor([7, 9, 3, 5, 2**32 - 1])
    keys = pack(values, tokens)
    assert torch.argsort(keys, descending=True).tolist() == [4, 2, 1, 0, 3]
    back_values, back_tokens = unpack(keys)
    assert torch.equal(back_values, values) and torch.equal(back_tokens, tokens)


def brute_force_top(feature, token, value, n_features, k):
    """Per feature: (values, tokens) of the k largest, earliest token first among equals."""
    out = []
    for f in range(n_features):
        mine = np.flatnonzero(feature == f)
        order = mine[np.lexsort((token[mine], -value[mine]))][:k]
        out.append(
            (
                np.pad(value[order], (0, k - len(order))),
                np.pad(token[order], (0, k - len(order)), constant_values=-1),
            )
        )
    return out


@pytest.mark.parametrize("chunk", [1, 7, 50, 10_000])
def test_streaming_topk_equals_brute_force_with_ties(chunk):
    rng = np.random.default_rng(chunk)
    F, K, n_tokens = 6, 5, 300
    acts = np.where(rng.random((n_tokens, F)) < 0.3, rng.integers(1, 6, (n_tokens, F)) / 4, 0.0).astype(
        np.float32
    )
    acts[:, 5] = 0
    acts[[10, 20], 5] = 1.0  # a feature that fires fewer than K times
    top = StreamingTopK(F, K)
    for start in range(0, n_tokens, chunk):
        block = torch.from_numpy(acts[start : start + chunk])
        position, feature = (block > 0).nonzero(as_tuple=True)
        shuffle = torch.from_numpy(rng.permutation(len(position)))  # entries may come in any order
        position, feature = position[shuffle], feature[shuffle]
        top.update(feature, position + start, block[position, feature])
    values, tokens = (x.numpy() for x in top.result())
    token_all, feature_all = np.nonzero(acts)
    expected = brute_force_top(feature_all, token_all, acts[token_all, feature_all], F, K)
    for f in range(F):
        assert np.array_equal(values[f], expected[f][0]) and np.array_equal(tokens[f], expected[f][1]), f


@pytest.mark.parametrize("shape", [(1000, 13, 21), (1001, 1, 386), (5, 2, 1), (64, 1, 1)])
def test_cooccurrence_counts_pairs_exactly(shape):
    n, x, y = shape
    rng = np.random.default_rng(0)
    a, b = rng.random((n, x)) < 0.4, rng.random((n, y)) < 0.1
    counts = cooccurrence(torch.from_numpy(a).view(torch.int8), torch.from_numpy(b).view(torch.int8))
    assert counts.dtype == torch.int64
    assert np.array_equal(counts.numpy(), a.astype(int).T @ b.astype(int))


def label_counts_for(fires_NF: np.ndarray, predicates_NP: np.ndarray, chunk: int):
    """Stream ``fires`` against ``predicates`` through the label counters, ``chunk`` tokens at a time."""
    predicates, labels = PredicateCounts(), LabelCounts(fires_NF.shape[1])
    for start in range(0, len(fires_NF), chunk):
        p = torch.from_numpy(predicates_NP[start : start + chunk]).view(torch.int8)
        f = torch.from_numpy(fires_NF[start : start + chunk]).view(torch.int8)
        predicates.update(p)
        token, feature = f.nonzero(as_tuple=True)
        labels.update(f, feature, token, p, predicates)
    return labels, predicates


def triple_counts(labels, token_predicates):
    """The second pass of a build: triple-conjunction predicate counts over all tokens."""
    return conjunction_counts(
        torch.from_numpy(token_predicates).view(torch.int8), labels.anchor_F, labels.partner_F
    )


def test_planted_flip_feature_is_labelled_flipped_with_f1_one(token_predicates):
    c2 = parse_square("c-2")
    flipped_c2 = token_predicates[:, kind_columns("flipped").start + c2]
    assert 0 < flipped_c2.sum() < len(flipped_c2)
    noise = np.random.default_rng(1).random(len(flipped_c2)) < 0.2
    fires = np.stack([flipped_c2, noise], axis=1)
    labels, predicates = label_counts_for(fires, token_predicates, chunk=97)
    candidates, scores = score_labels(labels, predicates)
    assert label_text(*candidates[0, 0]) == "flipped=c-2"
    assert scores[0, 0].tolist() == [1.0, 1.0, 1.0]
    assert scores[1, 0, 2] < 0.5  # a random feature gets no good label


def test_label_scores_equal_direct_counts(token_predicates):
    rng = np.random.default_rng(2)
    mine_e4 = token_predicates[:, kind_columns("mine").start + parse_square("e-4")]
    fires = np.stack([mine_e4 & (rng.random(len(mine_e4)) < 0.7), rng.random(len(mine_e4)) < 0.05], axis=1)
    labels, predicates = label_counts_for(fires, token_predicates, chunk=64)
    assert np.array_equal(labels.tp_FP.numpy(), fires.astype(int).T @ token_predicates.astype(int))
    assert np.array_equal(predicates.count_P.numpy(), token_predicates.sum(0))
    candidates, scores = score_labels(labels, predicates, triple_counts(labels, token_predicates))
    for f in range(2):
        for candidate, (precision, recall, f1) in zip(candidates[f], scores[f], strict=True):
            holds = token_predicates[:, [p for p in candidate if p >= 0]].all(1)
            tp = (fires[:, f] & holds).sum()
            if tp / fires[:, f].sum() < holds.mean() + MIN_LIFT:  # says nothing: scored 0, never a label
                assert precision == recall == f1 == 0
                continue
            assert precision == pytest.approx(tp / fires[:, f].sum(), rel=1e-6)
            assert recall == pytest.approx(tp / holds.sum(), rel=1e-6)
            assert f1 == pytest.approx(2 * tp / (fires[:, f].sum() + holds.sum()), rel=1e-6)
    assert label_text(*candidates[0, 0]) == "mine=e-4"
    assert scores[0, 0, 0] == 1.0 and scores[0, 0, 1] == pytest.approx(0.7, abs=0.05)


def test_planted_conjunction_beats_its_parts(token_predicates):
    move_b4 = token_predicates[:, kind_columns("move").start + parse_square("b-4")]
    flipped_c4 = token_predicates[:, kind_columns("flipped").start + parse_square("c-4")]
    both = move_b4 & flipped_c4
    assert both.sum() > 0
    labels, predicates = label_counts_for(both[:, None], token_predicates, chunk=1000)
    candidates, scores = score_labels(labels, predicates)
    single_f1 = scores[0, 1:, 2].max()
    assert label_text(*candidates[0, 0]) == "move=b-4 & flipped=c-4"
    assert scores[0, 0, 2] == 1.0 and scores[0, 0, 2] >= single_f1 + CONJUNCTION_GAIN


def test_a_feature_firing_everywhere_gets_no_label(token_predicates):
    """Always firing, it "predicts" a usually-empty corner with F1 ≈ 2p/(1+p) ≈ 0.8, but says nothing."""
    fires = np.ones((len(token_predicates), 1), bool)
    labels, predicates = label_counts_for(fires, token_predicates, chunk=64)
    _, scores = score_labels(labels, predicates)
    assert scores[0, :, 2].max() == 0  # every candidate uninformative: F1 0, below any floor


def test_module_statistics_sums_and_histogram(token_predicates):
    rng = np.random.default_rng(3)
    N, F = len(token_predicates), 4
    acts = np.where(rng.random((N, F)) < 0.3, 10 ** rng.uniform(-4, 4, (N, F)), 0).astype(np.float32)
    stats, predicates = ModuleStatistics(F, top_k=3), PredicateCounts()
    for start in range(0, N, 100):
        p = torch.from_numpy(token_predicates[start : start + 100]).view(torch.int8)
        predicates.update(p)
        stats.update(
            ActiveEntries.of(torch.from_numpy(acts[start : start + 100])),
            torch.arange(start, start + len(p)),
            p,
            predicates,
        )
    assert np.array_equal(stats.fire_count_F.numpy(), (acts > 0).sum(0))
    assert np.allclose(stats.activation_sum_F.numpy(), acts.astype(np.float64).sum(0))
    for f in range(F):
        values = np.clip(acts[acts[:, f] > 0, f], HISTOGRAM_EDGES[0], HISTOGRAM_EDGES[-1] * 0.999)
        assert np.array_equal(stats.histogram_FB[f].numpy(), np.histogram(values, HISTOGRAM_EDGES)[0])


def test_planted_three_way_conjunction_is_found(token_predicates):
    """Fires exactly where three broad predicates meet: the greedy beam must find all three."""
    names = ("flips=down", "moved=black", "mine=e-4")
    columns = [PREDICATE_NAMES.index(name) for name in names]
    planted = token_predicates[:, columns].all(1)
    assert 20 < planted.sum() < 0.5 * min(token_predicates[:, columns].sum(0))  # no pair is enough
    labels, predicates = label_counts_for(planted[:, None], token_predicates, chunk=1000)
    candidates, scores = score_labels(labels, predicates, triple_counts(labels, token_predicates))
    assert label_text(*candidates[0, 0]) == " & ".join(sorted(names, key=PREDICATE_NAMES.index))
    assert scores[0, 0].tolist() == [1.0, 1.0, 1.0]
    pairs = [s for c, s in zip(candidates[0], scores[0], strict=True) if (c >= 0).sum() == 2]
    assert all(s[2] <= 1.0 - CONJUNCTION_GAIN for s in pairs)


def test_an_uninformative_conjunction_is_rejected(token_predicates):
    """A feature that is ``mine=e-4`` plus noise: adding a third predicate that always holds with
    the first two (or says nothing) must not become the label."""
    rng = np.random.default_rng(5)
    mine_e4 = token_predicates[:, PREDICATE_NAMES.index("mine=e-4")]
    fires = mine_e4 & (rng.random(len(mine_e4)) < 0.9)
    labels, predicates = label_counts_for(fires[:, None], token_predicates, chunk=64)
    candidates, scores = score_labels(labels, predicates, triple_counts(labels, token_predicates))
    assert label_text(*candidates[0, 0]) == "mine=e-4"
    for candidate, score in zip(candidates[0], scores[0], strict=True):
        held = token_predicates[:, [p for p in candidate if p >= 0]].all(1)
        if (candidate >= 0).sum() > 1 and score[2] > 0:  # a scored conjunction is informative…
            assert score[0] >= held.mean() + MIN_LIFT
            # …and no conjunction is the label unless it beats the single by the gain
            assert score[2] < scores[0, 0, 2] + CONJUNCTION_GAIN


def test_a_conjunction_needs_support(token_predicates):
    """On a handful of firing tokens some conjunction always fits: below the support floor none is
    offered, however high its F1."""
    names = ("flips=down", "moved=black", "mine=e-4")
    planted = token_predicates[:, [PREDICATE_NAMES.index(name) for name in names]].all(1)
    rare = planted & (np.cumsum(planted) <= MIN_CONJUNCTION_SUPPORT - 1)
    labels, predicates = label_counts_for(rare[:, None], token_predicates, chunk=1000)
    candidates, scores = score_labels(labels, predicates, triple_counts(labels, token_predicates))
    for candidate, score in zip(candidates[0], scores[0], strict=True):
        if (candidate >= 0).sum() > 1:
            assert score[2] == 0
