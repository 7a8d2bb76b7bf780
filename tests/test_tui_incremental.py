"""A move played after an analysed game runs the model over that one move, from the cached
game's keys and values: what the session then shows must equal one pass over the whole new game
(probabilities, every dictionary's activations, the probes' beliefs, the keys and values), on the
tiny model and on a random model of the public config; and a game with interventions must still
show their rerun, not the clean incremental pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_dictionaries, random_residual_dictionaries
from test_beliefs import random_probes
from test_model_kv_cache import model  # noqa: F401 (a fixture: the tiny and the public-config model)

from othello_tui.circuits.edits import Edit
from othello_tui.circuits.intervention import intervene
from othello_tui.circuits.trace import GameTrace
from othello_tui.game.rules import Game
from othello_tui.game.squares import TOKEN_TO_SQUARE, tokens_of
from othello_tui.model.config import TINY
from othello_tui.model.transformer import OthelloGPT
from othello_tui.probes.linear import LinearProbes
from othello_tui.tui.analysis import GameAnalysis
from othello_tui.tui.engine import ModelEngine
from othello_tui.tui.session import Session

MOVES = "e-5 d-5 c-3 d-2 e-1 f-5 f-6 e-2 g-5 c-4 d-6 c-5 f-1 c-6 b-4"  # game 0 of seed 0, 15 moves
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


class RecordingEngine(ModelEngine):
    """Records how many moves each pass was handed already analysed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reused: list[int] = []

    def analyse(self, squares, reuse=None):
        self.reused.append(0 if reuse is None else len(reuse))
        return super().analyse(squares, reuse)


def probes_for(model: OthelloGPT) -> LinearProbes:  # noqa: F811 (not the fixture)
    """Random probes whose logits are a few units, as trained ones give: at the tiny model's
    scale they reach ±70 on the 512-wide model, where float rounding alone moves a probability
    by more than 1e-5."""
    probes = random_probes(model)
    with torch.no_grad():
        for W in probes.W.values():
            W.mul_((TINY.d_model / model.cfg.d_model) ** 0.5)
    return probes


@pytest.fixture(scope="module")
def engine(model) -> RecordingEngine:  # noqa: F811 (the imported fixture)
    dictionaries = {**random_dictionaries(model, d_sae=96, k=8), **random_residual_dictionaries(model)}
    return RecordingEngine(model, dictionaries, probes=probes_for(model))


@pytest.fixture
def session(engine) -> Session:
    engine.reused.clear()
    session = Session(lambda: engine)
    session.load()
    return session


def branch_of(game: Game, n_moves: int) -> Game:
    """The first ``n_moves`` of ``game``, then a legal move other than the game's own."""
    branch = game.truncated(n_moves)
    branch.play(next(s for s in branch.legal if s != game.moves[n_moves].square))
    return branch


def assert_same(got: GameAnalysis, expected: GameAnalysis) -> None:
    """Every array the analysis keeps, to float rounding."""
    assert len(got) == len(expected)
    np.testing.assert_allclose(got.probs_TV, expected.probs_TV, **TOLERANCE)
    assert got.acts.keys() == expected.acts.keys()
    for module, acts in got.acts.items():
        np.testing.assert_allclose(acts.dense(), expected.acts[module].dense(), **TOLERANCE, err_msg=module)
    assert got.beliefs_TSQC is not None and expected.beliefs_TSQC is not None
    np.testing.assert_allclose(got.beliefs_TSQC, expected.beliefs_TSQC, **TOLERANCE)
    assert got.kv is not None and expected.kv is not None
    for a, b in zip(got.kv.keys + got.kv.values, expected.kv.keys + expected.kv.values, strict=True):
        torch.testing.assert_close(a, b, **TOLERANCE)


def test_a_move_played_runs_one_position_and_equals_a_pass_over_the_whole_game(session, engine):
    game = Game.from_text(MOVES)
    session.analyse(game)
    at_the_end = game.truncated(len(game.moves))
    at_the_end.play(at_the_end.legal[0])
    for played in (at_the_end, branch_of(game, 9), branch_of(game, 1)):
        n_moves = len(played.moves) - 1
        session.analyse(played)
        assert engine.reused[-1] == n_moves  # every move before the one played came from the cache
        entry = session._cache.find(played.squares, len(played.moves))
        assert entry is not None
        whole = engine.analyse(played.squares)
        assert_same(entry.analysis, whole)
        view = session.view(played, n_moves + 1)
        assert view.probs[TOKEN_TO_SQUARE[1:]] == pytest.approx(whole.probs_TV[n_moves, 1:], abs=1e-5)


def test_moves_played_one_after_another_each_run_one_position(session, engine):
    game = Game.from_text("e-5 d-5")
    session.analyse(game)
    for _ in range(12):
        game = game.truncated(len(game.moves))
        game.play(game.legal[-1])
        session.analyse(game)
    assert engine.reused == [0, *range(2, 14)]
    entry = session._cache.find(game.squares, len(game.moves))
    assert entry is not None
    assert_same(entry.analysis, engine.analyse(game.squares))


def test_an_intervention_on_a_played_game_is_rerun_not_taken_from_the_clean_prefix(session, engine):
    """The clean analysis of a played game comes from its parent's keys and values; an edit on
    it (at a move both share) must show the edited rerun, and the clean values as "before"."""
    game = Game.from_text(MOVES)
    session.analyse(game)
    played = branch_of(game, 10)
    session.analyse(played)
    assert engine.reused[-1] == 10
    trace = GameTrace(engine.model, engine.dictionaries, tokens_of(played.squares), engine.probes)
    feature = trace.active_features(4, "L0M")[0][0]
    edit = Edit(4, "L0M", feature, value=0.0)
    session.circuits.add_edit(played.squares, edit)
    session.analyse(played)
    after = torch.softmax(intervene(trace, [edit]).logits_after_TV[10], -1).numpy()
    clean = torch.softmax(trace.logits_TV[10], -1).numpy()
    assert np.abs(after - clean).max() > 1e-4  # the edit changes the prediction
    view = session.view(played, 11)
    assert view.edits == (edit,)
    assert view.probs[TOKEN_TO_SQUARE[1:]] == pytest.approx(after[1:], abs=1e-5)
    assert view.probs_before[TOKEN_TO_SQUARE[1:]] == pytest.approx(clean[1:], abs=1e-5)
