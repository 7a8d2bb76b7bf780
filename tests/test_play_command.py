"""``othello-tui play`` before the app starts: refusals that must come at once, as one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from othello_tui.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_without_a_terminal_play_exits_at_once_naming_it(tmp_path):
    command = [sys.executable, "-m", "othello_tui", "play", "--weights", str(tmp_path)]
    done = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "play needs a terminal" in done.stderr and "stdin" in done.stderr


def test_an_unavailable_device_is_a_one_line_error(monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(main, ["play", "--weights", str(tmp_path), "--device", "cuda"])
    assert result.exit_code == 1 and "no CUDA GPU" in result.output and "Traceback" not in result.output


def test_eval_model_record_says_it_rewrote_the_model_card(tiny_weights, tmp_path):
    import json
    import shutil

    for path in tiny_weights.glob("othello_gpt.*"):
        shutil.copy(path, tmp_path)
    result = CliRunner().invoke(
        main, ["eval", "model", "--games", "20", "--json", "--record", "--weights", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert f"Recorded these metrics in {tmp_path / 'othello_gpt.json'}" in result.stderr
    assert json.loads(result.stdout) == json.loads((tmp_path / "othello_gpt.json").read_text())["metrics"]
    quiet = CliRunner().invoke(main, ["eval", "model", "--games", "20", "--json", "--weights", str(tmp_path)])
    assert "Recorded" not in quiet.stderr


def test_train_model_keeps_its_checkpoint_beside_out(monkeypatch, tmp_path):
    from othello_tui.cli.groups import DEFAULT_CHECKPOINTS, DEFAULT_WEIGHTS, default_checkpoint

    calls = []

    def fake_train(cfg, out_dir, checkpoint, **_):
        calls.append((out_dir, checkpoint))
        raise ValueError("stopped by the test")

    monkeypatch.setattr("othello_tui.model.train.train_model", fake_train)
    result = CliRunner().invoke(main, ["train", "model", "--tiny", "--out", str(tmp_path / "mine")])
    assert result.exit_code == 1 and "stopped by the test" in result.output
    assert calls == [(tmp_path / "mine", tmp_path / "mine.checkpoints" / "model.safetensors")]
    assert (
        default_checkpoint(DEFAULT_WEIGHTS, "model.safetensors") == DEFAULT_CHECKPOINTS / "model.safetensors"
    )
    shipped = DEFAULT_WEIGHTS / "residual"  # train dictionaries: its shipped folders too, others beside --out
    assert default_checkpoint(shipped, "d.safetensors") == DEFAULT_CHECKPOINTS / "d.safetensors"
    assert (
        default_checkpoint(tmp_path / "dicts", "d.safetensors")
        == tmp_path / "dicts.checkpoints" / "d.safetensors"
    )


def test_legality_by_move_is_printed_as_numbers_not_a_stretched_sparkline():
    from othello_tui.cli.model import legality_rows

    by_move = [1.0] * 20 + [0.96] + [0.999] * 38  # moves 2…60
    lines = legality_rows(by_move)
    assert lines[0] == "top-1 legality (%) by move number:" and len(lines) == 1 + 6
    assert lines[3].split()[:3] == ["moves", "22–31", "96.0"] and lines[-1].startswith("  moves 52–60")
    assert not any(c in "".join(lines) for c in "▁▂▃▄▅▆▇█")


def test_train_dictionaries_piped_prints_whole_lines(tiny_model, tmp_path, capsys):
    from othello_tui.dictionary.train import train_dictionaries
    from othello_tui.dictionary.trainer import DictionaryTrainConfig

    cfg = DictionaryTrainConfig(
        modules=("L0A",), d_sae=32, k=4, tokens=4 * 512, minutes=None, batch_tokens=512,
        checkpoint_every_minutes=0.0,  # a checkpoint, and so a log line, after every step
    )  # fmt: skip
    train_dictionaries(tiny_model, cfg, tmp_path / "out", tmp_path / "checkpoint.safetensors")
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines and all(" min · " in line and "tokens · FVU/L0 L0A" in line for line in lines)
    assert "━" not in printed and "0:0" not in printed and "dead" not in printed  # no Live frame
