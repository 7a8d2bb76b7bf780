"""What an export records about where it came from, and the commands that reproduce it."""

from __future__ import annotations

import shlex

from click.testing import CliRunner

from othello_tui.circuits.provenance import Provenance
from othello_tui.circuits.pruning import GraphSettings
from othello_tui.cli import main
from othello_tui.tui.exports import svg_with_provenance, write_files

MOVES = "f-4 f-5 e-5 d-5"


def provenance(**changes) -> Provenance:
    values = dict(
        moves=MOVES, position=3, target="logit:c-4", top=5, threshold=None, depth=2,
        model_fingerprint="ab" * 8, dictionaries_hash="cd" * 8,
    )  # fmt: skip
    return Provenance(**(values | changes))


def test_commands_name_the_game_the_way_it_was_given():
    assert provenance().commands() == [
        f"othello-tui trace --moves '{MOVES}' --pos 3 --target logit:c-4 --depth 2 --top 5 --json"
    ]
    dataset = provenance(seed=3, game_index=17, threshold=0.05, interventions=("P2L0A1=0", "P3L1M2*2"))
    trace, intervene = dataset.commands()
    assert "--seed 3 --game-index 17 --pos 3" in trace and trace.endswith("--threshold 0.05 --json")
    assert (
        intervene == "othello-tui intervene --seed 3 --game-index 17 --pos 3 --set P2L0A1=0 --set 'P3L1M2*2'"
    )
    assert dataset.to_dict()["interventions"] == ["P2L0A1=0", "P3L1M2*2"]


def test_file_names_are_unique_per_game_position_and_target():
    stems = {
        provenance().file_stem("P3logit:c-4"),
        provenance(moves=MOVES + " c-3").file_stem("P3logit:c-4"),
        provenance().file_stem("P2logit:c-4"),
        provenance().file_stem("P3L0A1"),
        provenance(seed=3, game_index=17).file_stem("P3logit:c-4"),
        provenance(seed=4, game_index=17).file_stem("P3logit:c-4"),
    }
    assert len(stems) == 6 and "tree-s3g17-P3logit-c-4" in stems
    assert all(stem.replace("-", "").replace(".", "").isalnum() for stem in stems)


def test_written_files_never_replace_older_ones(tmp_path):
    files = {".json": "{}\n", ".dot": "digraph {}\n"}
    first = write_files(tmp_path, "tree-x", files)
    (tmp_path / "tree-x-2.dot").write_text("someone else's")
    second = write_files(tmp_path, "tree-x", {".json": "[1]\n", ".dot": "digraph {a}\n"})
    assert [p.name for p in first] == ["tree-x.json", "tree-x.dot"]
    assert [p.name for p in second] == ["tree-x-3.json", "tree-x-3.dot"]  # -2 is partly taken
    assert (tmp_path / "tree-x.json").read_text() == "{}\n" and (
        tmp_path / "tree-x-2.dot"
    ).read_text() == "someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["tree-x.json", "tree-x.dot", "tree-x-2.dot", "tree-x-3.json", "tree-x-3.dot"]
    )


def test_the_svg_carries_the_provenance_as_its_description():
    svg = svg_with_provenance(
        '<svg class="x" viewBox="0 0 1 1"><text>a</text></svg>', provenance(interventions=("P2L0A1=0",))
    )
    assert svg.startswith('<svg class="x" viewBox="0 0 1 1"><desc>moves: f-4 f-5 e-5 d-5\n')
    assert "reproduce: othello-tui intervene --moves &#x27;f-4 f-5 e-5 d-5&#x27;" in svg and svg.endswith(
        "<text>a</text></svg>"
    )
    assert "note: the trace command expands every node to this depth; the export, the opened ones" in svg


def test_the_intervene_command_runs(weights_dir):
    _, command = provenance(interventions=("P2L0A1=1.5",)).commands()
    program, *args = shlex.split(command)
    result = CliRunner().invoke(main, [*args, "--weights", str(weights_dir)])
    assert program == "othello-tui" and result.exit_code == 0, result.output
    assert result.output.startswith("P2L0A1: ") and "→ 1.5000" in result.output


def test_a_graphs_provenance_names_its_settings_and_command():
    graph = Provenance.of_graph(
        MOVES, 3, "logit:c-4", GraphSettings(50, 0.7, 0.95), "ab" * 8, "cd" * 8, 3, 17
    )
    assert graph.commands() == [
        "othello-tui trace --seed 3 --game-index 17 --pos 3 --target logit:c-4 --graph --graph-nodes 50 "
        "--node-threshold 0.7 --edge-threshold 0.95"
    ]
    data = graph.to_dict()
    assert data["graph"] == {"max_features": 50, "node_threshold": 0.7, "edge_threshold": 0.95}
    assert not {"top", "threshold", "depth"} & set(data) and "graph" not in provenance().to_dict()
    assert graph.file_stem("P3logit:c-4") == "graph-s3g17-P3logit-c-4"
