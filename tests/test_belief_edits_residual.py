"""Belief edits along a residual feature's decoder row (issue 15 item 4): ``L1:e-4=theirs@L1R5``
pushes the residual after block 1 by the smallest multiple of L1R5's decoder row that makes the
probe read theirs by the margin, or says that no multiple does."""

from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner
from test_beliefs import GAME, MOVES, random_probes

from othello_tui.circuits.belief_edit import belief_push
from othello_tui.circuits.edits import BeliefEdit, parse_belief
from othello_tui.circuits.intervention import intervene
from othello_tui.circuits.nodes import CircuitError
from othello_tui.circuits.trace import GameTrace
from othello_tui.cli import main
from othello_tui.game.squares import parse_square, tokens_of


@pytest.fixture(scope="module")
def probes(tiny_model):
    return random_probes(tiny_model)


@pytest.fixture(scope="module")
def trace(tiny_model, tiny_dictionaries, tiny_residual, probes):
    return GameTrace(tiny_model, {**tiny_dictionaries, **tiny_residual}, tokens_of(GAME.squares), probes)


def test_parse_and_print_back():
    edit = parse_belief("L1:e-4=theirs@l1r5", 11)
    assert edit == BeliefEdit(11, 2, parse_square("e-4"), 1, along="L1R5")
    assert edit.spec == "L1:e-4=theirs@L1R5" and edit.node_id == "P11belief:L1:e-4"
    for bad in ("L1:e-4=theirs@L0R5", "embed:e-4=theirs@L0R5", "L1:e-4=theirs@L1M5"):
        with pytest.raises(CircuitError, match="belief edit"):
            parse_belief(bad, 0)


def lead_after(trace, probes, edit, push_D):
    r_D = trace.cache[probes.sites[edit.site]][edit.position] + push_D
    z_C = (
        r_D @ probes.W["mine_theirs"][edit.site, :, edit.square]
        + probes.b["mine_theirs"][edit.site, edit.square]
    )
    z_C = z_C.detach()
    return float(z_C[edit.to] - max(z for c, z in enumerate(z_C.tolist()) if c != edit.to))


def test_the_push_is_the_least_multiple_of_the_decoder_row_that_gives_the_margin(
    trace, probes, tiny_residual
):
    row_D = tiny_residual["L1R"].W_dec
    done = refused = 0
    for feature in range(12):
        for square in (parse_square("e-4"), parse_square("c-3"), 0):
            edit = BeliefEdit(7, 2, square, 1, margin=2.0, along=f"L1R{feature}")
            try:
                _, push_D = belief_push(trace, edit)
            except CircuitError as error:
                assert "no push along" in str(error)
                refused += 1
                continue
            done += 1
            alpha = float(push_D @ row_D[feature].detach()) / float(row_D[feature].detach().norm() ** 2)
            assert torch.allclose(push_D, alpha * row_D[feature], atol=1e-5)  # along the row
            if alpha == 0.0:
                assert lead_after(trace, probes, edit, push_D) >= 2.0
                continue
            assert lead_after(trace, probes, edit, push_D) >= 2.0 - 1e-3
            # any smaller push along the row falls short of the margin
            assert lead_after(trace, probes, edit, 0.98 * push_D) < 2.0 - 1e-6
    assert done > 0 and refused > 0


def test_the_rerun_moves_the_logits_and_the_reading(trace, probes):
    for feature in range(48):
        edit = BeliefEdit(7, 2, parse_square("e-4"), 1, margin=3.0, along=f"L1R{feature}")
        try:
            belief_push(trace, edit)
        except CircuitError:
            continue
        site = probes.sites[2]
        result = intervene(trace, [edit], keep=[site])
        assert not math.isclose(float(result.delta_TV[7].abs().max()), 0.0)
        assert float(result.delta_TV[:7].abs().max()) == 0.0  # causal: earlier positions unchanged
        kept = result.kept[site][7]
        assert lead_after(trace, probes, edit, kept - trace.cache[site][7]) >= 3.0 - 1e-3
        return
    pytest.fail("no feature could make e-4 read theirs")


def test_the_command_line_reports_a_push_along_a_residual_feature(residual_weights_dir, tiny_model, tmp_path):
    import shutil

    from othello_tui.model.weights import model_fingerprint
    from othello_tui.probes.io import save_probes

    weights = tmp_path / "weights"
    shutil.copytree(residual_weights_dir, weights)
    save_probes(random_probes(tiny_model), weights, {"model_fingerprint": model_fingerprint(tiny_model)})
    runner = CliRunner()
    base = ["intervene", "--moves", MOVES, "--pos", "7", "--weights", str(weights)]
    results = [runner.invoke(main, [*base, "--believe", f"L1:e-4=theirs@L1R{f}"]) for f in range(12)]
    assert any(r.exit_code == 0 and "L1:e-4=theirs@L1R" in r.output for r in results)
    refused = [r for r in results if r.exit_code != 0]
    assert all("no push along" in r.output for r in refused)
