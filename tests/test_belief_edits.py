"""Belief edits (Li et al. 2023; DESIGN.md §3.9): the push that flips the probe's reading, the rerun
above it, the edit success measure, and the command line, on the tiny model with random probes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_beliefs import GAME, MOVES, probe_weights, random_probes  # noqa: F401 (probe_weights: a fixture)

from othello_tui.circuits.belief_edit import belief_push, follows_edit, predicted_legal
from othello_tui.circuits.belief_eval import edit_success
from othello_tui.circuits.edits import BeliefEdit, parse_belief
from othello_tui.circuits.intervention import intervene
from othello_tui.circuits.nodes import CircuitError
from othello_tui.circuits.trace import GameTrace
from othello_tui.cli import main
from othello_tui.game.rules import Game, legal_moves, next_turn
from othello_tui.game.squares import parse_square, tokens_of
from othello_tui.probes.families import mine_theirs_classes, with_belief


@pytest.fixture(scope="module")
def probes(tiny_model):
    return random_probes(tiny_model)


@pytest.fixture(scope="module")
def trace(tiny_model, tiny_dictionaries, probes):
    return GameTrace(tiny_model, tiny_dictionaries, tokens_of(GAME.squares), probes)


def probe_logits(probes, site: int, square: int, r_D):
    return (
        r_D @ probes.W["mine_theirs"][site, :, square].detach()
        + probes.b["mine_theirs"][site, square].detach()
    )


def test_belief_edits_parse_and_print_back():
    edit = parse_belief("L3:e-4=theirs", 11)
    assert edit == BeliefEdit(11, 4, parse_square("e-4"), 1)
    assert (
        edit.spec == "L3:e-4=theirs"
        and edit.text == "P11:L3:e-4=theirs"
        and edit.node_id == "P11belief:L3:e-4"
    )
    assert parse_belief("embed:a0=empty", 0, margin=2.0) == BeliefEdit(0, 0, 0, 2, 2.0)
    for bad in ("L3:e-4=black", "L3-e-4=mine", "L3:z-4=mine"):
        with pytest.raises(CircuitError, match="belief edit"):
            parse_belief(bad, 0)


@pytest.mark.parametrize("margin", [0.5, 3.0])
@pytest.mark.parametrize("site", [0, 1, 2])
def test_the_push_makes_the_probe_read_the_new_class_by_the_margin(trace, probes, site, margin):
    for square in (parse_square("e-4"), parse_square("c-3"), 0):
        r_D = trace.cache[probes.sites[site]][7]
        reading = int(probe_logits(probes, site, square, r_D).argmax())
        for to in {0, 1, 2} - {reading}:
            name, push_D = belief_push(trace, BeliefEdit(7, site, square, to, margin))
            z_C = probe_logits(probes, site, square, r_D + push_D)
            assert name == probes.sites[site]
            lead = z_C[to] - torch.cat([z_C[:to], z_C[to + 1 :]]).max()
            assert lead >= margin - 1e-3
        _, none_D = belief_push(trace, BeliefEdit(7, site, square, reading, -1.0))
        assert torch.count_nonzero(none_D) == 0  # already read with a lead over −1: nothing to do


def test_an_edit_reruns_the_layers_above_as_an_independent_hooked_pass(trace, tiny_model, probes):
    edit = BeliefEdit(
        6, 1, parse_square("d-4"), 1 - int(mine_theirs_classes(GAME.moves[6].board, -1)[27] == 0), 4.0
    )
    name, push_D = belief_push(trace, edit)
    result = intervene(trace, [edit], keep=[probes.sites[1], probes.sites[2]])
    reading = probe_logits(probes, 1, edit.square, result.kept[probes.sites[1]][6])
    assert int(reading.argmax()) == edit.to
    delta_1TD = torch.zeros(1, trace.n_positions, push_D.shape[0])
    delta_1TD[0, 6] = push_D
    with tiny_model.hooks([(name, lambda x: x + delta_1TD)]):
        expected_1TV = tiny_model(trace.tokens_T[None])
    torch.testing.assert_close(result.logits_after_TV, expected_1TV[0], atol=1e-5, rtol=1e-5)
    assert torch.equal(result.logits_after_TV[:6], trace.logits_TV[:6])  # causal: earlier moves untouched
    assert (result.logits_after_TV[6] - trace.logits_TV[6]).abs().max() > 1e-3


def test_next_turn_and_the_edited_board():
    game = Game.from_text("f-4")
    board = game.moves[0].board
    assert next_turn(board, 1) == (-1, legal_moves(board, -1))
    edited = with_belief(board, 1, parse_square("e-4"), 1)  # e-4 back to white (theirs of black)
    np.testing.assert_array_equal(
        edited, Game().board | 0 + np.where(np.arange(64) == parse_square("f-4"), 1, 0)
    )
    assert next_turn(np.zeros(64, np.int8), 1) == (0, [])


def test_follows_edit_counts_the_symmetric_difference():
    assert follows_edit({1, 2, 3}, original={1, 2}, edited={1, 2, 3})
    assert not follows_edit({1, 2}, original={1, 2}, edited={1, 2, 3})
    assert not follows_edit({5}, original={1}, edited={2})  # equally far: not a success
    probs_V = torch.zeros(61)
    probs_V[[1, 5]] = torch.tensor([0.5, 0.02])
    probs_V[0] = 0.9  # padding never counts
    assert predicted_legal(probs_V) == {0, 4}


def test_edit_success_counts_positions_and_rates(tiny_model, probes):
    result = edit_success(
        tiny_model, probes, n_games=3, positions_per_game=2, sites=[1, 2], margins=[2.0, 8.0], seed=4
    )
    assert 0 < result.positions <= 6
    for key in result.successes:
        assert (
            0 <= result.rate(*key) <= 1 and result.flipped[key] == result.positions
        )  # the probe always flips
    site, margin, rate = result.best()
    assert rate == max(result.rate(*key) for key in result.successes)


def test_edit_success_along_residual_features_counts_the_pushes_that_do_not_exist(
    tiny_model, probes, tiny_residual
):
    """Along the best-aligned residual feature, an edit either flips the probe or has no push
    (counted as a failure): flipped + infeasible covers every position at every (site, margin)."""
    result = edit_success(tiny_model, probes, 3, 2, [1, 2], [2.0, 8.0], seed=4, residual=tiny_residual)
    assert 0 < result.positions <= 6
    for key in ((site, margin) for site in (1, 2) for margin in (2.0, 8.0)):
        assert result.flipped.get(key, 0) + result.infeasible.get(key, 0) == result.positions
        assert result.successes.get(key, 0) <= result.flipped.get(key, 0) + result.infeasible.get(key, 0)


def test_intervene_believe_on_the_command_line(probe_weights):  # noqa: F811
    args = ["intervene", "--moves", MOVES, "--pos", "6", "--believe", "L1:e-4=theirs", "--margin", "3"]
    result = CliRunner().invoke(main, [*args, "--weights", str(probe_weights)])
    assert result.exit_code == 0, result.output
    assert "P6:L1:e-4=theirs: the probe read" in result.output and "→ theirs" in result.output
    assert "legal on the edited board" in result.output and "Logit change at P6" in result.output
    # the push's size, measured apart: the edit's vector over the residual's norm
    from othello_tui.circuits.nodes import PROBE_CLASSES
    from othello_tui.model.weights import load_model
    from othello_tui.probes.io import load_probes

    model, _ = load_model(probe_weights)
    shipped, _ = load_probes(probe_weights, model)
    trace = GameTrace(model, {}, tokens_of(Game.from_text(MOVES).squares), shipped)
    site_name, push_D = belief_push(trace, parse_belief("L1:e-4=theirs", 6, 3.0))
    residual_D = trace.cache[site_name][6]
    assert f"push {float(push_D.norm() / residual_D.norm()):.2f} × |residual|" in result.output
    board = Game.from_text(MOVES).moves[6]
    same = (
        next_turn(board.board, board.player)[1]
        == next_turn(with_belief(board.board, board.player, 36, 1), board.player)[1]
    )
    verdict = "nothing to tell apart" if same else "from the real board's: closer to the"
    assert verdict in " ".join(result.output.split())  # the console wraps at 80 columns
    # a class the probe reads already is refused: a belief edit flips a reading
    z_C = residual_D @ shipped.W["mine_theirs"][2, :, 36] + shipped.b["mine_theirs"][2, 36]
    read = PROBE_CLASSES[int(z_C.argmax())]
    again = ["intervene", "--moves", MOVES, "--pos", "6", "--believe", f"L1:e-4={read}"]
    out = CliRunner().invoke(main, [*again, "--weights", str(probe_weights)])
    assert out.exit_code != 0 and f"as {read} already" in out.output and "Traceback" not in out.output
    for bad, message in (
        (["--believe", "L9:e-4=mine"], "no probe site L9"),
        ([], "at least one --set or --believe"),
    ):
        out = CliRunner().invoke(main, ["intervene", "--moves", MOVES, *bad, "--weights", str(probe_weights)])
        assert out.exit_code != 0 and message in out.output and "Traceback" not in out.output
