"""The HDF5 game corpus contract and the basic command line."""

from __future__ import annotations

import subprocess
import sys
import zlib

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from othello_tui import __version__
from othello_tui.cli import main
from othello_tui.game import corpus
from othello_tui.game.generator import CHUNK, MAX_GAME_INDEX, generate_games
from othello_tui.game.rules import Game
from othello_tui.game.squares import SQUARE_TO_TOKEN, TOKEN_TO_SQUARE
from othello_tui.tui.screens.prompt import parse_game_index


def test_games_command_writes_the_documented_datasets(tmp_path):
    out = tmp_path / "games.h5"
    result = CliRunner().invoke(main, ["games", "--n", "50", "--seed", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        assert dict(f.attrs) == {"seed": 4, "n_games": 50, "format_version": corpus.FORMAT_VERSION}
        shapes = {name: (f[name].shape, f[name].dtype) for name in f}
    assert shapes == {
        "tokens": ((50, 60), np.uint8),
        "squares": ((50, 60), np.int8),
        "player": ((50, 60), np.int8),
        "board": ((50, 60, 64), np.int8),
        "flipped": ((50, 60, 64), bool),
        "legal": ((50, 60, 64), bool),
    }
    data = corpus.read_corpus(out)
    games = generate_games(50, seed=4)
    np.testing.assert_array_equal(data["squares"], games.squares)
    played = data["squares"] >= 0
    np.testing.assert_array_equal(TOKEN_TO_SQUARE[data["tokens"]][played], data["squares"][played])
    assert (data["tokens"][~played] == 0).all() and (data["player"][~played] == 0).all()
    # the board after each move holds the move itself, in the mover's colour
    rows, cols = np.nonzero(played)
    assert (data["board"][rows, cols, data["squares"][rows, cols]] == data["player"][rows, cols]).all()
    assert not data["legal"][~played].any()


def test_a_corpus_of_several_batches_holds_the_rules_labels(tmp_path):
    """Two generator batches, the second ending in a short HDF5 chunk: every dataset equals the
    generator's games, and sampled games (either side of each boundary) equal the plain rules."""
    assert CHUNK % corpus.CHUNK_GAMES == 0  # the writer relies on batches holding whole chunks
    n = CHUNK + corpus.CHUNK_GAMES + 5
    out = tmp_path / "games.h5"
    corpus.write_corpus(out, n, seed=7, show_progress=False)
    data = corpus.read_corpus(out)
    games = generate_games(n, seed=7)
    expected = {name: labels(games) for name, (_, _, labels) in corpus.DATASETS.items()}
    for name, array in expected.items():
        assert data[name].dtype == array.dtype and data[name].shape == array.shape, name
        np.testing.assert_array_equal(data[name], array, err_msg=name)
    short = int(np.flatnonzero(games.lengths < 60)[0])  # a game that ends before the board is full
    for k in (0, short, CHUNK - 1, CHUNK, n - 1):
        game = Game.from_squares([int(s) for s in data["squares"][k] if s >= 0])
        for t, move in enumerate(game.moves):
            assert (
                data["player"][k, t] == move.player and data["tokens"][k, t] == SQUARE_TO_TOKEN[move.square]
            )
            np.testing.assert_array_equal(data["board"][k, t], move.board)
            assert np.flatnonzero(data["flipped"][k, t]).tolist() == list(move.flipped)
            assert np.flatnonzero(data["legal"][k, t]).tolist() == list(move.legal_next)
        assert (data["board"][k, len(game.moves) :] == game.moves[-1].board).all()  # the final board


def test_corpus_chunks_are_standard_deflate(tmp_path):
    """Any HDF5 reader can open the corpus: the chunks are zlib streams under the gzip filter."""
    out = tmp_path / "games.h5"
    corpus.write_corpus(out, 30, seed=1, show_progress=False)
    with h5py.File(out) as f:
        board = f["board"]
        assert board.compression == "gzip" and board.chunks == (30, 60, 64)
        _, chunk = board.id.read_direct_chunk((0, 0, 0))
        stored = np.frombuffer(zlib.decompress(chunk), np.int8).reshape(board.chunks)
        np.testing.assert_array_equal(stored, board[()])


def test_interrupted_corpus_leaves_no_file(tmp_path, monkeypatch):
    out = tmp_path / "games.h5"

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(corpus, "iter_games", explode)
    with pytest.raises(KeyboardInterrupt):
        corpus.write_corpus(out, 10, 0, show_progress=False)
    assert list(tmp_path.iterdir()) == []


def test_games_command_rejects_bad_arguments(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["games", "--n", "0", "--out", str(tmp_path / "x.h5")])
    assert result.exit_code == 2 and "Invalid value for '--n'" in result.output
    result = runner.invoke(main, ["games", "--n", "5", "--out", str(tmp_path / "missing" / "x.h5")])
    assert result.exit_code == 1 and "does not exist" in result.output and "Traceback" not in result.output


def test_help_and_version():
    runner = CliRunner()
    assert runner.invoke(main, ["--version"]).output.strip() == f"othello-tui, version {__version__}"
    help_text = runner.invoke(main, ["--help"]).output
    for command in ("games", "train", "eval"):
        assert command in help_text


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("othello_tui.game.generator", ("torch", "textual", "h5py")),
        ("othello_tui.game.rules", ("torch", "textual", "h5py")),
        ("othello_tui.model.transformer", ("textual",)),
        ("othello_tui.cli", ("torch", "textual", "h5py")),
        ("othello_tui.features.format", ("textual", "h5py")),  # hashing weights needs no HDF5
    ],
)
def test_layers_import_only_downward(module, forbidden):
    code = f"import sys, {module}; print(','.join(m for m in {forbidden!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_every_name_of_the_features_package_loads_on_first_use():
    import othello_tui.features as features

    assert all(getattr(features, name).__name__ == name for name in features.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        features.nothing  # noqa: B018


@pytest.mark.parametrize(
    "args",
    [
        ["games", "--n", "5", "--seed", "-1", "--out", "never.h5"],
        ["cache", "build", "--seed", "-1"],
        ["eval", "model", "--seed", "-1"],
        ["eval", "circuits", "--seed", "-1"],
        ["play", "--seed", "-1"],
        ["play", "--game-index", str(MAX_GAME_INDEX + 1)],
        ["train", "model", "--minutes", "0"],
        ["train", "dictionaries", "--minutes", "-1"],
    ],
)
def test_out_of_range_options_are_one_line_errors(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "is not in the range" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert list(tmp_path.iterdir()) == []


def test_the_game_prompt_bounds_the_index():
    assert parse_game_index(str(MAX_GAME_INDEX)) == MAX_GAME_INDEX
    with pytest.raises(ValueError, match="go up to 199,999"):
        parse_game_index(str(MAX_GAME_INDEX + 1))
