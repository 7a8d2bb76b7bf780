"""Residual-stream dictionaries in circuits (DESIGN.md §2, §3.9): ``feature:L1R5`` targets are the
feature's pre-activation on the residual after block l, exactly decomposed over the nodes at that
position below it; the dictionaries are readouts, never nodes of the decomposition."""

from __future__ import annotations

import pytest

from othello_tui.circuits.nodes import CircuitError, Target, parse_feature_node, parse_target
from othello_tui.circuits.trace import GameTrace
from othello_tui.game.generator import generate_games
from othello_tui.game.squares import tokens_of


@pytest.fixture(scope="module")
def squares():
    return [int(s) for s in generate_games(1, seed=5).squares[0] if s >= 0][:30]


@pytest.fixture(scope="module")
def trace(tiny_model, tiny_dictionaries, tiny_residual, squares):
    return GameTrace(tiny_model, {**tiny_dictionaries, **tiny_residual}, tokens_of(squares))


def test_residual_feature_ids_parse():
    assert parse_target("feature:L3R512", 7) == Target("feature", 7, module="L3R", feature=512)
    assert parse_target("feature:L3R512", 7).id == "P7L3R512"
    assert parse_feature_node("P7L3R512") == (7, "L3R", 512)
    with pytest.raises(CircuitError):
        parse_target("feature:L3X512", 7)


def test_residual_dictionaries_never_enter_the_decomposition(trace, tiny_model, tiny_dictionaries, squares):
    plain = GameTrace(tiny_model, tiny_dictionaries, tokens_of(squares))
    assert set(trace.dictionaries) == set(tiny_dictionaries) and set(trace.residual) == {"L0R", "L1R"}
    assert len(trace.decomposition.vectors_ND) == len(plain.decomposition.vectors_ND)
    assert (trace.decomposition.vectors_ND == plain.decomposition.vectors_ND).all()
    assert not any(
        trace.decomposition.node(r).module == "L1R" for r in range(len(trace.decomposition.vectors_ND))
    )


@pytest.mark.parametrize("module", ["L0R", "L1R"])
def test_value_is_the_pre_activation_on_the_cached_residual_and_contributions_sum_to_it(
    trace, tiny_model, tiny_residual, module
):
    """Independent: run the model once more, read blocks.l.hook_resid_post, apply the encoder."""
    dictionary = tiny_residual[module]
    hook = f"blocks.{module[1]}.hook_resid_post"
    _, cache = tiny_model.run_with_cache(trace.tokens_T[None], [hook])
    for position in (0, 12, 29):
        r_D = cache[hook][0, position]
        for feature in (0, 7, 47):
            h = (r_D - dictionary.b_dec) @ dictionary.W_enc[:, feature] + dictionary.b_enc[feature]
            expected = float(h.detach())
            target = Target("feature", position, module=module, feature=feature)
            value = trace.target_value(target)
            assert value == pytest.approx(expected, rel=1e-5, abs=1e-6)
            attribution = trace.contributions(target)
            assert abs(attribution.sum() - value) <= 1e-5 * max(1.0, abs(value))


def test_contributors_are_the_nodes_at_the_position_up_to_the_layer_and_the_bias(trace):
    attribution = trace.contributions(Target("feature", 9, module="L0R", feature=3))
    nodes = [attribution.node_at(n) for n in range(len(attribution.values_N))]
    assert {node.position for node in nodes} == {9}
    assert {node.module for node in nodes if node.module} == {"L0A", "L0M"}
    assert nodes[0].id == "P9embed" and nodes[-1].id == "P9L0R.b_enc"
    top = trace.contributions(Target("feature", 9, module="L1R", feature=3))
    assert {top.node_at(n).module for n in range(len(top.values_N))} >= {"L0A", "L0M", "L1A", "L1M"}


def test_a_residual_tree_expands_module_features_below_it(trace):
    expansion = trace.expand(Target("feature", 20, module="L1R", feature=5), depth=2, top=None)
    assert expansion.total == pytest.approx(expansion.value, rel=1e-5, abs=1e-5)
    expanded = [b for b in expansion.branches if b.expansion is not None]
    assert expanded and all(b.expansion.target.module in ("L0A", "L0M", "L1A", "L1M") for b in expanded)


def test_residual_features_have_activations_but_are_no_nodes(trace, tiny_residual):
    active = trace.active_features(12, "L1R")
    assert len(active) == tiny_residual["L1R"].cfg.k
    feature, value = active[0]
    assert trace.activation(12, "L1R", feature) == pytest.approx(value)
    assert value == pytest.approx(float(trace.pre_activation(12, "L1R", feature)))
    with pytest.raises(CircuitError, match="readout, not a node"):
        trace.feature_node(12, "L1R", feature)


def test_clear_errors_for_missing_or_foreign_residual_dictionaries(
    tiny_model, tiny_dictionaries, trace, squares
):
    plain = GameTrace(tiny_model, tiny_dictionaries, tokens_of(squares))
    with pytest.raises(CircuitError, match="no residual-stream dictionary loaded for L1R"):
        plain.target_value(Target("feature", 3, module="L1R", feature=0))
    with pytest.raises(CircuitError, match="2-layer model"):
        trace.target_value(Target("feature", 3, module="L5R", feature=0))
    with pytest.raises(CircuitError, match="features 0…47"):
        trace.target_value(Target("feature", 3, module="L1R", feature=48))


def test_trace_command_explains_a_residual_feature(
    residual_weights_dir, tiny_model, tiny_dictionaries, tiny_residual
):
    """`trace --target feature:L1R5` reads WEIGHTS/residual; its JSON contributions sum to the value."""
    import json

    from click.testing import CliRunner

    from othello_tui.cli import main
    from othello_tui.game.squares import square_name

    squares = [int(s) for s in generate_games(1, seed=3).squares[0][:20]]
    moves = " ".join(square_name(s) for s in squares)
    args = ["trace", "--moves", moves, "--pos", "12", "--target", "feature:L1R5", "--top", "100", "--json"]
    result = CliRunner().invoke(main, [*args, "--weights", str(residual_weights_dir)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    trace = GameTrace(tiny_model, {**tiny_dictionaries, **tiny_residual}, tokens_of(squares))
    value = trace.target_value(Target("feature", 12, module="L1R", feature=5))
    assert data["target"]["id"] == "P12L1R5"
    assert data["target"]["value"] == pytest.approx(value, rel=1e-5, abs=1e-6)
    assert data["sum"] == pytest.approx(value, rel=1e-5, abs=1e-5)
    shown = sum(c["value"] for c in data["contributions"]) + data["rest"]
    assert shown == pytest.approx(value, rel=1e-4, abs=1e-5)
    assert "P12L1R.b_enc" in {c["node"] for c in data["contributions"]}
    missing = CliRunner().invoke(main, [*args[:-1], "--weights", str(residual_weights_dir.parent)])
    assert missing.exit_code != 0


def test_residual_targets_are_exact_on_the_shipped_weights():
    """The shipped model with its module and residual dictionaries (float32): every residual
    target's contributions sum to its value, and the value is the encoder on resid_post."""
    import numpy as np
    import torch

    from othello_tui.dictionary.io import load_dictionaries, load_residual
    from othello_tui.model.weights import WEIGHTS_DIR, load_model

    if not (WEIGHTS_DIR / "residual").is_dir() or not (WEIGHTS_DIR / "dictionaries").is_dir():
        pytest.skip("no shipped residual dictionaries in weights/ yet")
    model, _ = load_model(WEIGHTS_DIR)
    residual = load_residual(WEIGHTS_DIR, model)
    dictionaries = {**load_dictionaries(WEIGHTS_DIR / "dictionaries", model), **residual}
    rng = np.random.default_rng(3)
    games = generate_games(2, seed=21)
    for tokens, length in zip(games.tokens, games.lengths, strict=True):
        trace = GameTrace(model, dictionaries, tokens[: min(int(length), 59)].astype(np.int64))
        for module, dictionary in residual.items():
            position = int(rng.integers(trace.n_positions))
            r_D = trace.cache[f"blocks.{module[1]}.hook_resid_post"][position]
            for feature in rng.integers(dictionary.cfg.d_sae, size=3).tolist():
                attribution = trace.contributions(Target("feature", position, module=module, feature=feature))
                with torch.no_grad():
                    expected = float(dictionary.pre_acts(r_D[None])[0, feature])
                assert attribution.value == pytest.approx(expected, rel=1e-5, abs=1e-5)
                scale = max(abs(attribution.value), float(attribution.values_N.abs().sum()))
                assert abs(attribution.sum() - attribution.value) <= 1e-5 * scale
