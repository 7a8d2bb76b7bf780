"""Choosing each module's recipe for meaning within fidelity limits, on a small table."""

from __future__ import annotations

from othello_tui.dictionary.selection import Limits, Measured, choose

ROWS = [
    # recipe, module, labelled mass, legality drop (points), KL
    Measured("sparse", "L0A", 0.80, 0.10, 0.004),
    Measured("medium", "L0A", 0.60, 0.05, 0.002),
    Measured("dense", "L0A", 0.20, 0.01, 0.001),
    Measured("sparse", "L1M", 0.70, 0.50, 0.020),  # too unfaithful alone
    Measured("medium", "L1M", 0.40, 0.20, 0.009),
    Measured("dense", "L1M", 0.05, 0.02, 0.001),
    Measured("sparse", "L5M", 0.90, 1.00, 0.050),  # no recipe meets the limits here
    Measured("dense", "L5M", 0.10, 0.40, 0.020),
]


def test_picks_the_most_meaning_within_per_module_limits():
    measured = []
    choice = choose(ROWS, lambda recipes: measured.append(dict(recipes)) or 1.0)
    assert choice.recipes == {"L0A": "sparse", "L1M": "medium", "L5M": "dense"}
    assert choice.all_drop == 1.0 and len(measured) == 1
    assert len(choice.notes) == 1 and choice.notes[0].startswith("L5M: no recipe")


def test_falls_back_where_the_replacement_model_costs_too_much():
    def drop(recipes):  # each non-dense pick costs 1.5 points when all are spliced
        return sum(1.5 for recipe in recipes.values() if recipe != "dense")

    choice = choose(ROWS, drop, Limits(all_drop=2.0))
    # L1M's medium (KL 0.009) costs more KL than L0A's sparse (0.004): L1M falls back first
    assert choice.recipes == {"L0A": "sparse", "L1M": "dense", "L5M": "dense"}
    assert choice.all_drop == 1.5
    assert any("L1M falls back from medium" in note for note in choice.notes)


def test_falling_back_skips_candidates_that_are_no_more_faithful():
    rows = [
        Measured("a", "L2M", 0.9, 0.05, 0.002),
        Measured("b", "L2M", 0.8, 0.10, 0.009),  # less meaning *and* less faithful than a
        Measured("c", "L2M", 0.1, 0.01, 0.001),
    ]
    tried = []

    def drop(recipes):
        tried.append(recipes["L2M"])
        return 0.0 if recipes["L2M"] == "c" else 5.0

    choice = choose(rows, drop)
    assert tried == ["a", "c"] and choice.recipes == {"L2M": "c"}
