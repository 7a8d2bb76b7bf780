"""Snapshots of the contributor tree and the attention view (pytest-textual-snapshot). The model
and dictionaries are tiny and seeded rather than trained, so the numbers depend on no training
run; review the SVGs by eye after ``pytest --snapshot-update`` (tests/__snapshots__/)."""

from __future__ import annotations

import pytest
from conftest import random_dictionaries
from test_tui_snapshots import settle

from othello_tui.game.rules import Game
from othello_tui.model.config import TINY
from othello_tui.model.transformer import OthelloGPT
from othello_tui.tui.app import make_app
from othello_tui.tui.engine import ModelEngine
from othello_tui.tui.session import Session

MOVES = "e-5 d-5 c-3 d-2 e-1 f-5 f-6 e-2 g-5 c-4 d-6 c-5"


@pytest.fixture(scope="module")
def seeded_engine() -> ModelEngine:
    model = OthelloGPT(TINY)
    model.reset_parameters(seed=0)
    return ModelEngine(model.eval(), random_dictionaries(model))


def test_tree_screen_with_an_expanded_feature_and_an_ablation(snap_compare, seeded_engine):
    async def open_tree(pilot):
        await settle(pilot)
        await pilot.press("down", "down", "down", "enter", "down", "t")  # L1M's strongest feature
        await settle(pilot)
        await pilot.press("down", "down", "down", "space")
        await settle(pilot)
        await pilot.press("down", "down", "down", "down", "down", "down", "down", "down", "a")
        await settle(pilot)

    app = make_app(Session(lambda: seeded_engine), Game.from_text(MOVES))
    assert snap_compare(app, terminal_size=(120, 40), run_before=open_tree)


def test_attention_view_with_its_qk_pairs(snap_compare, seeded_engine):
    async def open_attention(pilot):
        await settle(pilot)
        await pilot.press("w")
        await settle(pilot)
        await pilot.press("down", "down", "down", "down", "left", "left", "enter")
        await settle(pilot)

    app = make_app(Session(lambda: seeded_engine), Game.from_text(MOVES))
    assert snap_compare(app, terminal_size=(120, 40), run_before=open_attention)
