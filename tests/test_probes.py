"""Probe labels against the plain rules, the probe maths on hand-set weights, fitting on a planted
synthetic residual stream, and probe files."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor

from othello_tui.dictionary.sae import Dictionary, DictionaryConfig
from othello_tui.game.generator import GameBatch, generate_games
from othello_tui.game.rules import Game
from othello_tui.game.squares import CENTRE_SQUARES, parse_square
from othello_tui.model.weights import WeightsError, model_fingerprint
from othello_tui.probes.alignment import ProbeAligner, rediscovery_counts
from othello_tui.probes.evaluate import AccuracyCounter
from othello_tui.probes.families import (
    CORNERS,
    FAMILIES,
    FAMILY,
    probe_labels,
    probe_sites,
    site_label,
    site_of_module,
    valid_positions,
)
from othello_tui.probes.io import load_probes, save_probes
from othello_tui.probes.linear import LinearProbes
from othello_tui.probes.train import ProbeBatch, ProbeTrainConfig, fit_probes, lr_at


def test_labels_match_a_replay_by_the_plain_rules():
    games = generate_games(20, seed=5)
    labels, valid = probe_labels(games), valid_positions(games)
    names = {f.name: f.classes for f in FAMILIES}
    for k in range(len(games)):
        game = Game.from_squares([int(s) for s in games.squares[k, : games.lengths[k]]])
        assert valid[k].sum() == min(59, len(game.moves))
        for i, move in enumerate(game.moves[:59]):  # position i holds move i+1
            for q in range(64):
                disc = move.board[q]
                mine = "empty" if disc == 0 else "mine" if disc == move.player else "theirs"
                colour = "empty" if disc == 0 else "black" if disc == 1 else "white"
                assert names["mine_theirs"][labels["mine_theirs"][k, i, q]] == mine
                assert names["colour"][labels["colour"][k, i, q]] == colour
                assert labels["flipped"][k, i, q] == (q in move.flipped)
                assert labels["legal"][k, i, q] == (q in move.legal_next)


def test_constant_squares_are_exactly_the_documented_ones():
    games = generate_games(1000, seed=6)
    labels, valid = probe_labels(games), valid_positions(games)
    for family in FAMILIES:
        values = labels[family.name][valid]  # [N, 64]
        constant = {q for q in range(64) if (values[:, q] == values[0, q]).all()}
        assert constant == set(family.constant_squares), family.name
    assert set(FAMILY["flipped"].constant_squares) == set(CORNERS)
    assert set(FAMILY["legal"].constant_squares) == set(CENTRE_SQUARES)
    # centre squares are never empty but are both mine and theirs: a real two-way problem
    centre = labels["mine_theirs"][valid][:, list(CENTRE_SQUARES)]
    assert set(np.unique(centre)) == {0, 1}


def test_sites_and_the_modules_that_write_into_them():
    assert probe_sites(2) == [
        "blocks.0.hook_resid_pre",
        "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_post",
    ]
    assert [site_label(s) for s in probe_sites(2)] == ["embed", "after block 0", "after block 1"]
    assert site_of_module("L0A") == site_of_module("L0M") == "blocks.0.hook_resid_post"
    assert site_of_module("L5M") == "blocks.5.hook_resid_post"


def random_probes(sites=("a", "b"), d_model=5, seed=0) -> LinearProbes:
    probes = LinearProbes(list(sites), d_model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for value in probes.parameters():
            value.copy_(torch.randn(value.shape, generator=generator))
    return probes


def test_logits_are_x_dot_W_plus_b_per_site_and_square():
    probes = random_probes()
    x_NSD = torch.randn(4, 2, 5)
    logits = probes(x_NSD)
    assert logits["mine_theirs"].shape == (4, 2, 64, 3) and logits["legal"].shape == (4, 2, 64)
    n, s, q = 3, 1, parse_square("c-4")
    W, b = probes.W["mine_theirs"], probes.b["mine_theirs"]
    for c in range(3):
        expected = sum(x_NSD[n, s, d] * W[s, d, q, c] for d in range(5)) + b[s, q, c]
        torch.testing.assert_close(logits["mine_theirs"][n, s, q, c], expected)
    expected = x_NSD[n, s] @ probes.W["flipped"][s, :, q] + probes.b["flipped"][s, q]
    torch.testing.assert_close(logits["flipped"][n, s, q], expected)


def test_predictions_are_argmax_and_positive_logit():
    probes = LinearProbes(["a"], 1)
    with torch.no_grad():
        probes.W["colour"][0, 0, :, 2] = 1.0  # empty wins for x > 0
        probes.b["colour"][0, :, 0] = 0.5  # black wins for x < 0.5 … x > 0 means empty wins only above 0.5
        probes.W["legal"][0, 0] = 1.0
        probes.b["legal"][0] = -0.25
    predicted = probes.predict(probes(torch.tensor([[[-1.0]], [[0.2]], [[1.0]]])))
    assert predicted["colour"][:, 0, 7].tolist() == [0, 0, 2]
    assert predicted["legal"][:, 0, 7].tolist() == [0, 0, 1]


def test_folding_the_standardisation_gives_the_same_logits():
    probes = random_probes()
    x_NSD = torch.randn(6, 2, 5) * 3 + 1
    mean_SD, scale_S = torch.randn(2, 5), torch.tensor([2.0, 0.5])
    before = probes((x_NSD - mean_SD) / scale_S[:, None])
    probes.fold_input_affine(mean_SD, scale_S)
    after = probes(x_NSD)
    for name in before:
        torch.testing.assert_close(after[name], before[name], rtol=1e-5, atol=1e-5)


def test_prior_biases_make_the_untrained_probes_the_majority_guess():
    probes = LinearProbes(["a"], 3)
    labels = {
        "mine_theirs": torch.tensor([[0] * 64, [0] * 64, [2] * 64]),
        "colour": torch.tensor([[1] * 64, [2] * 64, [1] * 64]),
        "flipped": torch.tensor([[1] * 64, [0] * 64, [0] * 64]),
        "legal": torch.tensor([[1] * 64, [1] * 64, [0] * 64]),
    }
    probes.set_prior_biases(labels)
    logits = probes(torch.zeros(1, 1, 3))
    torch.testing.assert_close(
        logits["mine_theirs"].softmax(-1)[0, 0, 0], torch.tensor([2 / 3, 1e-3, 1 / 3]).log().softmax(0)
    )
    torch.testing.assert_close(logits["flipped"].sigmoid()[0, 0, 5], torch.tensor(1 / 3))
    predicted = probes.predict(logits)
    assert predicted["mine_theirs"].unique().tolist() == [0]
    assert predicted["colour"].unique().tolist() == [1]
    assert predicted["legal"].unique().tolist() == [1]


def test_learning_rate_decays_by_a_cosine_to_its_floor():
    cfg = ProbeTrainConfig(lr=0.01, final_lr_frac=0.1)
    assert lr_at(0.0, cfg) == pytest.approx(0.01)
    assert lr_at(0.5, cfg) == pytest.approx(0.0055)
    assert lr_at(1.0, cfg) == lr_at(2.0, cfg) == pytest.approx(0.001)


def test_training_seeds_stay_below_the_evaluation_seeds():
    with pytest.raises(ValueError, match="seeds"):
        ProbeTrainConfig(seed=10**9)


# A synthetic residual stream with planted, linearly readable board features (no model). Two
# sites, D = 192, rotated by a random orthogonal matrix and shifted/scaled differently per site (the
# probe training standardises and folds that back):
# - site 0 (blocks.0.hook_resid_pre): for square q, coordinates (2q, 2q+1) are (+1, 0) mine,
#   (−1, 0) theirs, (0, 1) empty; coordinate 128+q is ±1 for flipped / not flipped;
# - site 1 (blocks.0.hook_resid_post): the same with black / white and legal.
# So ROTATION[:, 2q] at site 1 is exactly the direction "q black − q white" a probe should find,
# and ROTATION[:, 128+q] the direction "q legal".

D = 192
PLANTED_SITES = probe_sites(1)
ROTATION = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(42)))[0]
OFFSET_SD = torch.randn(2, D, generator=torch.Generator().manual_seed(43))
SCALE_S = torch.tensor([1.0, 10.0])
NOISE = 0.05


@dataclass
class Stream:
    x_NSD: Tensor
    labels: dict[str, Tensor]


def _encode(three_way_NQ: np.ndarray, binary_NQ: np.ndarray) -> np.ndarray:
    x = np.zeros((len(three_way_NQ), D), np.float32)
    x[:, 0:128:2] = np.select([three_way_NQ == 0, three_way_NQ == 1], [1.0, -1.0], 0.0)
    x[:, 1:128:2] = three_way_NQ == 2
    x[:, 128:] = 2.0 * binary_NQ - 1.0
    return x


def planted_stream(games: GameBatch) -> Stream:
    valid = valid_positions(games)
    labels = {name: value[valid] for name, value in probe_labels(games).items()}
    site0 = _encode(labels["mine_theirs"], labels["flipped"])
    site1 = _encode(labels["colour"], labels["legal"])
    x_NSD = torch.from_numpy(np.stack([site0, site1], axis=1))
    x_NSD = x_NSD + NOISE * torch.randn(x_NSD.shape, generator=torch.Generator().manual_seed(len(games)))
    x_NSD = (x_NSD @ ROTATION.T) * SCALE_S[:, None] + OFFSET_SD
    return Stream(x_NSD, {name: torch.from_numpy(value) for name, value in labels.items()})


@pytest.fixture(scope="module")
def planted():
    """Probes fitted on the planted stream (see above) and held-out planted tokens."""
    torch.manual_seed(0)
    train = planted_stream(generate_games(300, seed=11))
    test = planted_stream(generate_games(100, seed=12))
    probes = LinearProbes(PLANTED_SITES, train.x_NSD.shape[-1])

    def batches():
        generator = torch.Generator().manual_seed(1)
        while True:  # epochs over the training tokens, 100 games' worth per batch
            order = torch.randperm(len(train.x_NSD), generator=generator)
            for index in order.split(len(order) // 3):
                yield ProbeBatch(train.x_NSD[index], {k: v[index] for k, v in train.labels.items()}, 100)

    cfg = ProbeTrainConfig(games=3000)  # default batch and learning rate
    counters = fit_probes(probes, batches(), cfg)
    assert counters["games"] == 3000
    counter = AccuracyCounter(probes)
    counter.add(test.x_NSD, test.labels)
    return probes, counter.result()


def test_probes_read_planted_features_almost_perfectly_and_only_where_planted(planted):
    _, accuracy = planted
    # site 0 carries mine/theirs/empty and flipped; site 1 colour and legal (see above)
    for site, family in ((0, "mine_theirs"), (0, "flipped"), (1, "colour"), (1, "legal")):
        assert accuracy.mean(family)[site] > 0.995, (site, family)
        assert accuracy.worst(family)[site][1] > 0.97, (site, family)
    for site, family in ((1, "mine_theirs"), (0, "colour")):
        assert accuracy.mean(family)[site] < 0.9, (site, family)  # not linearly there


def test_alignment_finds_the_planted_dictionary_feature(planted):
    probes, _ = planted
    c4, e2 = parse_square("c-4"), parse_square("e-2")
    dictionary = Dictionary(DictionaryConfig("L0M", "blocks.0.hook_mlp_out", "topk", d_in=D, d_sae=32, k=4))
    dictionary.reset_parameters(torch.Generator().manual_seed(3))
    with torch.no_grad():
        dictionary.W_dec[5] = ROTATION[:, 2 * c4]  # writes "c-4 black"
        dictionary.W_dec[9] = -ROTATION[:, 128 + e2]  # writes "e-2 not legal"
    aligner = ProbeAligner(probes, {"L0M": dictionary})
    best = {a.direction.name: a.best for a in aligner.align()}
    assert best["c-4 black"].feature == "L0M5" and best["c-4 black"].cosine > 0.9
    assert best["e-2 legal"].feature == "L0M9" and best["e-2 legal"].cosine < -0.9
    assert aligner.for_feature("L0M5")[0].probe == "c-4 black"
    assert aligner.for_feature("L0M9")[0].reading == "e-2 not legal"
    counts = rediscovery_counts(aligner.align())["L0M"]
    assert counts["black"][0] >= 1 and counts["legal"][0] >= 1


def test_accuracy_summary_counts_squares_as_documented():
    probes = LinearProbes(["a"], 1)  # all-zero: mine for 3-way families, "no" for binary ones
    labels = {
        "mine_theirs": torch.zeros(4, 64, dtype=torch.long),
        "colour": torch.tensor([[0] * 64, [1] * 64, [0] * 64, [2] * 64]),
        "flipped": torch.zeros(4, 64, dtype=torch.long),
        "legal": torch.zeros(4, 64, dtype=torch.long),
    }
    labels["mine_theirs"][:3, parse_square("b-6")] = 1  # wrong 3 of 4 times on b-6
    labels["legal"][:, parse_square("d-3")] = 1  # a centre square: never counted
    labels["legal"][0, parse_square("a-1")] = 1
    counter = AccuracyCounter(probes)
    counter.add(torch.zeros(4, 1, 1), labels)
    accuracy = counter.result()
    assert accuracy.worst("mine_theirs") == [("b-6", 0.25)]
    assert accuracy.mean("mine_theirs")[0] == pytest.approx((63 + 0.25) / 64)
    assert accuracy.mean("colour")[0] == pytest.approx(0.5)
    assert accuracy.worst("legal") == [("a-1", 0.75)]
    assert accuracy.mean("legal")[0] == pytest.approx((59 + 0.75) / 60)
    assert accuracy.baseline("legal") == pytest.approx((59 + 0.75) / 60)
    summary = accuracy.to_dict()["families"]["legal"]["layers"][0]
    assert summary["per_square"][parse_square("d-3")] is None and summary["worst_square"] == "a-1"


def test_probe_files_round_trip_exactly(tmp_path):
    probes = random_probes(probe_sites(1), 4)
    save_probes(probes, tmp_path, {"model_fingerprint": "abc", "metrics": {"x": 1}})
    loaded, meta = load_probes(tmp_path)
    assert loaded.sites == probes.sites and meta["metrics"] == {"x": 1}
    for key, value in probes.tensors().items():
        assert torch.equal(loaded.tensors()[key], value), key
    assert meta["shapes"]["mine_theirs.W"] == [2, 4, 64, 3] and meta["shapes"]["legal.b"] == [2, 64]
    again, _ = load_probes(tmp_path / "probes.safetensors")  # the file path works too
    assert torch.equal(again.W["colour"], probes.W["colour"])


def test_missing_truncated_and_mismatched_files_are_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="no probes .* train them with"):
        load_probes(tmp_path)
    probes = random_probes(probe_sites(1), 4)
    save_probes(probes, tmp_path)
    path = tmp_path / "probes.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_probes(tmp_path)
    tensors = {k: v.detach().clone() for k, v in probes.tensors().items()}
    tensors["flipped.W"] = tensors["flipped.W"][:, :3].contiguous()
    del tensors["legal.b"]
    save_file(tensors, path)
    with pytest.raises(
        WeightsError, match=r"flipped.W \(2, 3, 64\) \(expected \(2, 4, 64\)\); legal.b missing"
    ):
        load_probes(tmp_path)
    meta = json.loads((tmp_path / "probes.json").read_text())
    meta["families"]["colour"]["classes"] = ["white", "black", "empty"]
    (tmp_path / "probes.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="another format"):
        load_probes(tmp_path)


def test_probes_for_another_model_are_rejected(tmp_path, tiny_model):
    right = random_probes(probe_sites(tiny_model.cfg.n_layers), tiny_model.cfg.d_model)
    save_probes(right, tmp_path / "ok", {"model_fingerprint": model_fingerprint(tiny_model)})
    load_probes(tmp_path / "ok", tiny_model)
    save_probes(right, tmp_path / "other", {"model_fingerprint": "0123456789abcdef"})
    with pytest.raises(WeightsError, match="trained for another model"):
        load_probes(tmp_path / "other", tiny_model)
    wrong = random_probes(probe_sites(tiny_model.cfg.n_layers + 1), tiny_model.cfg.d_model)
    save_probes(wrong, tmp_path / "deeper", {"model_fingerprint": model_fingerprint(tiny_model)})
    with pytest.raises(WeightsError, match="does not fit the model"):
        load_probes(tmp_path / "deeper", tiny_model)
