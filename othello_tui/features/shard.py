"""Shards of a feature-cache build: shard i of N runs the model over its share of the games, and
``merge.py`` combines the N files into the cache one build would have written.

A share is a run of whole batches (``BuildSettings.batch_games``), so every shard chunks its
games exactly as one build does. Besides the usual cache, a shard file keeps what the merge needs
and a cache does not: per module the label state (each feature's anchor and partner predicates
and their conjunctions' true positives, ``labels.py``) and the predicate pair counts.

Shape legend: F features, P predicates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import h5py
import numpy as np

from othello_tui.features.labels import LabelCounts, PredicateCounts
from othello_tui.game.generator import CHUNK


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/N"`` with 0 ≤ i < N; ``ValueError`` says what is wrong."""
        found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not found:
            raise ValueError(f"{text!r} is not i/N (e.g. 0/4: the first of 4 shards)")
        index, count = int(found.group(1)), int(found.group(2))
        if not 0 <= index < count:
            raise ValueError(f"shard {index}/{count}: i must be 0…{count - 1}")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def games(self, n_games: int, batch_games: int) -> range:
        """This shard's games: the i-th of N nearly equal runs of whole batches. A build cuts the
        generator's chunks of ``CHUNK`` games into batches of ``batch_games``."""
        per_chunk = -(-CHUNK // batch_games)
        whole, rest = divmod(n_games, CHUNK)
        n_batches = whole * per_chunk + -(-rest // batch_games)

        def first_game(batch: int) -> int:
            chunk, within = divmod(batch, per_chunk)
            return min(chunk * CHUNK + within * batch_games, n_games)

        if self.count > n_batches:
            raise ValueError(
                f"{n_games} games make {n_batches} batch{'es' if n_batches > 1 else ''} of {batch_games}: "
                f"at most {n_batches} shard{'s' if n_batches > 1 else ''}"
            )
        return range(
            first_game(self.index * n_batches // self.count),
            first_game((self.index + 1) * n_batches // self.count),
        )


FULL = Shard()


def write_state(
    f: h5py.File, shard: Shard, predicates: PredicateCounts, labels: dict[str, LabelCounts]
) -> None:
    f.attrs.update(shard_index=shard.index, shard_count=shard.count)
    f.create_dataset("merge/predicate_pairs", data=predicates.pairs_PP.cpu().numpy(), compression="gzip")
    for module, counts in labels.items():
        group = f.create_group(f"merge/{module}")
        group.create_dataset("anchor", data=counts.anchor_F.cpu().numpy().astype(np.int16))
        group.create_dataset("partner", data=counts.partner_F.cpu().numpy().astype(np.int16))
        for name in ("conjunction_tp", "triple_tp"):
            data = getattr(counts, f"{name}_FP").cpu().numpy().astype(np.int32)
            group.create_dataset(name, data=data, compression="gzip", shuffle=True)
