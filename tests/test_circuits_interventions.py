"""Interventions and the faithfulness evaluation: edits that must change nothing, ablations whose
frozen effect must equal the attribution, and the rank correlation."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from othello_tui.circuits.faithfulness import faithfulness, rank_average, spearman
from othello_tui.circuits.intervention import Edit, intervene, intervene_batch, parse_edit
from othello_tui.circuits.nodes import CircuitError, parse_target
from othello_tui.circuits.trace import GameTrace
from othello_tui.game.generator import generate_games

TOKENS = generate_games(1, 21).tokens[0, :59].astype(np.int64)


@pytest.fixture(scope="module")
def trace(tiny_model, tiny_dictionaries):
    return GameTrace(tiny_model, tiny_dictionaries, TOKENS)


@pytest.fixture(scope="module")
def trace64(tiny_model, tiny_dictionaries):
    dictionaries = {m: copy.deepcopy(d).double() for m, d in tiny_dictionaries.items()}
    return GameTrace(copy.deepcopy(tiny_model).double(), dictionaries, TOKENS)


def _top_features(trace, target, n):
    return [(node, value) for node, value in trace.contributions(target).top() if node.kind == "feature"][:n]


def test_setting_features_to_their_own_values_changes_nothing(trace):
    edits, watch = [], []
    for position in (3, 17, 40):
        for module in ("L0A", "L1M"):
            feature, value = trace.active_features(position, module)[0]
            edits.append(Edit(position, module, feature, value=value))
            watch.append(f"P{position + 1}{module}{trace.active_features(position + 1, module)[0][0]}")
    edits.append(Edit(20, "L0M", trace.active_features(20, "L0M")[1][0], scale=1.0))
    result = intervene(trace, edits, watch)
    assert torch.equal(result.logits_after_TV, result.logits_before_TV)
    assert all(before == after for before, after in result.features.values())


@pytest.mark.parametrize("precision, tolerance", [("f32", 1e-5), ("f64", 1e-10)])
def test_ablation_with_everything_frozen_moves_the_logit_by_minus_its_dla(precision, tolerance, request):
    trace = request.getfixturevalue({"f32": "trace", "f64": "trace64"}[precision])
    checked = 0
    for position, square in ((10, "c-4"), (33, "f-5"), (50, "b-1")):
        target = parse_target(f"logit:{square}", position)
        for node, dla in _top_features(trace, target, 5):
            ablation = [Edit(node.position, node.module, node.feature, value=0.0)]
            result = intervene(trace, ablation, freeze_ln=True, freeze_modules=True)
            change = float(result.delta_TV[position, target.token])
            assert change == pytest.approx(
                -dla, rel=tolerance, abs=tolerance * abs(trace.target_value(target))
            )
            checked += 1
    assert checked == 15


def test_frozen_layernorm_alone_is_exact_for_the_last_module(trace64):
    """Above the last MLP there is only the final LayerNorm: freezing its scale leaves DLA exact,
    and without freezing, the ablation changes the logit by a different amount."""
    target = parse_target("logit:e-5", 30)
    contributors = [
        (n, v) for n, v in trace64.contributions(target).top() if n.kind == "feature" and n.module == "L1M"
    ]
    assert contributors
    node, dla = contributors[0]
    edit = [Edit(node.position, node.module, node.feature, value=0.0)]
    frozen = float(intervene(trace64, edit, freeze_ln=True).delta_TV[30, target.token])
    unfrozen = float(intervene(trace64, edit).delta_TV[30, target.token])
    assert frozen == pytest.approx(-dla, rel=1e-10)
    assert abs(unfrozen - frozen) > 1e-6


def test_ablation_changes_only_its_own_and_later_positions(trace):
    feature, _ = trace.active_features(12, "L0M")[0]
    result = intervene(trace, [Edit(12, "L0M", feature, value=0.0)])
    assert torch.equal(result.delta_TV[:12], torch.zeros_like(result.delta_TV[:12]))
    assert result.delta_TV[12:].abs().max() > 0


def test_watched_features_report_the_rerun(trace):
    feature, value = trace.active_features(25, "L0M")[0]
    earlier = f"P24L0M{trace.active_features(24, 'L0M')[0][0]}"
    result = intervene(trace, [Edit(25, "L0M", feature, scale=2.0)], [f"P25L0M{feature}", earlier])
    # the fixture's encoder is the decoder's transpose with unit rows: h moves by exactly c
    assert result.features[f"P25L0M{feature}"] == pytest.approx((value, 2 * value), rel=1e-5)
    before, after = result.features[earlier]
    assert before == after


def test_an_edit_holds_the_other_features_of_its_module_output(trace):
    (feature, value), (other, other_value) = trace.active_features(25, "L0M")[:2]
    later = f"P25L1A{trace.active_features(25, 'L1A')[0][0]}"
    result = intervene(
        trace, [Edit(25, "L0M", feature, scale=0.5)], [f"P25L0M{feature}", f"P25L0M{other}", later]
    )
    assert result.features[f"P25L0M{feature}"] == pytest.approx((value, 0.5 * value))
    assert result.features[f"P25L0M{other}"] == (other_value, other_value)  # held, not re-encoded
    before, after = result.features[later]  # downstream: re-encoded from the rerun
    assert before != after


def test_a_batch_is_the_single_interventions_side_by_side(trace):
    edits = [Edit(5, "L0A", trace.active_features(5, "L0A")[i][0], value=0.0) for i in range(3)]
    logits_BTV, _ = intervene_batch(trace, [[]] + [[e] for e in edits])
    torch.testing.assert_close(logits_BTV[0], trace.logits_TV)
    for b, edit in enumerate(edits, start=1):
        torch.testing.assert_close(logits_BTV[b], intervene(trace, [edit]).logits_after_TV)


def test_parse_edit():
    assert parse_edit("P7L1M379=0") == Edit(7, "L1M", 379, value=0.0)
    assert parse_edit(" P12L0A5 * 0.5 ") == Edit(12, "L0A", 5, scale=0.5)
    assert parse_edit("P7L1M379=-1.5e-1").new_activation(2.0) == -0.15
    assert parse_edit("P7L1M379*3").new_activation(2.0) == 6.0
    for text in ("L1M379=0", "P7L1M379", "P7L1M379=x", "P7L1M379=1.2.3"):
        with pytest.raises(CircuitError):
            parse_edit(text)


def test_spearman_by_hand():
    assert rank_average(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert spearman(np.arange(6), np.arange(6) ** 3) == pytest.approx(1.0)
    assert spearman(np.arange(6), -np.arange(6)) == pytest.approx(-1.0)
    # ranks of y: 1, 2, 3.5, 5, 3.5 against 1…5: ρ = 8 / sqrt(10 · 9.5)
    assert spearman(np.array([1, 2, 3, 4, 5]), np.array([5, 6, 7, 8, 7])) == pytest.approx(8 / np.sqrt(95))
    assert np.isnan(spearman(np.arange(4), np.ones(4)))


def test_faithfulness_report(tiny_model, tiny_dictionaries):
    report = faithfulness(tiny_model, tiny_dictionaries, n_games=2, positions=3, top=4, seed=5)
    summary = report.summary()
    assert summary["targets"] == 6 and summary["ablations"] == 24 == len(report.dla)
    assert summary["spearman"]["frozen"] == pytest.approx(1.0)
    assert summary["max_abs_difference"]["frozen"] < 1e-5
    assert -1 <= summary["spearman"]["unfrozen"] <= 1
    assert summary["max_abs_difference"]["unfrozen"] > summary["max_abs_difference"]["frozen"]
