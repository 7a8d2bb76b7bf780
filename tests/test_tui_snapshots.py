"""Snapshots of the main screen (pytest-textual-snapshot). A stub engine with hand-set outputs
keeps the pictures independent of any training run; review the SVGs by eye after
``pytest --snapshot-update`` (tests/__snapshots__/test_tui_snapshots/)."""

from __future__ import annotations

import numpy as np
import pytest

from othello_tui.game.rules import Game
from othello_tui.game.squares import SQUARE_TO_TOKEN
from othello_tui.probes.families import mine_theirs_classes
from othello_tui.tui.analysis import GameAnalysis
from othello_tui.tui.app import make_app
from othello_tui.tui.feature_acts import FeatureActs
from othello_tui.tui.session import Session

MOVES = "e-5 d-5 c-3 d-2 e-1 f-5 f-6 e-2 g-5 c-4 d-6 c-5"


class StubEngine:
    """At every position: 90% spread over the legal moves (more on lower squares), 10% on one
    illegal square; features whose activation is a fixed function of position and index."""

    modules = ("L0A", "L0M", "L1A", "L1M")
    n_features = dict.fromkeys(modules, 32)
    features_note = labels_note = feature_cache = None
    cache_requests = ()

    @staticmethod
    def labels(feature_id: str) -> str | None:
        return f"label of {feature_id}" if feature_id.endswith("0") else None

    def analyse(self, squares, reuse=None):  # keeps no keys and values: never given any
        game = Game.from_squares(list(squares))
        probs_TV = np.zeros((len(squares), 61), np.float32)
        for t, move in enumerate(game.moves):
            legal = sorted(move.legal_next)
            if legal:
                weights = np.arange(len(legal), 0, -1, dtype=np.float32)
                probs_TV[t, SQUARE_TO_TOKEN[legal]] = 0.9 * weights / weights.sum()
            wrong = next(s for s in range(64) if SQUARE_TO_TOKEN[s] and s not in legal)
            probs_TV[t, SQUARE_TO_TOKEN[wrong]] = 0.1 if legal else 1.0
        t_T1, f_1F = np.arange(len(squares))[:, None], np.arange(32)[None, :]
        acts = {
            module: FeatureActs.of(
                np.maximum(np.sin(0.7 * t_T1 * (f_1F + 1) + i), 0.0).astype(np.float32) * (f_1F % 3 == 0)
            )
            for i, module in enumerate(self.modules)
        }
        return GameAnalysis(probs_TV, acts, stub_beliefs(game))


def stub_beliefs(game: Game) -> np.ndarray:
    """[T, 7, 64, 3]: at site s the true class with 90%, except squares q with (q + t) % (s + 2)
    == 0, read one class off (so the count of wrong squares falls with the layer)."""
    beliefs = np.full((len(game.moves), 7, 64, 3), 0.05, np.float32)
    for t, move in enumerate(game.moves):
        truth = mine_theirs_classes(move.board, move.player)
        for site in range(7):
            wrong = (np.arange(64) + t) % (site + 2) == 0
            beliefs[t, site, np.arange(64), np.where(wrong, (truth + 1) % 3, truth)] = 0.9
    return beliefs


async def settle(pilot) -> None:
    app = pilot.app
    await pilot.pause()
    while app.workers or app.main_screen.current_view.pending:
        await app.workers.wait_for_complete()
        await pilot.pause()


def stub_app():
    return make_app(Session(StubEngine), Game.from_text(MOVES))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_main_screen(snap_compare, size):
    assert snap_compare(stub_app(), terminal_size=size, run_before=settle)


def test_main_screen_play_mode_with_a_module_open(snap_compare):
    async def open_module_and_play(pilot):
        await settle(pilot)
        await pilot.press("enter", "down", "left", "p", "down")
        await settle(pilot)

    assert snap_compare(stub_app(), terminal_size=(120, 40), run_before=open_module_and_play)


def test_main_screen_without_colour(snap_compare, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")  # read when the app is made
    assert snap_compare(stub_app(), terminal_size=(80, 24), run_before=settle)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_main_screen_with_the_believed_board(snap_compare, size):
    async def show_beliefs(pilot):
        await settle(pilot)
        await pilot.press("b", "left_square_bracket", "j")
        await settle(pilot)

    assert snap_compare(stub_app(), terminal_size=size, run_before=show_beliefs)
