"""The believed board (issue 15): the probe's reading per square and site, from the engine, after
interventions and on the command line, each checked against an independent computation."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from othello_tui.circuits.edits import Edit
from othello_tui.cli import main
from othello_tui.game.rules import Game
from othello_tui.game.squares import parse_square, tokens_of
from othello_tui.model.weights import model_fingerprint
from othello_tui.probes.beliefs import read_beliefs
from othello_tui.probes.families import FAMILIES, mine_theirs_classes, parse_site, probe_sites, site_short
from othello_tui.probes.io import save_probes
from othello_tui.probes.linear import LinearProbes
from othello_tui.tui.engine import ModelEngine
from othello_tui.tui.session import Session
from othello_tui.tui.views import Beliefs
from othello_tui.tui.widgets.belief_board import belief_faces

MOVES = "e-5 d-5 c-3 d-2 e-1 f-5 f-6 e-2 g-5 c-4 d-6 c-5"
GAME = Game.from_text(MOVES)


def random_probes(model, seed: int = 0) -> LinearProbes:
    probes = LinearProbes(probe_sites(model.cfg.n_layers), model.cfg.d_model, FAMILIES)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for value in probes.tensors().values():
            value.copy_(torch.randn(value.shape, generator=generator) * 0.3)
    return probes.eval()


@pytest.fixture(scope="module")
def probes(tiny_model):
    return random_probes(tiny_model)


@pytest.fixture(scope="module")
def probe_weights(tmp_path_factory, weights_dir, tiny_model, probes):
    """The tiny model, its dictionaries and random probes."""
    directory = tmp_path_factory.mktemp("belief_weights") / "weights"
    shutil.copytree(weights_dir, directory)
    save_probes(probes, directory, {"model_fingerprint": model_fingerprint(tiny_model)})
    return directory


def independent_probs(model, probes, squares) -> np.ndarray:
    """[T, S, 64, 3] by hand: softmax(x_s · W[s, :, q, :] + b[s, q]) on the cached residuals."""
    _, cache = model.run_with_cache(torch.as_tensor(tokens_of(squares))[None], probes.sites)
    W, b = probes.W["mine_theirs"].detach(), probes.b["mine_theirs"].detach()
    out = []
    for s, site in enumerate(probes.sites):
        logits_TQC = torch.einsum("td,dqc->tqc", cache[site][0], W[s]) + b[s]
        out.append(logits_TQC.softmax(-1))
    return torch.stack(out, 1).numpy()


def test_mine_theirs_classes_of_a_known_position():
    board = Game.from_text("f-4").moves[0].board  # black played f-4, flipping e-4
    classes = mine_theirs_classes(board, mover=1)
    mine = {parse_square(s) for s in ("d-4", "e-3", "e-4", "f-4")}
    assert {int(q) for q in np.flatnonzero(classes == 0)} == mine
    assert {int(q) for q in np.flatnonzero(classes == 1)} == {parse_square("d-3")}
    assert (classes == 2).sum() == 64 - 5
    assert (mine_theirs_classes(board, mover=-1) == np.where(classes < 2, 1 - classes, 2)).all()


def test_site_names_round_trip():
    assert [site_short(s) for s in range(7)] == ["embed", "L0", "L1", "L2", "L3", "L4", "L5"]
    assert [parse_site(site_short(s), 7) for s in range(7)] == list(range(7))
    assert parse_site("3", 7) == 4
    with pytest.raises(ValueError, match="L0…L5"):
        parse_site("L6", 7)


def test_a_hand_set_probe_reads_the_expected_board():
    """W = 0 and biases that read every square empty except e-4, read as theirs."""
    game = Game.from_text("f-4")
    probes = LinearProbes(["x"], 4, FAMILIES[:1])
    e4 = parse_square("e-4")
    with torch.no_grad():
        probes.b["mine_theirs"][0, :] = torch.tensor([0.0, 0.0, 5.0])
        probes.b["mine_theirs"][0, e4] = torch.tensor([0.0, 5.0, 0.0])
        probs_TSQC = probes.family_logits("mine_theirs", torch.randn(1, 1, 4)).softmax(-1).numpy()
    move = game.moves[0]
    beliefs = Beliefs(probs_TSQC[0], mine_theirs_classes(move.board, move.player), move.player)
    classes, p = beliefs.reading(0)
    assert classes[e4] == 1 and (np.delete(classes, e4) == 2).all()
    np.testing.assert_allclose(p[e4], np.exp(5) / (np.exp(5) + 2), rtol=1e-6)
    wrong = {int(q) for q in np.flatnonzero(beliefs.wrong(0))}
    assert wrong == {parse_square(s) for s in ("d-3", "d-4", "e-3", "e-4", "f-4")}
    faces = belief_faces(beliefs, 0, cursor=None, cell_width=5)
    assert faces[e4] == ("○!", "white", "wrong")  # theirs: white, since black just moved
    assert faces[parse_square("f-4")] == ("·!", "empty", "wrong")
    assert faces[0] == ("·", "empty", "light")
    doubtful = Beliefs(np.full((1, 64, 3), 1 / 3, np.float32), beliefs.truth_Q, 1)
    assert belief_faces(doubtful, 0, None, 5)[0][0] == "●33!"  # a tie reads mine, a-0 is empty
    assert belief_faces(doubtful, 0, None, 3)[0][0] == "●!"


def test_the_engine_reads_the_probes_on_the_cached_residual(tiny_model, tiny_dictionaries, probes):
    engine = ModelEngine(tiny_model, tiny_dictionaries, probes=probes)
    analysis = engine.analyse(GAME.squares)
    expected = independent_probs(tiny_model, probes, GAME.squares)
    np.testing.assert_allclose(analysis.beliefs_TSQC, expected, atol=1e-6)
    np.testing.assert_allclose(
        read_beliefs(tiny_model, probes, torch.as_tensor(tokens_of(GAME.squares))).numpy(),
        expected,
        atol=1e-6,
    )
    session = Session(lambda: engine)
    session.load()
    session.analyse(GAME)
    view = session.view(GAME, 5)
    move = GAME.moves[4]
    np.testing.assert_array_equal(view.beliefs.truth_Q, mine_theirs_classes(move.board, move.player))
    np.testing.assert_allclose(view.beliefs.probs_SQC, expected[4], atol=1e-6)


def test_the_believed_board_follows_an_intervention(tiny_model, tiny_dictionaries, probes):
    engine = ModelEngine(tiny_model, tiny_dictionaries, probes=probes)
    session = Session(lambda: engine)
    session.load()
    session.analyse(GAME)
    trace = session.circuits.trace(GAME.squares, len(GAME.moves))
    feature, _ = trace.active_features(5, "L0M")[0]
    session.circuits.add_edit(GAME.squares, Edit(5, "L0M", feature, value=0.0))
    session.analyse(GAME)
    before, after = session.view(GAME, 5).beliefs, session.view(GAME, 6).beliefs
    np.testing.assert_allclose(before.probs_SQC, engine.analyse(GAME.squares).beliefs_TSQC[4], atol=1e-6)
    clean = engine.analyse(GAME.squares).beliefs_TSQC[5]
    np.testing.assert_allclose(after.probs_SQC[:1], clean[:1], atol=1e-6)  # the embeddings: unchanged
    assert np.abs(after.probs_SQC[1:] - clean[1:]).max() > 1e-4  # after block 0 on: it moved
    # the same edit made by hand on the residual stream, read by the probes
    delta = trace.dictionaries["L0M"].W_dec[feature] * -trace.activations["L0M"][5, feature]
    with tiny_model.hooks([("blocks.0.hook_mlp_out", lambda out: out + torch.nn.functional.pad(
        delta[None, None], (0, 0, 5, out.shape[1] - 6)))]):  # fmt: skip
        expected = independent_probs(tiny_model, probes, GAME.squares)[5]
    np.testing.assert_allclose(after.probs_SQC, expected, atol=1e-5)


def test_board_command_prints_the_reading(probe_weights, tiny_model, probes):
    args = ["board", "--moves", MOVES, "--pos", "4", "--layer", "L0", "--weights", str(probe_weights)]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    expected = independent_probs(tiny_model, probes, GAME.squares)[4, 1]
    truth = mine_theirs_classes(GAME.moves[4].board, GAME.moves[4].player)
    wrong = expected.argmax(-1) != truth
    assert report["wrong"] == int(wrong.sum()) and report["site"] == "after block 0"
    np.testing.assert_allclose([s["probs"]["theirs"] for s in report["squares"]], expected[:, 1], atol=1e-6)
    text = CliRunner().invoke(main, args)
    assert text.exit_code == 0, text.output
    assert f"{int(wrong.sum())} wrong" in text.output and "after block 0" in text.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layer", "L7"], "not a probe site"),
        (["--pos", "40"], "outside the game"),
        (["--moves", "a-0"], "not legal"),
    ],
)
def test_board_command_refuses_bad_input_clearly(probe_weights, args, message):
    base = {"--moves": MOVES, "--weights": str(probe_weights)}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    result = CliRunner().invoke(main, ["board", *[x for pair in base.items() for x in pair]])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def test_board_command_without_probes_says_how_to_train_them(tiny_weights):
    result = CliRunner().invoke(main, ["board", "--moves", MOVES, "--weights", str(tiny_weights)])
    assert result.exit_code != 0 and "train probes" in result.output


def test_trace_explains_a_probe_target_exactly(probe_weights, tiny_model, tiny_dictionaries, probes):
    from othello_tui.circuits.nodes import parse_target
    from othello_tui.circuits.trace import GameTrace

    args = ["trace", "--moves", MOVES, "--pos", "7", "--target", "probe:L1:e-4:mine-theirs", "--json"]
    result = CliRunner().invoke(main, [*args, "--weights", str(probe_weights)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    trace = GameTrace(tiny_model, tiny_dictionaries, tokens_of(GAME.squares), probes)
    value = trace.target_value(parse_target("probe:L1:e-4:mine-theirs", 7))
    assert report["target"]["id"] == "P7probe:L1:e-4:mine-theirs" and report["target"]["kind"] == "probe"
    assert report["target"]["value"] == pytest.approx(value, rel=1e-5)
    assert report["sum"] == pytest.approx(value, rel=1e-5, abs=1e-5)
