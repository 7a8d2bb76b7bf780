"""``othello-tui cache build``, ``feature`` and ``eval labels`` through click's CliRunner."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from othello_tui.cli import main


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    directory.mkdir()
    monkeypatch.setattr("othello_tui.cli.features.DEFAULT_CACHE_DIR", directory)
    return directory


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_build_then_show_a_feature(weights_dir, cache_dir):
    result = invoke(
        "cache",
        "build",
        "--games",
        24,
        "--top-k",
        4,
        "--seed",
        1,
        "--weights",
        weights_dir,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    (path,) = cache_dir.glob("features-*.h5")
    assert f"wrote {path}" in result.output and "F1 ≥ 0.8" in result.output and "L1M" in result.output
    assert "games 24 24" in result.output.splitlines()  # not on a terminal: progress as lines

    again = invoke("cache", "build", "--games", 24, "--top-k", 4, "--seed", 1, "--weights", weights_dir)
    assert again.exit_code == 0 and "up to date" in again.output and "L1M" in again.output

    shown = invoke("feature", "l0a3", "--weights", weights_dir, "--examples", 2)
    assert shown.exit_code == 0, shown.output
    assert (
        shown.output.startswith("L0A3")
        and "legal next moves" in shown.output
        and "top examples" in shown.output
    )
    assert all(f"  {row} " in shown.output for row in "abcdefgh")

    data = json.loads(invoke("feature", "L1M7", "--json", "--cache", path, "--examples", 3).stdout)
    assert data["feature"] == "L1M7" and len(data["examples"]) <= 3
    assert len(data["move"]) == 8 and len(data["move"][0]) == 8 and data["logit_effect"][3][3] is None
    assert data["label_candidates"][0]["f1"] >= 0

    from othello_tui.features import open_cache
    from othello_tui.notes import Note, NoteStore, notes_path

    hashed = open_cache(path).dictionaries_hash
    NoteStore(notes_path(cache_dir, hashed), hashed).set("L1M7", Note("my reading", "why I think so"))
    noted = json.loads(invoke("feature", "L1M7", "--json", "--cache", path).stdout)
    assert noted["note"] == {"label": "my reading", "notes": "why I think so"}
    printed = invoke("feature", "L1M7", "--cache", path).stdout  # stderr: the other-weights warning
    assert printed.startswith("✎ my reading (your note): why I think so")

    labels = json.loads(invoke("eval", "labels", "--cache", path, "--json").stdout)  # stderr: a warning
    assert set(labels) == {"L0A", "L0M", "L1A", "L1M"}
    assert all(0 <= module["good_share"] <= 1 and module["alive"] <= 64 for module in labels.values())


def test_unknown_features_list_the_valid_range(weights_dir, cache_dir):
    path = cache_dir / "small.h5"
    assert (
        invoke(
            "cache", "build", "--games", 8, "--top-k", 2, "--weights", weights_dir, "--out", path
        ).exit_code
        == 0
    )
    for feature_id, message in (
        ("L9A1", "no module L9A (modules L0A, L0M, L1A, L1M"),
        ("L0A99", "features 0…63"),
        ("x", "e.g. L2M845"),
    ):
        result = invoke("feature", feature_id, "--cache", path)
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_missing_stale_and_broken_caches_get_clear_messages(
    weights_dir, cache_dir, tiny_model, tiny_dictionaries, tmp_path
):
    missing = invoke("feature", "L0A1", "--weights", weights_dir)
    assert (
        missing.exit_code == 1
        and "no feature cache" in missing.output
        and "othello-tui cache build" in missing.output
    )

    from othello_tui.features import build_cache

    other = {"L0A": copy.deepcopy(tiny_dictionaries["L0A"])}
    with torch.no_grad():
        other["L0A"].b_enc.add_(1.0)
    build_cache(tiny_model, other, 4, 0, 2, cache_dir / "features-0123456789ab.h5")
    stale = invoke("feature", "L0A1", "--weights", weights_dir)
    assert stale.exit_code == 1 and "built for other weights" in stale.output
    named = invoke(
        "feature", "L0A1", "--weights", weights_dir, "--cache", cache_dir / "features-0123456789ab.h5"
    )
    assert named.exit_code == 0 and "Warning: " in named.stderr
    assert "built for another dictionaries" in named.stderr and str(weights_dir) in named.stderr
    own = invoke(
        "cache", "build", "--games", 4, "--top-k", 2, "--weights", weights_dir, "--out", tmp_path / "own.h5"
    )
    assert own.exit_code == 0, own.output
    assert (
        "Warning"
        not in invoke("feature", "L0A1", "--weights", weights_dir, "--cache", tmp_path / "own.h5").stderr
    )

    for foreign in (weights_dir / "othello_gpt.safetensors", weights_dir / "othello_gpt.json"):
        refused = invoke("feature", "L0A1", "--cache", foreign)
        assert refused.exit_code == 1 and "is not a feature cache" in refused.output
        assert "delete" not in refused.output and foreign.exists()  # not ours: never advise deleting it

    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes((cache_dir / "features-0123456789ab.h5").read_bytes()[:3000])
    broken = invoke("feature", "L0A1", "--cache", truncated)
    assert broken.exit_code == 1 and "truncated" in broken.output and "Traceback" not in broken.output

    no_weights = invoke("cache", "build", "--weights", tmp_path / "nothing")
    assert no_weights.exit_code == 1 and "othello-tui train model" in no_weights.output


def test_a_terminated_build_leaves_no_file_and_reports_progress_lines(weights_dir, tmp_path):
    out = tmp_path / "features.h5"
    command = [sys.executable, "-m", "othello_tui", "cache", "build", "--weights", weights_dir,
               "--device", "cpu", "--games", 200_000, "--top-k", 8, "--out", out, "--progress-lines"]  # fmt: skip
    child = subprocess.Popen([str(a) for a in command], stdout=subprocess.PIPE, text=True)
    for line in child.stdout:
        phase, done, total = line.split()
        if int(done) > 0:
            break
    assert (phase, total) == ("games", "200000") and int(done) % 256 == 0
    assert [p.name for p in tmp_path.iterdir()] == [f".features.h5.partial-{child.pid}"]
    child.terminate()  # SIGTERM, as a closing session sends: cleaned up like Ctrl-C
    assert child.wait(60) != 0 and list(tmp_path.iterdir()) == []
