"""Pilot tests of residual-stream features in `othello-tui play`: the features panel lists L0R,
L1R after the module outputs, `t` on one opens its exact tree (issue 15 item 3), and `a` refuses
to edit a readout."""

from __future__ import annotations

import pytest
from test_tui_app import app_on, run, settle, shows
from test_tui_tree import GAME, check_sums, to_feature

from othello_tui.circuits.nodes import Target
from othello_tui.circuits.trace import GameTrace
from othello_tui.game.squares import tokens_of
from othello_tui.tui.engine import ModelEngine
from othello_tui.tui.screens.tree import TreeScreen
from othello_tui.tui.widgets.contributor_tree import ContributorTree
from othello_tui.tui.widgets.features import FeatureList


@pytest.fixture(scope="module")
def merged(tiny_dictionaries, tiny_residual):
    return {**tiny_dictionaries, **tiny_residual}


def test_t_on_a_residual_feature_opens_its_exact_tree(tiny_model, merged):
    engine = ModelEngine(tiny_model, merged)
    trace = GameTrace(tiny_model, merged, tokens_of(GAME.squares))
    app = app_on(engine, GAME)

    async def scenario(pilot):
        headers = [r.module for r in app.main_screen.query_one(FeatureList).rows if r.feature is None]
        assert headers == ["L0A", "L0M", "L1A", "L1M", "L0R", "L1R"]
        await to_feature(pilot, "L1R")
        feature = app.main_screen.feature_list.current.feature
        await pilot.press("a")  # a readout: no edit
        await settle(app, pilot)
        assert "readout, not a node" in shows(app, app.main_screen.query_one("#message"))
        assert not app.main_screen.session.circuits.edits(GAME.squares)
        await pilot.press("t")
        await settle(app, pilot)
        assert isinstance(app.screen, TreeScreen)
        tree = app.screen.query_one(ContributorTree)
        target = Target("feature", 11, module="L1R", feature=feature.index)
        value = trace.target_value(target)
        assert value == pytest.approx(feature.activation, rel=1e-5)
        assert f"feature:{feature.feature_id} at P11 = {value:.4f}" in shows(app, tree).splitlines()[0]
        assert check_sums(tree) >= 1

    run(app, scenario)
