"""``othello-tui ablate``: a feature scaled wherever it fires over many games, checked against
the one-game intervention of the same edits."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from othello_tui.circuits.ablation import ablate_feature
from othello_tui.circuits.edits import Edit
from othello_tui.circuits.intervention import intervene
from othello_tui.circuits.trace import GameTrace
from othello_tui.cli import main
from othello_tui.game.generator import generate_games
from othello_tui.game.squares import TOKEN_TO_SQUARE, square_name
from othello_tui.model.targets import model_inputs


@pytest.mark.parametrize("fixture", ["tiny_dictionaries", "normalised_dictionaries"])
def test_one_game_matches_the_intervention_of_the_same_edits(request, tiny_model, fixture):
    """Also with dictionaries that normalise their input (conftest.NORMALISED): each edit is made at
    the token's frozen output scale in both."""
    dictionaries = request.getfixturevalue(fixture)
    games = generate_games(1, 5)
    tokens_T = [int(t) for t in games.tokens[0][:-1]]
    trace = GameTrace(tiny_model, dictionaries, tokens_T)
    feature = max(range(64), key=lambda f: int((trace.activations["L0M"][:, f] > 0).sum()))
    fired = [t for t in range(59) if trace.activation(t, "L0M", feature) > 0]
    report = ablate_feature(tiny_model, dictionaries, "L0M", feature, 0.0, None, 1, 5, top=3)
    result = intervene(trace, [Edit(t, "L0M", feature, scale=0.0) for t in fired])
    before, after = result.logits_before_TV, result.logits_after_TV
    affected = torch.arange(59) >= fired[0]
    _, legal_TV = model_inputs(games)
    legal_after = legal_TV[0].gather(-1, (after[:, 1:].argmax(-1) + 1)[:, None])[:, 0]
    kl_T = (before.softmax(-1) * (before.log_softmax(-1) - after.log_softmax(-1))).sum(-1)
    assert (report.edits, report.affected_positions) == (len(fired), int(affected.sum()))
    assert report.legal_after == pytest.approx(float(legal_after[affected].float().mean()))
    assert report.mean_kl == pytest.approx(float(kl_T[affected].mean()), rel=1e-4, abs=1e-6)
    mean_delta_V = (after - before)[fired].mean(0)
    square, value = report.logits[0]
    token = int(mean_delta_V[1:].abs().argmax()) + 1
    assert square == square_name(int(TOKEN_TO_SQUARE[token])) and value == pytest.approx(
        float(mean_delta_V[token]), abs=1e-5
    )
    assert all(f.startswith(("L1A", "L1M")) for f, _ in report.downstream)  # only modules above L0M
    unchanged = ablate_feature(tiny_model, dictionaries, "L0M", feature, 1.0, None, 1, 5)
    assert unchanged.mean_kl == 0 and unchanged.downstream == []  # scale 1 changes nothing


def test_the_command_reports_and_refuses_bad_input(weights_dir):
    def run(*args):
        return CliRunner().invoke(main, ["ablate", *map(str, args), "--weights", str(weights_dir)])

    result = run("--feature", "L0M3", "--games", 3, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["games"] == 3 and data["feature"] == "L0M3" and 0 <= data["legal_after"] <= 1
    text = run("--feature", "L1A2", "--games", 2, "--positions", 7, "--scale", 2)
    assert text.exit_code == 0 and "L1A2 never fires at P7 in 2 games" in text.output  # no edit: no legality
    text = run("--feature", "L0M3", "--games", 3)
    assert (
        text.exit_code == 0
        and "L0M3 × 0 wherever it fires" in text.output
        and "top-1 legality" in text.output
    )
    for args, message in (
        (("--feature", "L9Z1"), "not a feature"),
        (("--feature", "L1A64"), "no feature L1A64"),
        (("--feature", "L1A1", "--positions", "x"), "all, or a position"),
        (("--feature", "L1A1", "--scale", "inf"), "within"),
    ):
        refused = run(*args)
        assert refused.exit_code != 0 and message in refused.output and "Traceback" not in refused.output


def test_a_feature_that_never_fires_is_reported_as_such_not_as_zero_legality():
    from othello_tui.circuits.ablation import AblationReport

    report = AblationReport("L2M845", 0.0, None, 20, 0, 0, 0.0, 0.0, 0.0, [], [])
    (line,) = report.lines(seed=0)
    assert line.startswith("L2M845 never fires in 20 games (seed 0): nothing to scale")
    assert "legality" not in line
