"""``othello-tui train probes``, ``eval probes`` and ``eval rediscovery`` on the tiny model."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from rich.console import Console
from safetensors.torch import load_file, save_file

from othello_tui.cli import main
from othello_tui.cli.probes import _heatmap
from othello_tui.dictionary.io import save_dictionary
from othello_tui.features import build_cache, open_cache
from othello_tui.model.weights import model_fingerprint
from othello_tui.probes.evaluate import PROBE_EVAL_SEED, evaluate_probes
from othello_tui.probes.io import load_probes


@pytest.fixture(scope="module")
def weights(tmp_path_factory, tiny_weights):
    directory = tmp_path_factory.mktemp("probe_weights")
    for name in ("othello_gpt.safetensors", "othello_gpt.json"):
        shutil.copy(tiny_weights / name, directory / name)
    return directory


@pytest.fixture(scope="module")
def trained(weights):
    args = ["train", "probes", "--games", "300", "--positions", "8", "--eval-games", "30", "--threads", "1"]
    result = CliRunner().invoke(main, [*args, "--weights", str(weights)])
    assert result.exit_code == 0, result.output
    return weights, result.output


def test_train_writes_probes_with_provenance(trained, tiny_model):
    weights, output = trained
    assert f"wrote {weights / 'probes.safetensors'} after 300 games" in output
    probes, meta = load_probes(weights, tiny_model)  # fingerprint and shapes check out
    assert meta["model_fingerprint"] == model_fingerprint(tiny_model)
    assert meta["training"]["games"] == 300 and meta["training"]["settings"]["positions_per_game"] == 8
    assert meta["training"]["tokens"] == 300 * 8
    assert meta["metrics"]["seed"] == PROBE_EVAL_SEED and meta["metrics"]["games"] == 30
    assert meta["sites"] == list(probes.sites) == [
        "blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"
    ]  # fmt: skip


def test_eval_json_equals_an_independent_evaluation(trained, tiny_model):
    weights, _ = trained
    result = CliRunner().invoke(
        main, ["eval", "probes", "--games", "20", "--json", "--weights", str(weights)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    probes, _ = load_probes(weights, tiny_model)
    expected = evaluate_probes(tiny_model, probes, 20, PROBE_EVAL_SEED)
    assert report["games"] == 20 and report["seed"] == PROBE_EVAL_SEED
    assert report["tokens"] == expected.tokens
    for family in ("mine_theirs", "colour", "flipped", "legal"):
        layers = report["families"][family]["layers"]
        assert [layer["mean"] for layer in layers] == pytest.approx(list(expected.mean(family)), abs=1e-6)
        assert [layer["worst_square"] for layer in layers] == [sq for sq, _ in expected.worst(family)]
        assert report["families"][family]["baseline"] == pytest.approx(expected.baseline(family), abs=1e-6)
    # beating the constant guess is the least a probe of mine/theirs should do, even on a weak model
    assert max(layer["mean"] for layer in report["families"]["mine_theirs"]["layers"]) > (
        report["families"]["mine_theirs"]["baseline"] + 0.03
    )


def test_eval_table_and_heatmap(trained, tiny_model):
    weights, _ = trained
    result = CliRunner().invoke(main, ["eval", "probes", "--games", "10", "--weights", str(weights)])
    assert result.exit_code == 0, result.output
    assert "embed" in result.output and "after block 1" in result.output and "majority class" in result.output
    probes, _ = load_probes(weights, tiny_model)
    console = Console(force_terminal=True, color_system="truecolor", record=True, width=100)
    console.print(_heatmap(evaluate_probes(tiny_model, probes, 5)))
    text = console.export_text(styles=True)
    assert "\x1b[" in text and "after block 1" in text and "legal" in text


def test_rediscovery_counts_from_saved_dictionaries(trained, tiny_model, tiny_dictionaries, tmp_path):
    weights, _ = trained
    for dictionary in tiny_dictionaries.values():
        save_dictionary(
            dictionary, weights / "dictionaries", {"model_fingerprint": model_fingerprint(tiny_model)}
        )
    result = CliRunner().invoke(
        main, ["eval", "rediscovery", "--json", "--top", "2", "--weights", str(weights)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    modules = list(tiny_dictionaries)
    assert list(report["counts"]) == [*modules, "any"]
    assert report["counts"]["L1M"]["legal"][1] == 60 and report["counts"]["any"]["mine"][1] == 64
    assert len(report["alignments"]) == len(modules) * (64 + 60 + 64 + 60 + 60)
    first = report["alignments"][0]
    assert first["site"] == "blocks.0.hook_resid_post" and len(first["matches"]) == 2
    assert abs(first["matches"][0]["cosine"]) >= abs(first["matches"][1]["cosine"])
    assert (
        first["best_f1"] is None
        and first["matches"][0]["f1"] is None
        and "No feature cache" in report["note"]
    )
    table = CliRunner().invoke(main, ["eval", "rediscovery", "--weights", str(weights)])
    assert table.exit_code == 0 and "any module" in table.output

    cache_file = build_cache(tiny_model, tiny_dictionaries, 30, 0, 4, tmp_path / "features.h5")
    result = CliRunner().invoke(
        main, ["eval", "rediscovery", "--json", "--cache", str(cache_file), "--weights", str(weights)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    cache = open_cache(cache_file)
    by_probe = {(a["module"], a["probe"]): a for a in report["alignments"]}
    mine = by_probe["L0A", "c-4 mine"]
    f1 = cache.predicate_f1("L0A", "mine=c-4")
    assert mine["best_f1"]["f1"] == pytest.approx(float(f1.max())) and mine["best_f1"]["reads"] == "c-4 mine"
    assert mine["best_f1"]["feature"] == f"L0A{int(f1.argmax())}"
    assert by_probe["L0A", "c-4 black"]["best_f1"] is None and report["note"] is None
    rediscovered = sum(
        abs(m["cosine"]) >= 0.7 for a in report["alignments"] if a["module"] == "L1M" and a["family"] == "legal"
        for m in a["matches"][:1]
    )  # fmt: skip
    assert report["counts"]["L1M"]["legal"][0] >= rediscovered


def test_missing_or_foreign_probes_are_clear_errors(trained, tmp_path):
    weights, _ = trained
    shutil.copy(weights / "othello_gpt.json", tmp_path / "othello_gpt.json")
    state = load_file(weights / "othello_gpt.safetensors")
    save_file(state, tmp_path / "othello_gpt.safetensors")
    result = CliRunner().invoke(main, ["eval", "probes", "--weights", str(tmp_path)])
    assert result.exit_code == 1 and "no probes" in result.output and "Traceback" not in result.output
    state["embed.W_E"][1, 0] += 1.0  # another model
    save_file(state, tmp_path / "othello_gpt.safetensors")
    for name in ("probes.safetensors", "probes.json"):
        shutil.copy(weights / name, tmp_path / name)
    result = CliRunner().invoke(main, ["eval", "probes", "--weights", str(tmp_path)])
    assert result.exit_code == 1 and "trained for another model" in result.output


def test_bad_settings_are_clear_errors(weights):
    result = CliRunner().invoke(main, ["train", "probes", "--seed", str(10**9), "--weights", str(weights)])
    assert result.exit_code == 1 and "training seeds" in result.output
    result = CliRunner().invoke(main, ["eval", "probes", "--seed", "3", "--weights", str(weights)])
    assert result.exit_code == 1 and "evaluation seeds start at" in result.output
