"""``othello-tui trace``, ``intervene`` and ``eval circuits`` on a tiny model and dictionaries
written to disk as the shipped ones are."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from click.testing import CliRunner

from othello_tui.circuits.intervention import intervene, parse_edit
from othello_tui.circuits.nodes import parse_target
from othello_tui.circuits.trace import GameTrace
from othello_tui.cli import main, output
from othello_tui.dictionary.io import save_dictionary
from othello_tui.game.generator import generate_games
from othello_tui.game.squares import SQUARE_TO_TOKEN, square_name
from othello_tui.model.weights import model_fingerprint

SQUARES = [int(s) for s in generate_games(1, 3).squares[0][:20]]
MOVES = " ".join(square_name(s) for s in SQUARES)


@pytest.fixture(scope="module")
def weights(tmp_path_factory, tiny_weights, tiny_model, tiny_dictionaries):
    directory = tmp_path_factory.mktemp("circuit_weights")
    for name in ("othello_gpt.safetensors", "othello_gpt.json"):
        shutil.copy(tiny_weights / name, directory / name)
    for dictionary in tiny_dictionaries.values():
        save_dictionary(
            dictionary, directory / "dictionaries", {"model_fingerprint": model_fingerprint(tiny_model)}
        )
    return directory


@pytest.fixture(scope="module")
def trace(tiny_model, tiny_dictionaries):
    return GameTrace(tiny_model, tiny_dictionaries, [int(SQUARE_TO_TOKEN[s]) for s in SQUARES])


def run(weights, *args):
    return CliRunner().invoke(main, [*args, "--weights", str(weights)])


def test_trace_prints_an_indented_tree(weights, trace):
    result = run(weights, "trace", "--moves", MOVES, "--pos", "12", "--target", "logit:e-1", "--top", "4")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    value = trace.target_value(parse_target("logit:e-1", 12))
    assert lines[0].startswith(f"logit:e-1 at P12 (move 13) = {value:.4f}")
    expected = trace.contributions(parse_target("logit:e-1", 12)).top(4)
    assert [line.split()[1] for line in lines[1:5]] == [node.id for node, _ in expected]
    assert [line.split()[2] for line in lines[1:5]] == [f"{v:+.4f}" for _, v in expected]
    assert "… others" in lines[5]
    from_end = run(weights, "trace", "--moves", MOVES, "--pos", "-8", "--target", "logit:e-1", "--top", "4")
    assert from_end.output == result.output  # 20 moves: -8 is position 12


def test_piped_output_is_not_wrapped_at_80_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # as test runners and some shells set it
    wide = output.console()  # stdout is captured here: not a terminal
    assert not wide.is_terminal and wide.width == output.PIPE_WIDTH
    with wide.capture() as captured:
        wide.print("x" * 150)
    assert captured.get() == "x" * 150 + "\n"


def test_trace_json_sums_and_nests(weights, trace):
    args = [
        "trace",
        "--moves",
        MOVES,
        "--pos",
        "15",
        "--target",
        "feature:L1M" + str(trace.active_features(15, "L1M")[0][0]),
    ]
    result = run(weights, *args, "--depth", "2", "--top", "30", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    feature = args[-1].removeprefix("feature:")
    assert data["target"] == {
        "kind": "feature",
        "id": f"P15{feature}",
        "position": 15,
        "value": pytest.approx(data["sum"], rel=1e-5),
    }
    assert len(data["contributions"]) == 30
    assert sum(item["value"] for item in data["contributions"]) + data["rest"] == pytest.approx(
        data["sum"], abs=1e-6
    )
    assert all(item["label"] is None for item in data["contributions"])
    nested = [item for item in data["contributions"] if "children" in item]
    assert nested == [item for item in data["contributions"] if re.fullmatch(r"P\d+L\d[AM]\d+", item["node"])]
    for item in nested:
        node = trace.node(item["node"])
        assert item["sum"] == pytest.approx(
            trace.activation(node.position, node.module, node.feature), rel=1e-5
        )
        assert sum(c["value"] for c in item["children"]) + item["rest"] == pytest.approx(
            item["sum"], abs=1e-6
        )


def test_trace_score_pairs_and_dot(weights):
    result = run(
        weights, "trace", "--moves", MOVES, "--pos", "9", "--target", "score:L1H2:4", "--top", "3", "--json"
    )
    assert result.exit_code == 0, result.output
    pairs = json.loads(result.output)["contributions"]
    assert all(item["node"] == f"{item['query']} × {item['key']}" for item in pairs)
    assert all(item["query"].startswith("P9") and item["key"].startswith("P4") for item in pairs)
    result = run(
        weights, "trace", "--moves", MOVES, "--pos", "9", "--target", "logit:c-4", "--depth", "2", "--dot"
    )
    assert result.exit_code == 0, result.output
    dot = result.output
    header, graph = dot.split("digraph trace {\n")
    assert all(line.startswith("// ") for line in header.splitlines()) and graph.rstrip().endswith("}")
    assert f"// moves: {MOVES}" in header and "// reproduce: othello-tui trace --moves" in header
    assert graph.count('-> "P9logit:c-4"') == 11  # 10 contributors and the others


def test_intervene_prints_a_board_of_logit_changes(weights, trace):
    feature, value = trace.active_features(10, "L0M")[0]
    edit = f"P10L0M{feature}=0"
    result = run(
        weights, "intervene", "--moves", MOVES, "--pos", "12", "--set", edit, "--watch", f"P12L1M{feature}"
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"P10L0M{feature}: {value:.4f} → 0.0000"
    header = next(i for i, line in enumerate(lines) if line.split() == [str(c) for c in range(8)])
    rows = [line.split() for line in lines[header + 1 : header + 9]]
    assert [row[0] for row in rows] == list("abcdefgh")
    delta_V = intervene(trace, [parse_edit(edit)]).delta_TV[12]
    for r, row in enumerate(rows):
        for c, cell in enumerate(row[1:]):
            square = 8 * r + c
            assert cell == (
                "·" if SQUARE_TO_TOKEN[square] == 0 else f"{float(delta_V[SQUARE_TO_TOKEN[square]]):+.2f}"
            )
    assert lines[-1].startswith(f"P12L1M{feature}: ")


def test_intervene_says_when_nothing_changes_and_checks_watch_first(weights, trace):
    feature, _ = trace.active_features(5, "L1M")[0]  # the last module: it reaches only its own position
    result = run(weights, "intervene", "--moves", MOVES, "--pos", "12", "--set", f"P5L1M{feature}=0")
    assert result.exit_code == 0, result.output
    assert "No next-move probability at P12 changes" in result.output
    assert "Largest probability changes" not in result.output
    bad = run(
        weights, "intervene", "--moves", MOVES, "--pos", "12", "--set", f"P5L1M{feature}=0", "--watch", "x"
    )
    assert bad.exit_code == 1 and bad.output.startswith("Error: 'x' is not a feature")  # nothing before it


def test_eval_circuits_json(weights):
    result = run(weights, "eval", "circuits", "--games", "2", "--positions", "2", "--top", "3", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["ablations"] == 12 and summary["spearman"]["frozen"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "args, message",
    [
        (["trace", "--moves", MOVES + " a-0", "--target", "logit:e-1"], "move 21 'a-0': not legal"),
        (["trace", "--moves", "f-4 z-9", "--target", "logit:e-1"], "move 2 'z-9'"),
        (["trace", "--moves", MOVES, "--pos", "20", "--target", "logit:e-1"], "positions 0…19"),
        (["trace", "--moves", MOVES, "--pos", "-21", "--target", "logit:e-1"], "--pos -21 is outside"),
        (["trace", "--moves", MOVES, "--target", "feature:L7M1"], "no module L7M"),
        (["trace", "--moves", MOVES, "--target", "feature:L1M64"], "features 0…63"),
        (["trace", "--moves", MOVES, "--target", "feature:L1Mx"], "not a feature"),
        (["trace", "--moves", MOVES, "--target", "logit:e-3"], "centre square"),
        (["trace", "--moves", MOVES, "--pos", "3", "--target", "score:L0H1:9"], "causal"),
        (["trace", "--moves", MOVES, "--target", "logit:e-1", "--json", "--dot"], "exclude each other"),
        (["intervene", "--moves", MOVES, "--pos", "5", "--set", "P9L0A1=0"], "after --pos 5"),
        (["intervene", "--moves", MOVES, "--set", "P9L0A1=zero"], "expected e.g. P7L1M379=0"),
        (["intervene", "--moves", MOVES, "--set", "P30L0A1=0"], "outside this game"),
        (["intervene", "--moves", MOVES, "--set", "P2L9Z9999=0"], "'P2L9Z9999' is not a feature"),
        (["intervene", "--moves", MOVES, "--set", "P2L0A1=1e40"], "out of range"),
        (["intervene", "--moves", MOVES, "--set", "P2L0A1*nan"], "out of range"),
    ],
)
def test_clear_errors(weights, args, message):
    result = run(weights, *args)
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.exception
    assert message in result.output


def test_inactive_features_are_clear_errors(weights, trace):
    inactive = next(f for f in range(64) if trace.activation(11, "L1M", f) == 0)
    for args in (
        ["trace", "--moves", MOVES, "--pos", "11", "--target", f"feature:L1M{inactive}"],
        ["intervene", "--moves", MOVES, "--set", f"P11L1M{inactive}*2"],
    ):
        result = run(weights, *args)
        assert result.exit_code == 1 and f"L1M{inactive} is not active at position 11" in result.output


def test_without_dictionaries_modules_are_whole_nodes(tmp_path, weights):
    """A model with no dictionaries folder (a checkpoint just downloaded) still traces logits,
    each module one node, and says so; a feature target is then a clear error."""
    for name in ("othello_gpt.safetensors", "othello_gpt.json"):
        shutil.copy(weights / name, tmp_path / name)
    result = run(tmp_path, "trace", "--moves", MOVES, "--target", "logit:e-1")
    assert result.exit_code == 0, result.output
    assert "no dictionaries" in result.stderr and "L1M " in result.stdout
    result = run(tmp_path, "trace", "--moves", MOVES, "--target", "feature:L0A1")
    assert result.exit_code == 1 and "no dictionary loaded for L0A" in result.output


def test_an_intervention_whose_logits_overflow_is_refused(trace):
    from othello_tui.circuits.edits import Edit
    from othello_tui.circuits.nodes import CircuitError

    huge = Edit(
        5, "L0A", 1, value=1e40
    )  # past what parse_edit accepts (inf in float32): the rerun itself refuses
    with pytest.raises(CircuitError, match="overflow"):
        intervene(trace, [huge])


def test_trace_shows_the_users_notes_as_the_app_does(
    weights, trace, tiny_dictionaries, tmp_path, monkeypatch
):
    from othello_tui.cli import circuits as circuits_cli
    from othello_tui.features import dictionaries_hash
    from othello_tui.notes import Note, NoteStore, notes_path

    monkeypatch.setattr(circuits_cli, "DEFAULT_CACHE_DIR", tmp_path)
    feature = "feature:L1M" + str(trace.active_features(15, "L1M")[0][0])
    args = ["trace", "--moves", MOVES, "--pos", "15", "--target", feature, "--top", "30"]
    plain = json.loads(run(weights, *args, "--json").output)
    noted = next(
        item["node"] for item in plain["contributions"] if re.fullmatch(r"P\d+L\d[AM]\d+", item["node"])
    )
    feature_id = re.sub(r"^P\d+", "", noted)
    hashed = dictionaries_hash(tiny_dictionaries)
    NoteStore(notes_path(tmp_path, hashed), hashed).set(
        feature_id, Note("diagonal flipper", "seen in game 7")
    )
    data = json.loads(run(weights, *args, "--json").output)
    item = next(item for item in data["contributions"] if item["node"] == noted)
    assert item["label"] == "✎ diagonal flipper"
    assert item["note"] == {"label": "diagonal flipper", "notes": "seen in game 7"}
    assert all("note" not in other for other in data["contributions"] if other["node"] != noted)
    printed = run(weights, *args).output
    assert f"{noted}" in printed and "✎ diagonal flipper" in printed
    notes_path(tmp_path, hashed).write_text("not json")
    broken = run(weights, *args)
    assert broken.exit_code == 0 and "your notes are not shown" in broken.output
