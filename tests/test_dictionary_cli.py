"""``othello-tui train dictionaries`` and ``othello-tui eval dictionaries`` end to end on the tiny model."""

from __future__ import annotations

import json

from click.testing import CliRunner

from othello_tui.cli import main

SMALL = ["--d-sae", "64", "--k", "8,L1M=5", "--batch", "256", "--threads", "1"]


def test_train_resume_and_evaluate(tmp_path, tiny_weights):
    out, checkpoint = tmp_path / "dicts", tmp_path / "dicts.safetensors"
    runner = CliRunner()
    common = [
        "train",
        "dictionaries",
        "--weights",
        str(tiny_weights),
        "--out",
        str(out),
        "--checkpoint",
        str(checkpoint),
    ]
    result = runner.invoke(main, [*common, "--modules", "l1m,L0A", "--tokens", "3000", *SMALL])
    assert result.exit_code == 0, result.output
    assert "wrote 2 dictionaries" in result.output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "L0A",
        "L0A/cfg.json",
        "L0A/sae_weights.safetensors",
        "L1M",
        "L1M/cfg.json",
        "L1M/sae_weights.safetensors",
    ]
    assert json.loads((out / "L0A" / "cfg.json").read_text())["k"] == 8
    assert json.loads((out / "L1M" / "cfg.json").read_text())["k"] == 5
    first = json.loads((out / "L1M" / "cfg.json").read_text())["metadata"]["training"]
    assert first["tokens"] >= 3000 and first["settings"]["modules"] == ["L0A", "L1M"]

    result = runner.invoke(main, [*common, "--modules", "L0A,L1M", "--tokens", "6000", "--resume", *SMALL])
    assert result.exit_code == 0, result.output
    second = json.loads((out / "L1M" / "cfg.json").read_text())["metadata"]["training"]
    assert second["steps"] > first["steps"] and second["tokens"] >= 6000

    result = runner.invoke(main, [*common, "--modules", "L0A", "--tokens", "6000", "--resume", "--k", "8"])
    assert result.exit_code != 0 and "drop --resume" in result.output

    evaluate = [
        "eval",
        "dictionaries",
        "--weights",
        str(tiny_weights),
        "--dictionaries",
        str(out),
        "--games",
        "20",
    ]
    result = runner.invoke(main, evaluate)
    assert result.exit_code == 0, result.output
    for text in ("L0A", "L1M", "FVU", "spliced legal", "coverage", "board rec.", "legal cov."):
        assert text in result.output

    result = runner.invoke(main, [*evaluate, "--json", "--save"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    keys = {
        "fvu",
        "rel_error",
        "l0",
        "alive_frac",
        "spliced_legal_top1",
        "spliced_kl",
        "coverage",
        "board_reconstruction",
        "legal_coverage",
    }
    assert set(report["modules"]) == {"L0A", "L1M"} and keys <= set(report["modules"]["L0A"])
    assert 0.0 <= report["model"]["legal_top1"] <= 1.0
    saved = json.loads((out / "L1M" / "cfg.json").read_text())["metadata"]
    assert saved["metrics"]["fvu"] == report["modules"]["L1M"]["fvu"] and saved["training"] == second
    assert not list(out.rglob("*.tmp"))  # written atomically


def test_clear_messages(tmp_path, tiny_weights):
    runner = CliRunner()
    result = runner.invoke(main, ["train", "dictionaries", "--weights", str(tmp_path)])
    assert result.exit_code != 0 and "othello-tui train model" in result.output
    result = runner.invoke(
        main, ["train", "dictionaries", "--weights", str(tiny_weights), "--modules", "L7A"]
    )
    assert result.exit_code != 0 and "unknown module(s) L7A" in result.output
    result = runner.invoke(main, ["train", "dictionaries", "--weights", str(tiny_weights), "--k", "8,L9M=3"])
    assert result.exit_code != 0 and "'L9M' is not one of the modules trained" in result.output
    result = runner.invoke(
        main, ["eval", "dictionaries", "--weights", str(tiny_weights), "--dictionaries", str(tmp_path)]
    )
    assert result.exit_code != 0 and "othello-tui train dictionaries" in result.output


def test_residual_dictionaries_train_into_weights_residual_and_evaluate(tmp_path, tiny_weights):
    import shutil

    weights = tmp_path / "weights"
    weights.mkdir()
    for path in tiny_weights.glob("othello_gpt.*"):
        shutil.copy(path, weights)
    runner = CliRunner()
    common = [
        "train",
        "dictionaries",
        "--weights",
        str(weights),
        "--checkpoint",
        str(tmp_path / "c.safetensors"),
    ]
    small = ["--d-sae", "64", "--k", "8", "--batch", "256", "--threads", "1", "--tokens", "3000"]
    mixed = runner.invoke(main, [*common, "--modules", "L0A,L1R", *small])
    assert mixed.exit_code != 0 and "in a run of their own" in mixed.output
    result = runner.invoke(main, [*common, "--modules", "l1r,L0R", "--architecture", "batchtopk", *small])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (weights / "residual").iterdir()) == ["L0R", "L1R"]
    assert not (weights / "dictionaries").exists()
    meta = json.loads((weights / "residual" / "L1R" / "cfg.json").read_text())["metadata"]
    assert meta["hook_name"] == "blocks.1.hook_resid_post" and meta["training"]["command"].startswith(
        "othello-tui"
    )

    result = runner.invoke(
        main, ["eval", "dictionaries", "--weights", str(weights), "--residual", "--games", "20", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["modules"]) == {"L0R", "L1R"} and "replacement" not in report
    for metrics in report["modules"].values():
        assert 0 <= metrics["board_reconstruction"] <= 1 and 0 <= metrics["coverage"] <= 1
        assert metrics["spliced_kl"] >= 0 and metrics["l0"] > 0
    table = runner.invoke(
        main, ["eval", "dictionaries", "--weights", str(weights), "--modules", "L1R", "--games", "20"]
    )
    assert table.exit_code == 0, table.output
    assert "L1R" in table.output and "each spliced alone" in table.output
