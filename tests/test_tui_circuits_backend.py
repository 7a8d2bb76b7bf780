"""The session's circuits backend (no Textual): every tree, pattern, QK table and intervention it
hands the screens equals a direct call of the circuits package on an independent trace."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from othello_tui.circuits.edits import Edit
from othello_tui.circuits.intervention import intervene
from othello_tui.circuits.nodes import CircuitError, Target
from othello_tui.circuits.trace import GameTrace
from othello_tui.game.rules import Game
from othello_tui.game.squares import SQUARE_TO_TOKEN, TOKEN_TO_SQUARE, tokens_of
from othello_tui.tui.circuits_backend import CircuitsUnavailableError
from othello_tui.tui.engine import ModelEngine
from othello_tui.tui.session import Session

MOVES = "e-5 d-5 c-3 d-2 e-1 f-5 f-6 e-2 g-5 c-4 d-6 c-5"  # game 0 of seed 0
GAME = Game.from_text(MOVES)


class CountingEngine(ModelEngine):
    """Counts the traces it builds."""

    traces = 0

    def trace(self, squares):
        self.traces += 1
        return super().trace(squares)


@pytest.fixture
def session(tiny_model, tiny_dictionaries):
    engine = CountingEngine(tiny_model, tiny_dictionaries)
    session = Session(lambda: engine)
    session.load()
    session.engine = engine
    return session


@pytest.fixture(scope="module")
def trace(tiny_model, tiny_dictionaries):
    return GameTrace(tiny_model, tiny_dictionaries, tokens_of(GAME.squares))


def flat(expansion) -> list:
    """(node id, contribution, children) of a whole expansion, recursively."""
    return [
        (b.node.id, b.contribution, flat(b.expansion) if b.expansion else None) for b in expansion.branches
    ]


def test_a_tree_level_is_the_traces_expansion(session, trace):
    target = Target("logit", 9, square=GAME.moves[10].square)
    got = session.circuits.tree(GAME.squares, target, 6)
    expected = trace.expand(target, 1, 6)
    assert flat(got) == pytest.approx(flat(expected))
    assert (got.value, got.total, got.rest) == pytest.approx((expected.value, expected.total, expected.rest))
    assert sum(b.contribution for b in got.branches) + got.rest == pytest.approx(got.value, abs=1e-4)


def test_open_paths_expand_those_branches_and_children_match(session, trace):
    module, feature = "L1M", trace.active_features(11, "L1M")[0][0]
    target = Target("feature", 11, module=module, feature=feature)
    level = session.circuits.tree(GAME.squares, target, 5)
    every_feature = {(b.node.id,) for b in level.branches if b.node.kind == "feature"}
    assert every_feature, "the tiny model's L1M feature has feature contributors"
    got = session.circuits.tree(GAME.squares, target, 5, open_paths=every_feature)
    assert flat(got) == pytest.approx(flat(trace.expand(target, 2, 5)))  # what --depth 2 gives
    node = next(b.node for b in level.branches if b.node.kind == "feature")
    assert flat(session.circuits.children(GAME.squares, node, 4)) == pytest.approx(
        flat(trace.children(node, 4))
    )
    threshold = abs(level.branches[2].contribution)
    cut = session.circuits.tree(GAME.squares, target, None, threshold)
    assert [b.node.id for b in cut.branches] == [b.node.id for b in level.branches[:3]]


def test_an_inactive_feature_target_is_refused_clearly(session, trace):
    inactive = next(f for f in range(64) if f not in dict(trace.active_features(4, "L0A")))
    with pytest.raises(CircuitError, match="not active at position 4"):
        session.circuits.tree(GAME.squares, Target("feature", 4, module="L0A", feature=inactive), 5)


def test_attention_is_the_models_pattern_at_the_position(session, tiny_model):
    tokens = torch.from_numpy(SQUARE_TO_TOKEN[np.array(GAME.squares[:8])].astype(np.int64))[None]
    with torch.no_grad():
        _, cache = tiny_model.run_with_cache(tokens)
    pattern_LHS = session.circuits.attention(GAME.squares, 7)
    assert pattern_LHS.shape == (tiny_model.cfg.n_layers, tiny_model.cfg.n_heads, 8)
    for layer in range(tiny_model.cfg.n_layers):
        expected = cache[f"blocks.{layer}.attn.hook_pattern"][0, :, 7, :].numpy()
        assert pattern_LHS[layer] == pytest.approx(expected, abs=1e-6)
    assert pattern_LHS.sum(-1) == pytest.approx(1.0, abs=1e-5)


def test_qk_pairs_are_the_score_decomposition(session, trace):
    got = session.circuits.qk(GAME.squares, 10, 1, 2, 4, 12)
    target = Target("score", 10, layer=1, head=2, key=4)
    assert flat(got) == pytest.approx(flat(trace.expand(target, 1, 12)))
    assert got.value == pytest.approx(trace.target_value(target))
    assert sum(b.contribution for b in got.branches) + got.rest == pytest.approx(got.value, abs=1e-4)
    assert all(b.node.parts is not None for b in got.branches)


def test_an_intervention_changes_the_view_as_intervene_does(session, trace):
    session.analyse(GAME)
    feature = trace.active_features(8, "L0M")[0][0]
    edit = Edit(8, "L0M", feature, value=0.0)
    clean = session.view(GAME, 10).probs.copy()
    assert session.circuits.add_edit(GAME.squares, edit) is None
    view = session.view(GAME, 10)
    assert view.pending and view.edits == (edit,) and view.probs_before is None  # not rerun yet
    session.analyse(GAME)
    expected = torch.softmax(intervene(trace, [edit]).logits_after_TV[9], -1).numpy()
    view = session.view(GAME, 10)
    assert not view.pending
    assert view.probs[TOKEN_TO_SQUARE[1:]] == pytest.approx(expected[1:], abs=1e-6)
    assert view.probs_before == pytest.approx(clean, abs=1e-6)
    assert [p.square for p in view.top] == list(np.argsort(-view.probs, kind="stable")[:8])
    early = session.view(GAME, 8)  # position 7, before the edit: unchanged, and says so
    assert early.probs_before is None and early.edits == (edit,)
    assert session.circuits.clear_edits() == 1
    view = session.view(GAME, 10)
    assert view.edits == () and view.probs == pytest.approx(clean) and not view.pending


def test_watched_features_report_before_and_after(session, trace):
    ablated = trace.active_features(3, "L0A")[0][0]
    downstream = f"P6L1A{trace.active_features(6, 'L1A')[0][0]}"
    session.circuits.add_edit(GAME.squares, Edit(3, "L0A", ablated, value=0.0))
    outcome = session.circuits.run_edits(GAME.squares, [f"P3L0A{ablated}", downstream])
    expected = intervene(trace, [Edit(3, "L0A", ablated, value=0.0)], [f"P3L0A{ablated}", downstream])
    assert outcome.features == pytest.approx(expected.features)
    assert outcome.features[f"P3L0A{ablated}"][1] == 0.0
    assert outcome.logits_after_TV == pytest.approx(expected.logits_after_TV.numpy(), abs=1e-5)
    assert session.circuits.outcome(GAME.squares) is outcome


def test_the_edit_stack_belongs_to_one_game(session, trace):
    first, second = (trace.active_features(5, "L0M")[i][0] for i in range(2))
    circuits = session.circuits
    circuits.add_edit(GAME.squares, Edit(5, "L0M", first, value=0.0))
    circuits.add_edit(GAME.squares, Edit(5, "L0M", second, scale=2.0))
    circuits.add_edit(GAME.squares, Edit(5, "L0M", first, scale=0.5))  # replaces the ablation
    assert circuits.edits(GAME.squares) == (
        Edit(5, "L0M", second, scale=2.0),
        Edit(5, "L0M", first, scale=0.5),
    )
    assert circuits.edits(GAME.squares[:11]) == ()  # another game (a prefix is another game)
    note = circuits.add_edit(GAME.squares[:11], Edit(2, "L0M", first, value=0.0))
    assert note == "Cleared 2 intervention(s) of another game."
    assert circuits.edits(GAME.squares) == () and len(circuits.edits(GAME.squares[:11])) == 1
    with pytest.raises(ValueError, match="outside this game"):
        circuits.add_edit(GAME.squares, Edit(12, "L0M", first, value=0.0))


def test_one_trace_serves_every_position_and_prefix(session):
    circuits = session.circuits
    circuits.attention(GAME.squares, 11)
    circuits.attention(GAME.squares[:5], 2)
    circuits.tree(GAME.squares, Target("logit", 3, square=GAME.moves[4].square), 3)
    assert session.engine.traces == 1


def test_no_circuits_without_a_model_or_from_a_stub_engine():
    session = Session(lambda: None)
    assert session.circuits.unavailable() == "The model is not loaded yet."
    with pytest.raises(CircuitsUnavailableError, match="not loaded"):
        session.circuits.attention(GAME.squares, 3)

    class Stub:
        modules, features_note, labels, labels_note = (), None, None, None

    session = Session(Stub)
    session.load()
    assert "cannot trace" in session.circuits.unavailable()
