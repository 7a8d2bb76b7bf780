"""Residual-stream dictionaries in the app and the feature cache (issue 15 item 2): the engine
loads WEIGHTS/residual beside the module dictionaries, encodes resid_post in the same forward pass,
lists L0R … after the module outputs, and the feature cache covers them (its dictionaries hash
included), so a cache built without them is refused."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from othello_tui.cli import main
from othello_tui.features import StaleCacheError, build_cache, dictionaries_hash, open_cache
from othello_tui.game.generator import generate_games
from othello_tui.game.squares import tokens_of
from othello_tui.model.weights import model_fingerprint

SQUARES = [int(s) for s in generate_games(1, seed=4).squares[0][:25]]


@pytest.fixture(scope="module")
def merged(tiny_dictionaries, tiny_residual):
    return {**tiny_dictionaries, **tiny_residual}


@pytest.fixture(scope="module")
def residual_cache(tiny_model, merged, tmp_path_factory):
    path = tmp_path_factory.mktemp("residual_cache") / "features-residual.h5"
    return build_cache(tiny_model, merged, 60, 0, 16, path, batch_games=30)


def test_the_engine_lists_residual_dictionaries_after_the_modules_and_encodes_resid_post(
    residual_weights_dir, tiny_model, tiny_residual, tmp_path
):
    from othello_tui.tui.engine import load_engine

    engine = load_engine(residual_weights_dir, "cpu", cache_dir=tmp_path / "cache")
    assert engine.modules == ("L0A", "L0M", "L1A", "L1M", "L0R", "L1R")
    assert engine.n_features["L1R"] == 48 and engine.residual_note is None
    analysis = engine.analyse(SQUARES)
    _, cache = tiny_model.run_with_cache(
        torch.from_numpy(tokens_of(SQUARES))[None], ["blocks.1.hook_resid_post"]
    )
    expected = tiny_residual["L1R"].encode(cache["blocks.1.hook_resid_post"][0]).detach().numpy()
    assert analysis.acts["L1R"].dense() == pytest.approx(expected, abs=1e-5)
    assert (analysis.acts["L1R"].dense() > 0).sum(-1).tolist() == [6] * len(SQUARES)
    trace = engine.trace(SQUARES)
    assert set(trace.residual) == {"L0R", "L1R"} and "L1R" not in trace.dictionaries


def test_a_broken_residual_folder_keeps_the_module_dictionaries(residual_weights_dir, tmp_path):
    import shutil

    from othello_tui.tui.engine import load_engine

    weights = tmp_path / "weights"
    shutil.copytree(residual_weights_dir, weights)
    (weights / "residual" / "L1R" / "sae_weights.safetensors").write_bytes(b"broken")
    engine = load_engine(weights, "cpu")
    assert engine.modules == ("L0A", "L0M", "L1A", "L1M")
    assert "No residual-stream dictionaries" in engine.residual_note


def test_the_cache_covers_residual_features_and_their_hash(
    residual_cache, tiny_model, merged, tiny_dictionaries
):
    cache = open_cache(residual_cache, model_fingerprint(tiny_model), dictionaries_hash(merged))
    assert cache.modules == ("L0A", "L0M", "L1A", "L1M", "L0R", "L1R")
    assert cache.n_features["L1R"] == 48
    assert len(cache.labels("L1R")) == 48 and "L1R" in cache.meaning_summary()
    stats = max((cache.feature(f"L1R{f}") for f in range(48)), key=lambda s: s.fire_count)
    assert stats.module == "L1R" and stats.fire_count > 0 and stats.examples
    assert sum(cache.feature(f"L1R{f}").fire_count for f in range(48)) == 6 * stats.n_tokens  # k = 6
    assert cache.parse("l1r7") == ("L1R", 7)
    with pytest.raises(StaleCacheError):  # built with them: refused for the modules alone
        open_cache(residual_cache, model_fingerprint(tiny_model), dictionaries_hash(tiny_dictionaries))


def test_a_cache_built_without_residual_dictionaries_is_refused_once_they_are_loaded(
    tiny_cache, tiny_model, tiny_dictionaries, merged
):
    fingerprint = model_fingerprint(tiny_model)
    open_cache(tiny_cache, fingerprint, dictionaries_hash(tiny_dictionaries))  # still accepted alone
    with pytest.raises(StaleCacheError):
        open_cache(tiny_cache, fingerprint, dictionaries_hash(merged))


def test_cache_build_reads_weights_residual(residual_weights_dir, tiny_model, merged, tmp_path):
    out = tmp_path / "features.h5"
    args = ["cache", "build", "--games", "20", "--top-k", "4", "--out", str(out), "--device", "cpu"]
    result = CliRunner().invoke(main, [*args, "--weights", str(residual_weights_dir)])
    assert result.exit_code == 0, result.output
    cache = open_cache(out, model_fingerprint(tiny_model), dictionaries_hash(merged))
    assert cache.modules[-2:] == ("L0R", "L1R")
