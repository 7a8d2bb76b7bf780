"""The real `othello-tui play` command in a real terminal (tmux): it starts, draws the labelled
board, responds to keys, and explains missing weights. Skipped only where tmux is missing."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from othello_tui.cli import main

COMMAND = shutil.which("othello-tui")
pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None or COMMAND is None, reason="needs tmux and the installed othello-tui command"
)


class Terminal:
    """A tmux server of our own (its own socket file), one session, 100×30."""

    def __init__(self, command: str, socket: Path):
        self.socket = str(socket)
        self._tmux("new-session", "-d", "-x", "100", "-y", "30", f"{command}; echo EXIT=$?; sleep 30")

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-S", self.socket, *args], capture_output=True, text=True, check=True
        ).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p")

    def send(self, *keys: str) -> None:
        self._tmux("send-keys", *keys)

    def wait_for(self, text: str, timeout: float = 120.0, gone: bool = False) -> str:
        """The screen once it shows ``text`` (or, with ``gone``, once it no longer does)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if (text in screen) != gone:
                return screen
            time.sleep(0.1)
        raise AssertionError(
            f"{text!r} never {'went' if gone else 'appeared'}; the screen shows:\n{self.screen()}"
        )

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def terminal(tmp_path):
    opened: list[Terminal] = []

    def open_(command: str) -> Terminal:
        opened.append(Terminal(command, tmp_path / f"tmux-{len(opened)}.sock"))
        return opened[-1]

    yield open_
    for t in opened:
        t.close()


def test_the_command_draws_the_labelled_board_and_responds_to_keys(terminal, tiny_weights):
    term = terminal(f'{COMMAND} play --weights {tiny_weights} --device cpu --moves "e-5 d-5 c-3"')
    screen = term.wait_for("move 3 of 3")
    lines = screen.splitlines()
    assert any(line.split()[:8] == list("01234567") for line in lines)
    assert [line[0] for line in lines[2:] if line[:2] in {f"{r} " for r in "abcdefgh"}] == list("abcdefgh")
    term.wait_for("Predictions for move 4")
    term.wait_for("%")  # the model loaded in the background and predicted
    term.send("Left")
    term.wait_for("move 2 of 3")
    term.send("?")
    term.wait_for("one move back")
    term.send("Escape")  # alone: Escape and q sent together read as alt+q
    term.wait_for("one move back", gone=True)
    term.send("q")
    term.wait_for("EXIT=0")


def test_missing_weights_are_explained_in_the_app(terminal, tmp_path):
    term = terminal(f"{COMMAND} play --weights {tmp_path / 'none'} --device cpu")
    screen = term.wait_for("othello-tui train model")
    assert "Traceback" not in screen
    term.wait_for("game 0 (seed 0)")  # the board and the games work without a model
    term.send("q")
    term.wait_for("EXIT=0")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--moves", "f-4 e-9"], "--moves: move 2 'e-9': not a square"),
        (["--moves", "f-4", "--game-index", "3"], "give --moves or --game-index, not both"),
    ],
)
def test_bad_arguments_get_a_message_not_a_traceback(args, message):
    result = CliRunner().invoke(main, ["play", *args])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
