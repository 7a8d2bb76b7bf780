"""Choosing each module's dictionary for meaning, subject to fidelity (issue 14).

Every recipe of a sweep is measured per module: labelled mass (``features/meaning.py``) and the
spliced model's drop in top-1 legality and KL with that module replaced by its reconstruction.
For each module the choice is the recipe with the highest labelled mass among those within the
per-module limits; then the replacement model (all modules spliced at once) must stay within its
own limit. While it does not, the module whose pick costs the most KL falls back to its next
candidate (less meaning, more fidelity). A module where no recipe meets the limits gets its most
faithful recipe, and the choice says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    module_drop: float = 0.3  # points of top-1 legality, one module spliced
    module_kl: float = 0.01  # nats per position, one module spliced
    all_drop: float = 2.0  # points, every module spliced at once


@dataclass(frozen=True)
class Measured:
    """One recipe's numbers on one module."""

    recipe: str
    module: str
    labelled_mass: float
    legal_drop: float
    kl: float


@dataclass
class Choice:
    recipes: dict[str, str]  # module -> recipe
    all_drop: float
    notes: list[str] = field(default_factory=list)


def _ranked(rows: Sequence[Measured], limits: Limits) -> tuple[list[Measured], bool]:
    """A module's candidates, best first, and whether any meets the per-module limits."""
    within = [r for r in rows if r.legal_drop <= limits.module_drop and r.kl <= limits.module_kl]
    if within:
        return sorted(within, key=lambda r: (-r.labelled_mass, r.kl, r.recipe)), True
    return sorted(rows, key=lambda r: (r.kl, r.legal_drop, r.recipe))[:1], False


def choose(
    rows: Sequence[Measured],
    replacement_drop: Callable[[Mapping[str, str]], float],
    limits: Limits = Limits(),
) -> Choice:
    """The recipe of each module; ``replacement_drop(recipes)`` measures the replacement model
    (points of legality lost with every module's chosen dictionary spliced in at once)."""
    modules = list(dict.fromkeys(r.module for r in rows))
    ranked, notes = {}, []
    for module in modules:
        ranked[module], ok = _ranked([r for r in rows if r.module == module], limits)
        if not ok:
            best = ranked[module][0]
            notes.append(
                f"{module}: no recipe within {limits.module_drop} points and KL {limits.module_kl}; "
                f"kept the most faithful, {best.recipe} (drop {best.legal_drop:.2f}, KL {best.kl:.4f})"
            )
    position = dict.fromkeys(modules, 0)
    while True:
        recipes = {m: ranked[m][position[m]].recipe for m in modules}
        drop = replacement_drop(recipes)
        if drop <= limits.all_drop:
            return Choice(recipes, drop, notes)
        movable = [m for m in modules if _more_faithful(ranked[m], position[m]) is not None]
        if not movable:
            notes.append(
                f"all modules spliced cost {drop:.2f} points (limit {limits.all_drop}) with no fallback left"
            )
            return Choice(recipes, drop, notes)
        worst = max(movable, key=lambda m: ranked[m][position[m]].kl)
        notes.append(
            f"all spliced cost {drop:.2f} points: {worst} falls back from {ranked[worst][position[worst]].recipe}"
        )
        fallback = _more_faithful(ranked[worst], position[worst])
        assert fallback is not None  # worst is among the movable modules
        position[worst] = fallback


def _more_faithful(ranked: list[Measured], at: int) -> int | None:
    """The next candidate after ``at`` with less KL than ``ranked[at]`` (falling back must buy
    fidelity), or None."""
    return next((i for i in range(at + 1, len(ranked)) if ranked[i].kl < ranked[at].kl), None)
