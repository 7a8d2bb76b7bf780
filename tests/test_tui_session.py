"""The backend of `othello-tui play` (no Textual): every number it hands the screen is checked
against an independent computation (a separate forward pass over the prefix, the rules, the
dataset generator)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from othello_tui.dictionary.sae import hook_name_of
from othello_tui.game.generator import generate_games
from othello_tui.game.rules import Game, start_board
from othello_tui.game.squares import SQUARE_TO_TOKEN, TOKEN_TO_SQUARE
from othello_tui.tui.analysis import ModelUnavailableError
from othello_tui.tui.engine import ModelEngine, load_engine
from othello_tui.tui.session import NO_INPUT_NOTE, Session

MOVES = "e-5 d-5 c-3 d-2 e-1 f-5 f-6 e-2 g-5 c-4 d-6 c-5"  # game 0 of seed 0


class CountingEngine:
    """Wraps an engine and counts forward passes."""

    def __init__(self, engine):
        self.engine, self.calls = engine, 0
        self.modules, self.features_note = engine.modules, engine.features_note
        self.labels, self.labels_note = engine.labels, engine.labels_note

    def analyse(self, squares, reuse=None):
        self.calls += 1
        return self.engine.analyse(squares, reuse)


@pytest.fixture(scope="module")
def engine(tiny_model, tiny_dictionaries):
    return ModelEngine(tiny_model, tiny_dictionaries)


@pytest.fixture
def session(engine):
    counting = CountingEngine(engine)
    session = Session(lambda: counting)
    session.load()
    session.counting = counting
    return session


def prefix_forward(model, squares: list[int]):
    """Logits and hook values of a pass over ``squares`` alone (nothing after them)."""
    tokens = torch.from_numpy(SQUARE_TO_TOKEN[np.array(squares)].astype(np.int64))[None]
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    return logits[0, -1], cache


def test_importing_the_session_imports_neither_textual_nor_torch():
    code = "import sys, othello_tui.tui.session\nprint('textual' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_start_position_is_the_rules_start_and_has_no_prediction(session):
    view = session.view(Game(), 0)
    assert np.array_equal(view.board, start_board())
    assert view.legal == (19, 26, 37, 44) and view.to_move == 1
    assert (view.black, view.white, view.last_move) == (2, 2, None)
    assert view.probs is None and view.top == () and view.predictions_note == NO_INPUT_NOTE
    assert not view.pending


def test_predictions_equal_a_separate_forward_pass_over_the_prefix(session, tiny_model):
    game = Game.from_text(MOVES)
    assert session.view(game, 5).pending
    session.analyse(game)
    for n in (1, 5, len(game.moves)):
        view = session.view(game, n)
        logits, _ = prefix_forward(tiny_model, game.squares[:n])
        expected = torch.softmax(logits, -1).numpy()
        assert not view.pending
        for square in range(64):
            token = SQUARE_TO_TOKEN[square]
            assert view.probs[square] == pytest.approx(expected[token] if token else 0.0, abs=1e-6)
        prefix = game.truncated(n)
        assert [p.square for p in view.top] == list(np.argsort(-view.probs, kind="stable")[:8])
        assert all(p.legal == (p.square in prefix.legal) for p in view.top)
        assert view.last_move == game.moves[n - 1].square and view.flipped == game.moves[n - 1].flipped


def test_top1_legality_so_far_counts_argmax_hits(session, tiny_model):
    game = Game.from_text(MOVES)
    session.analyse(game)
    hits = 0
    for n in range(1, len(game.moves) + 1):
        logits, _ = prefix_forward(tiny_model, game.squares[:n])
        token = int(logits.argmax())
        hits += token > 0 and int(TOKEN_TO_SQUARE[token]) in game.moves[n - 1].legal_next
        assert session.view(game, n).top1_legal == (hits, n)


def test_active_features_equal_the_dictionaries_encoding(session, tiny_model, tiny_dictionaries):
    game = Game.from_text(MOVES)
    session.analyse(game)
    n = 7
    _, cache = prefix_forward(tiny_model, game.squares[:n])
    view = session.view(game, n)
    assert [m.module for m in view.features] == list(tiny_dictionaries)
    for module in view.features:
        with torch.no_grad():
            acts = tiny_dictionaries[module.module].encode(cache[hook_name_of(module.module)][0, -1]).numpy()
        active = np.flatnonzero(acts > 0)
        features = module.features()
        assert sorted(f.index for f in features) == sorted(active.tolist())
        assert [f.activation for f in features] == pytest.approx(sorted(acts[active], reverse=True), abs=1e-5)
        assert all(f.feature_id == f"{module.module}{f.index}" and f.label is None for f in features)


def test_labels_come_from_the_labels_callable(engine):
    session = Session(lambda: engine, labels=lambda feature_id: f"label of {feature_id}")
    session.load()
    game = Game.from_text(MOVES)
    session.analyse(game)
    feature = session.view(game, 3).features[0].features()[0]
    assert feature.label == f"label of {feature.feature_id}"


def test_one_forward_pass_serves_every_position_and_every_branch_prefix(session):
    game = Game.from_text(MOVES)
    session.analyse(game)
    session.analyse(game)
    for n in range(len(game.moves) + 1):
        session.view(game, n)
    branch = game.truncated(6)
    branch.play(branch.legal[-1] if branch.legal[-1] != game.moves[6].square else branch.legal[0])
    assert not session.view(branch, 6).pending  # the shared prefix is already analysed
    assert session.view(branch, 7).pending
    assert session.counting.calls == 1
    session.analyse(branch)
    assert session.counting.calls == 2 and not session.view(branch, 7).pending


def test_model_choice_is_the_most_probable_legal_move(session):
    game = Game.from_text(MOVES)
    for n in (1, 4, 9):
        square = session.model_choice(game, n)
        probs = session.view(game, n).probs
        legal = game.truncated(n).legal
        assert square in legal and probs[square] == max(probs[s] for s in legal)
    assert session.model_choice(game, 0) is None


@pytest.mark.parametrize("index", [0, 17, 4100])
def test_dataset_game_is_game_k_of_the_seed(index):
    session = Session(lambda: None, seed=3)
    expected = generate_games(index + 1, 3)[index : index + 1]
    game = session.dataset_game(index)
    assert game.squares == [int(s) for s in expected.squares[0] if s >= 0]
    assert np.array_equal(game.board, expected.board()[0, len(game.moves) - 1])


def test_feature_summary_lists_where_the_feature_fires(session, tiny_model, tiny_dictionaries):
    game = Game.from_text(MOVES)
    session.analyse(game)
    feature = session.view(game, 4).features[1].features()[0]
    summary = session.feature_summary(game, 4, feature.module, feature.index)
    tokens = torch.from_numpy(SQUARE_TO_TOKEN[np.array(game.squares)].astype(np.int64))[None]
    with torch.no_grad():
        _, cache = tiny_model.run_with_cache(tokens)
        acts = tiny_dictionaries[feature.module].encode(cache[hook_name_of(feature.module)][0])[
            :, feature.index
        ]
    assert summary.position == 3 and summary.analysed_moves == len(game.moves)
    assert [move for move, _ in summary.firing] == [int(t) + 1 for t in np.flatnonzero(acts.numpy() > 0)]
    assert 4 in [move for move, _ in summary.firing]
    assert summary.feature_id == feature.feature_id and summary.activation == pytest.approx(
        feature.activation
    )


def test_missing_weights_say_which_command_trains_them(tmp_path):
    session = Session.from_weights(tmp_path / "nowhere")
    with pytest.raises(ModelUnavailableError, match="othello-tui train model"):
        session.load()
    game = Game.from_text(MOVES)
    view = session.view(game, 3)
    assert "othello-tui train model" in view.predictions_note and not view.pending


def test_labels_come_from_the_feature_cache_built_for_these_weights(
    tiny_weights, tiny_model, tiny_dictionaries, tmp_path
):
    from othello_tui.dictionary.io import save_dictionary
    from othello_tui.features import build_cache, open_cache
    from othello_tui.model.weights import model_fingerprint

    for dictionary in tiny_dictionaries.values():
        save_dictionary(dictionary, tmp_path / "dicts", {"model_fingerprint": model_fingerprint(tiny_model)})
    engine = load_engine(tiny_weights, "cpu", tmp_path / "dicts", cache_dir=tmp_path / "cache")
    assert engine.labels is None and "othello-tui cache build" in engine.labels_note
    path = build_cache(tiny_model, tiny_dictionaries, 64, 0, 8, tmp_path / "cache" / "features-x.h5")
    engine = load_engine(tiny_weights, "cpu", tmp_path / "dicts", cache_dir=tmp_path / "cache")
    expected = open_cache(path)
    ids = [f"{m}{i}" for m in tiny_dictionaries for i in range(64)]
    assert engine.labels_note is None and [engine.labels(i) for i in ids] == [expected.label(i) for i in ids]
    session = Session(lambda: engine)
    session.load()
    game = Game.from_text(MOVES)
    session.analyse(game)
    for feature in session.view(game, 5).features[0].features():
        assert feature.label == expected.label(feature.feature_id)


def test_load_engine_reads_saved_dictionaries_and_explains_missing_ones(
    tiny_weights, tiny_model, tiny_dictionaries, tmp_path
):
    from othello_tui.dictionary.io import save_dictionary
    from othello_tui.model.weights import model_fingerprint

    engine = load_engine(tiny_weights, "cpu", tmp_path / "none")
    assert engine.modules == () and "othello-tui train dictionaries" in engine.features_note
    for dictionary in tiny_dictionaries.values():
        save_dictionary(dictionary, tmp_path / "dicts", {"model_fingerprint": model_fingerprint(tiny_model)})
    engine = load_engine(tiny_weights, "cpu", tmp_path / "dicts")
    assert engine.modules == tuple(tiny_dictionaries) and engine.features_note is None
