"""The same results on a CUDA GPU as on the CPU: the engine's analysis, attributions,
interventions, the feature cache and the app. Skipped where torch sees no GPU (CI, laptops);
run them on a GPU machine with ``pytest tests/test_gpu.py``."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from othello_tui.circuits.intervention import Edit, intervene
from othello_tui.circuits.nodes import parse_target
from othello_tui.circuits.trace import GameTrace
from othello_tui.features import build_cache, open_cache
from othello_tui.game.generator import generate_games
from othello_tui.tui.engine import ModelEngine

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


@pytest.fixture(scope="module")
def on_gpu(tiny_model, tiny_dictionaries):
    model = copy.deepcopy(tiny_model).to("cuda")
    return model, {m: copy.deepcopy(d).to("cuda") for m, d in tiny_dictionaries.items()}


@pytest.fixture(scope="module")
def tokens():
    return [int(t) for t in generate_games(1, 3).tokens[0, :40]]


def test_the_engine_gives_the_cpu_analysis(tiny_model, tiny_dictionaries, on_gpu):
    squares = list(generate_games(1, 4).squares[0, :50])
    cpu = ModelEngine(tiny_model, tiny_dictionaries).analyse(squares)
    gpu = ModelEngine(*on_gpu).analyse(squares)
    assert isinstance(gpu.probs_TV, np.ndarray)
    np.testing.assert_allclose(gpu.probs_TV, cpu.probs_TV, atol=1e-4)
    for module, acts in cpu.acts.items():
        np.testing.assert_allclose(gpu.acts[module].dense(), acts.dense(), atol=1e-3)


def test_attributions_sum_exactly_and_match_the_cpu(tiny_model, tiny_dictionaries, on_gpu, tokens):
    cpu, gpu = GameTrace(tiny_model, tiny_dictionaries, tokens), GameTrace(*on_gpu, tokens)
    feature, _ = cpu.active_features(30, "L1M")[0]
    for text in ("logit:e-2", f"feature:L1M{feature}", "score:L1H0:28"):
        target = parse_target(text, 30)
        on_cpu, on_cuda = cpu.contributions(target), gpu.contributions(target)
        assert on_cuda.sum() == pytest.approx(on_cuda.value, abs=1e-3)
        assert on_cuda.value == pytest.approx(on_cpu.value, abs=1e-3)
        assert [n.id for n, _ in on_cuda.top(3)] == [n.id for n, _ in on_cpu.top(3)]


def test_an_intervention_moves_the_logits_as_on_the_cpu(tiny_model, tiny_dictionaries, on_gpu, tokens):
    cpu, gpu = GameTrace(tiny_model, tiny_dictionaries, tokens), GameTrace(*on_gpu, tokens)
    feature, _ = cpu.active_features(20, "L0M")[0]
    edits = [Edit(20, "L0M", feature, value=0.0)]
    on_cpu, on_cuda = intervene(cpu, edits), intervene(gpu, edits)
    torch.testing.assert_close(on_cuda.delta_TV.cpu(), on_cpu.delta_TV, atol=1e-3, rtol=1e-3)


def test_the_feature_cache_built_on_the_gpu_matches_the_cpu_one(tiny_model, on_gpu, tiny_cache, tmp_path):
    model, dictionaries = on_gpu
    path = build_cache(model, dictionaries, 300, 0, 32, tmp_path / "gpu.h5", batch_games=100)
    cpu, gpu = open_cache(tiny_cache), open_cache(path)
    for module in ("L0A", "L1M"):
        for index in range(0, 64, 9):
            a, b = cpu.feature(f"{module}{index}"), gpu.feature(f"{module}{index}")
            assert abs(a.fire_count - b.fire_count) <= max(2, a.fire_count // 200)  # float rounding at 0
            assert [(e.game, e.position) for e in a.examples[:5]] == [
                (e.game, e.position) for e in b.examples[:5]
            ]


def test_the_app_runs_on_the_gpu(on_gpu):
    from test_tui_app import app_on, run, settle, shows

    from othello_tui.game.rules import Game
    from othello_tui.tui.screens.tree import TreeScreen
    from othello_tui.tui.widgets.contributor_tree import ContributorTree

    app = app_on(ModelEngine(*on_gpu), Game.from_text("e-5 d-5 c-3 d-2 e-1 f-5 f-6 e-2"))

    async def scenario(pilot):
        view = app.main_screen.current_view
        assert view.probs is not None and view.features
        await pilot.press("t")  # the top prediction's contributor tree, computed on the GPU
        await settle(app, pilot)
        assert isinstance(app.screen, TreeScreen)
        assert "✓" in shows(app, app.screen.query_one(ContributorTree)).splitlines()[0]

    run(app, scenario)
