"""The session store: a round trip writes exactly the documented JSON, bad files are each
refused with a message, and interventions on features the dictionaries lack are reported."""

from __future__ import annotations

import json

import pytest

from othello_tui.circuits.edits import BeliefEdit, Edit
from othello_tui.circuits.pruning import GraphSettings
from othello_tui.session_file import (
    SavedScreen,
    SavedSession,
    SessionFileError,
    load_session,
    restore_interventions,
    save_session,
)

MOVES = "e-5 d-5 c-3 d-2 e-1 f-5 f-6 e-2 g-5 c-4 d-6 c-5"
GRAPH = SavedScreen("graph", "logit:e-1", 9, graph=GraphSettings(120, 0.7, 0.95))
TREE = SavedScreen("tree", "feature:L2M8", 8, 5, 0.25, frozenset({("P8L1M3", "P6L0A2"), ("P8L1M3",)}))
SAVED = SavedSession(0, 17, MOVES, 9, ("P7L1M3=0", "P8:L3:e-4=theirs"), TREE)


def test_a_session_round_trips_exactly(tmp_path):
    path = tmp_path / "s.json"
    save_session(path, SAVED)
    assert path.read_text(encoding="utf-8") == (
        "{\n"
        '  "format": "othello-tui session",\n'
        '  "version": 1,\n'
        '  "seed": 0,\n'
        '  "game_index": 17,\n'
        f'  "moves": "{MOVES}",\n'
        '  "n_moves": 9,\n'
        '  "interventions": [\n'
        '    "P7L1M3=0",\n'
        '    "P8:L3:e-4=theirs"\n'
        "  ],\n"
        '  "screen": {\n'
        '    "name": "tree",\n'
        '    "target": "feature:L2M8",\n'
        '    "position": 8,\n'
        '    "top": 5,\n'
        '    "threshold": 0.25,\n'
        '    "open": [\n'
        "      [\n"
        '        "P8L1M3"\n'
        "      ],\n"
        "      [\n"
        '        "P8L1M3",\n'
        '        "P6L0A2"\n'
        "      ]\n"
        "    ]\n"
        "  }\n"
        "}\n"
    )
    assert load_session(path) == SAVED
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temporary file left


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        ("not json", "cannot read the session file"),
        ('{"format": "othello-tui notes", "version": 1}', "is not an othello-tui session file"),
        ("[1, 2]", "is not an othello-tui session file"),
        ('{"format": "othello-tui session", "version": 2}', "session format version 2; this version reads 1"),
        ('{"format": "othello-tui session", "version": 1, "seed": 0}', "malformed session"),
        (
            json.dumps({**SAVED.to_dict(), "n_moves": "9"}),
            "malformed session",
        ),
        (
            json.dumps({**SAVED.to_dict(), "moves": "e-5 a-1"}),
            "its moves are illegal (move 2 'a-1': not legal for white",
        ),
        (json.dumps({**SAVED.to_dict(), "n_moves": 13}), "move 13 is outside its game of 12 moves"),
        (json.dumps({**SAVED.to_dict(), "screen": {"name": "map"}}), "unknown screen 'map'"),
        (
            json.dumps({**SAVED.to_dict(), "screen": {**TREE.to_dict(), "open": [[1]]}}),
            "not a list of strings",
        ),
        (json.dumps({**SAVED.to_dict(), "screen": {**TREE.to_dict(), "threshold": "x"}}), "is not a number"),
        (
            json.dumps({**SAVED.to_dict(), "screen": {**GRAPH.to_dict(), "edge_threshold": 2}}),
            "between 0 and 1",
        ),
        (json.dumps({**SAVED.to_dict(), "screen": {**GRAPH.to_dict(), "features": True}}), "not an integer"),
    ],
)
def test_a_bad_file_is_refused_with_a_message(tmp_path, contents, message):
    path = tmp_path / "s.json"
    path.write_text(contents, encoding="utf-8")
    with pytest.raises(SessionFileError) as caught:
        load_session(path)
    assert message in str(caught.value)


def test_a_missing_file_is_refused_with_a_message(tmp_path):
    with pytest.raises(SessionFileError, match="cannot read the session file"):
        load_session(tmp_path / "absent.json")


def test_interventions_on_missing_features_are_left_out_and_named():
    texts = ("P7L1M3=0", "P7L1M99=0", "P7L5M1*2", "P8:L3:e-4=theirs", "P20L1M3=0", "junk")
    edits, problems = restore_interventions(texts, {"L1M": 10}, 12)
    assert edits == [Edit(7, "L1M", 3, value=0.0), BeliefEdit(8, 4, 36, 1)]
    assert problems[0] == "P7L1M99=0: feature L1M99 is not in the loaded dictionaries"
    assert problems[1] == "P7L5M1*2: feature L5M1 is not in the loaded dictionaries"
    assert problems[2] == "P20L1M3=0: position 20 is outside the game of 12 moves"
    assert "junk" in problems[3]


@pytest.mark.parametrize(
    "screen",
    [
        None,
        SavedScreen("feature", "L2M8"),
        SavedScreen("attention", position=4),
        TREE,
        GRAPH,
    ],
)
def test_every_screen_round_trips(tmp_path, screen):
    path = tmp_path / "s.json"
    saved = SavedSession(0, None, MOVES, 12, (), screen)
    save_session(path, saved)
    assert load_session(path) == saved
