"""Pilot tests of residual-stream features in `othello-tui play`: the features panel lists L0R,
L1R after the module outputs, `t` on one opens its exact tree (issue 15 item 3), and `a` refuses
to edit a readout."""

from __future__ import annotations

import pytest
import torch
from test_beliefs import random_probes
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


def test_a_residual_feature_page_is_described_as_a_readout():
    from othello_tui.tui.screens.feature import describe

    assert describe("L3R512") == "feature 512 of L3R, a readout of the residual stream after block 3"
    assert describe("L2M845") == "feature 845 of L2M, the MLP output of layer 2"


def test_the_palette_opens_a_residual_feature_page_with_its_cache_statistics(
    tiny_model, merged, tmp_path_factory
):
    from test_tui_feature_screen import page_loaded, palette

    from othello_tui.features import build_cache, open_cache

    path = build_cache(
        tiny_model, merged, 40, 0, 8, tmp_path_factory.mktemp("rcache") / "f.h5", batch_games=20
    )
    cache = open_cache(path)
    probes = random_probes(tiny_model)
    engine = ModelEngine(tiny_model, merged, feature_cache=cache, probes=probes)
    app = app_on(engine, GAME)

    async def scenario(pilot):
        await palette(pilot, "l1r7")
        await pilot.press("enter")
        page = await page_loaded(app, pilot)
        stats = cache.feature("L1R7")
        shown = shows(app, page)
        assert page.feature_id == "L1R7" and "a readout of the residual stream after block 1" in shown
        assert f"fires on {stats.frequency:.3%} of {stats.n_tokens:,} tokens" in shown
        activation = engine.analyse(GAME.squares).acts["L1R"].row(11)[7]
        assert (f"here: {activation:.3g}" if activation else "here: not active") in shown
        # its believed board: the probe's mine − theirs logits move by this per unit of activation
        panel = page.query_one("#panel-belief")
        panel.scroll_visible(animate=False)
        await pilot.pause()
        assert panel.display and "writes belief: +mine / −theirs" in shows(app, panel)
        r_1SD = torch.randn(1, len(probes.sites), tiny_model.cfg.d_model)
        pushed_1SD = r_1SD.clone()
        pushed_1SD[0, 2] += merged["L1R"].W_dec[7].detach()  # site 2: after block 1
        moved_Q = [
            (lambda z: z[0, 2, :, 0] - z[0, 2, :, 1])(probes.family_logits("mine_theirs", x))
            for x in (pushed_1SD, r_1SD)
        ]
        reading = app.main_screen.session.decoder_reading("L1R", 7)
        assert reading == pytest.approx((moved_Q[0] - moved_Q[1]).detach().numpy(), abs=1e-4)
        assert app.main_screen.session.decoder_reading("L1M", 7) is None

    run(app, scenario)


def test_after_an_edit_residual_features_read_the_rerun(tiny_model, merged):
    """An ablation's rerun re-encodes resid_post: L1R's activations after it are those of the
    edited residual stream, so the panel shows how the readouts moved."""
    import threading

    import torch

    from othello_tui.circuits.edits import Edit
    from othello_tui.circuits.intervention import intervene
    from othello_tui.tui.circuits_backend import CircuitsBackend

    engine = ModelEngine(tiny_model, merged)
    backend = CircuitsBackend(lambda: engine, threading.Lock())
    trace = GameTrace(tiny_model, merged, tokens_of(GAME.squares))
    feature, _ = trace.active_features(5, "L0M")[0]
    edit = Edit(5, "L0M", feature, value=0.0)
    backend.add_edit(GAME.squares, edit)
    outcome = backend.run_edits(GAME.squares)
    assert set(outcome.acts_after) == set(merged)
    hook = "blocks.1.hook_resid_post"
    after_TD = intervene(trace, [edit], keep=[hook]).kept[hook]
    expected = merged["L1R"].encode(after_TD).detach().numpy()
    assert outcome.acts_after["L1R"] == pytest.approx(expected, abs=1e-5)
    assert (outcome.acts_after["L1R"][:5] == trace.activations["L1R"][:5].detach().numpy()).all()
    assert not torch.allclose(torch.from_numpy(outcome.acts_after["L1R"][5]), trace.activations["L1R"][5])
