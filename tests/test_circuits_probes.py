"""Probe targets (DESIGN.md §3.9): a probe's class-logit difference on the residual stream after
block l, exactly decomposed over the nodes at that position below the probe."""

from __future__ import annotations

import pytest
from test_beliefs import random_probes

from othello_tui.circuits.nodes import CircuitError, Target, parse_target, probe_target
from othello_tui.circuits.trace import GameTrace
from othello_tui.game.generator import generate_games
from othello_tui.game.squares import parse_square, tokens_of


@pytest.fixture(scope="module")
def probes(tiny_model):
    return random_probes(tiny_model, seed=3)


@pytest.fixture(scope="module")
def trace(tiny_model, tiny_dictionaries, probes):
    squares = [int(s) for s in generate_games(1, seed=5).squares[0] if s >= 0]
    return GameTrace(tiny_model, tiny_dictionaries, tokens_of(squares[:30]), probes)


def test_probe_targets_parse_and_print_back():
    target = parse_target("probe:L3:e-4:mine-theirs", 7)
    assert target == Target("probe", 7, square=parse_square("e-4"), site=4, classes=(0, 1))
    assert target.spec == "probe:L3:e-4:mine-theirs" and target.id == "P7probe:L3:e-4:mine-theirs"
    assert parse_target("probe:embed:a0:empty-mine", 0) == probe_target(0, 0, 0, "empty", "mine")
    for bad in (
        "probe:L3:e-4:mine-mine",
        "probe:L3:e-4",
        "probe:X3:e-4:mine-theirs",
        "probe:L3:z-9:mine-theirs",
    ):
        with pytest.raises(CircuitError, match="probe"):
            parse_target(bad, 0)


@pytest.mark.parametrize("site", range(3))
def test_value_is_the_probe_on_the_cached_residual_and_contributions_sum_to_it(
    trace, tiny_model, probes, site
):
    """Independent: run the model once more, read the residual at the probe's site, apply W and b."""
    _, cache = tiny_model.run_with_cache(trace.tokens_T[None], [probes.sites[site]])
    W, b = probes.W["mine_theirs"][site].detach(), probes.b["mine_theirs"][site].detach()
    for position in (0, 12, 29):
        for square, (plus, minus) in ((parse_square("e-4"), ("mine", "theirs")), (0, ("empty", "theirs"))):
            target = probe_target(position, site, square, plus, minus)
            a, c = target.classes
            r_D = cache[probes.sites[site]][0, position]
            expected = float(r_D @ (W[:, square, a] - W[:, square, c]) + b[square, a] - b[square, c])
            value = trace.target_value(target)
            assert value == pytest.approx(expected, rel=1e-5, abs=1e-6)
            attribution = trace.contributions(target)
            assert abs(attribution.sum() - value) <= 1e-5 * max(1.0, abs(value))


def test_contributors_are_the_nodes_below_the_probe_at_its_position(trace):
    after_block_0 = trace.contributions(probe_target(9, 1, 20))
    nodes = [after_block_0.node_at(n) for n in range(len(after_block_0.values_N))]
    assert {node.position for node in nodes} == {9}
    assert {node.module for node in nodes if node.module} == {"L0A", "L0M"}
    assert nodes[-1].id == "P9probes.mine_theirs.b"
    embed = trace.contributions(probe_target(9, 0, 20))
    assert [embed.node_at(n).id for n in range(len(embed.values_N))] == [
        "P9embed",
        "P9pos",
        "P9probes.mine_theirs.b",
    ]


def test_a_probe_tree_expands_features_into_their_own_contributors(trace):
    expansion = trace.expand(probe_target(20, 2, parse_square("d-4")), depth=2, top=None)
    assert expansion.total == pytest.approx(expansion.value, rel=1e-5, abs=1e-5)
    expanded = [b for b in expansion.branches if b.expansion is not None]
    assert expanded and all(b.expansion.target.kind == "feature" for b in expanded)


def test_probe_targets_need_probes_and_a_site_that_exists(tiny_model, tiny_dictionaries, trace):
    bare = GameTrace(tiny_model, tiny_dictionaries, trace.tokens_T)
    with pytest.raises(CircuitError, match="train probes"):
        bare.target_value(probe_target(3, 1, 20))
    with pytest.raises(CircuitError, match="no probe site L4"):
        trace.target_value(parse_target("probe:L4:e-4:mine-theirs", 3))
