"""What the probes read: property families, the residual-stream sites, and their labels.

A model position ``i`` (0…58) holds move ``i+1`` and predicts move ``i+2`` (``model/targets.py``);
its labels describe the board *after* move ``i+1``:

- ``mine_theirs``  per square: mine / theirs / empty, relative to the player who just moved
  (``games.player[:, i]``, DESIGN.md §2), 3-way;
- ``colour``       per square: black / white / empty, 3-way (the contrast of Li et al. 2023);
- ``flipped``      per square: flipped by move ``i+1``, binary;
- ``legal``        per square: a legal move ``i+2``, binary.

Some squares never change label: corners are never flipped (a flipped disc lies strictly between
two others) and the four centre squares are never legal. Their accuracy is trivially 100% and
they are left out of per-family means and worst squares. The centre squares are never *empty*
either, but whether they are mine or theirs (black or white) varies: for the 3-way families they
count, as the two-way problem they are; only their "empty" direction is skipped in alignment.

Shape legend: B games, T positions, Q squares (64), S probe sites.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from othello_tui.game.generator import GameBatch
from othello_tui.game.rules import BLACK, WHITE
from othello_tui.game.squares import CENTRE_SQUARES, N_SQUARES

N_POSITIONS = 59  # model positions: moves 1…59 are fed, move 60 predicts nothing
CORNERS = (0, 7, 56, 63)


@dataclass(frozen=True)
class Family:
    """A probed property. 3-way families have one logit per class in ``classes``; binary ones
    have one logit, for ``classes[1]`` against ``classes[0]``."""

    name: str
    classes: tuple[str, ...]
    constant_squares: tuple[int, ...] = ()  # label never changes: skipped in means

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2

    @property
    def logit_shape(self) -> tuple[int, ...]:
        """Per-square logit shape: ``(C,)`` for 3-way families, ``()`` for binary ones."""
        return () if self.binary else (len(self.classes),)

    def counted(self) -> np.ndarray:
        """bool [64]: squares whose accuracy counts (label not constant)."""
        mask = np.ones(N_SQUARES, bool)
        mask[list(self.constant_squares)] = False
        return mask


FAMILIES = (
    Family("mine_theirs", ("mine", "theirs", "empty")),
    Family("colour", ("black", "white", "empty")),
    Family("flipped", ("not flipped", "flipped"), CORNERS),
    Family("legal", ("not legal", "legal"), CENTRE_SQUARES),
)
FAMILY = {family.name: family for family in FAMILIES}


def probe_sites(n_layers: int) -> list[str]:
    """Residual stream after the embeddings, then after every block (``n_layers + 1`` sites)."""
    return ["blocks.0.hook_resid_pre"] + [f"blocks.{layer}.hook_resid_post" for layer in range(n_layers)]


def site_label(site: str) -> str:
    """``"blocks.0.hook_resid_pre" -> "embed"``, ``"blocks.3.hook_resid_post" -> "after block 3"``."""
    return "embed" if site == "blocks.0.hook_resid_pre" else f"after block {site.split('.')[1]}"


DEFAULT_SITE = 4  # after block 3, where the shipped probes read the board best (README)


def site_short(site: int) -> str:
    """Short name of probe site ``site``: ``0 -> "embed"``, ``4 -> "L3"`` (after block 3)."""
    return "embed" if site == 0 else f"L{site - 1}"


def parse_site(text: str, n_sites: int) -> int:
    """``"embed" -> 0``, ``"L3"`` or ``"3" -> 4`` (after block 3); ValueError with the choices."""
    text = text.strip()
    layer = text.removeprefix("L").removeprefix("l")
    if text.lower() == "embed":
        return 0
    if not layer.isdigit() or not 0 <= int(layer) < n_sites - 1:
        raise ValueError(f"{text!r} is not a probe site (embed, or a layer L0…L{n_sites - 2})")
    return int(layer) + 1


def site_of_module(module: str) -> str:
    """The probe site a module writes into: ``L3A`` and ``L3M`` both feed ``blocks.3.hook_resid_post``."""
    return f"blocks.{int(module[1:-1])}.hook_resid_post"


def valid_positions(games: GameBatch) -> np.ndarray:
    """bool [B, 59]: positions holding a move (games that end early are padded)."""
    return games.squares[:, :N_POSITIONS] >= 0


def probe_labels(games: GameBatch) -> dict[str, np.ndarray]:
    """Family name -> labels [B, 59, 64] at model positions 0…58: class indices (int64) for 3-way
    families, 0/1 (uint8) for binary ones. Meaningless at invalid positions (see ``valid_positions``)."""
    board_BTQ = games.board()[:, :N_POSITIONS]  # +1 black, -1 white, 0 empty
    relative_BTQ = board_BTQ * games.player[:, :N_POSITIONS, None]  # +1 mine, -1 theirs
    return {
        "mine_theirs": _three_way(relative_BTQ == 1, relative_BTQ == -1),
        "colour": _three_way(board_BTQ == BLACK, board_BTQ == WHITE),
        "flipped": games.flipped_mask()[:, :N_POSITIONS].astype(np.uint8),
        "legal": games.legal_mask()[:, :N_POSITIONS].astype(np.uint8),
    }


def mine_theirs_classes(board_Q: np.ndarray, mover: int) -> np.ndarray:
    """int64 [64]: the ``mine_theirs`` class of every square (0 mine, 1 theirs, 2 empty) of a
    board (+1 black, −1 white) after a move by colour ``mover``: what a perfect probe reads."""
    relative_Q = np.asarray(board_Q) * mover
    return _three_way(relative_Q == 1, relative_Q == -1)


def with_belief(board_Q: np.ndarray, mover: int, square: int, belief: int) -> np.ndarray:
    """A copy of ``board_Q`` where ``square`` holds ``belief`` (0 mine, 1 theirs, 2 empty),
    relative to colour ``mover``: the board a belief edit claims (the inverse of
    :func:`mine_theirs_classes` on one square)."""
    edited_Q = np.array(board_Q, copy=True)
    edited_Q[square] = (mover, -mover, 0)[belief]
    return edited_Q


def _three_way(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Class 0 where ``first``, 1 where ``second``, else 2 (empty)."""
    return np.select([first, second], [0, 1], 2).astype(np.int64)
