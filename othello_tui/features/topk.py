"""Per-feature top-k activations over a stream of tokens, in memory that does not grow with it.

Each entry is packed into one int64 key, ``float32 bits of the value << 32 | (2**32 − 1 − token)``:
positive float32 values order like their bit patterns, so keys order by value and, among equal
values, earliest token first. Keys are unique, so ``torch.topk`` on them is exact and
deterministic without any stable sort (sorting is the slow part on CPU). Token ids must stay
below 2**32 (71 million games of 60 moves).

Shape legend: F features, K kept per feature, E sparse entries (feature, token, value), R the
most entries one feature gets in a chunk.
"""

from __future__ import annotations

import torch
from torch import Tensor

_LOW = 0xFFFF_FFFF
EMPTY = -1  # the key of an unused slot: below every real key


def pack(value_E: Tensor, token_E: Tensor) -> Tensor:
    """int64 keys of (value > 0 float32, token id < 2**32)."""
    return (value_E.float().view(torch.int32).long() << 32) | (_LOW - token_E)


def unpack(key: Tensor) -> tuple[Tensor, Tensor]:
    """(values float32, token ids int64); unused slots give (0, −1)."""
    used = key >= 0
    value = (key >> 32).int().view(torch.float32)
    token = _LOW - (key & _LOW)
    return torch.where(used, value, 0.0), torch.where(used, token, -1)


class StreamingTopK:
    """The ``k`` largest activations of every feature and the tokens they came from.

    Equals a brute-force sort by (−value, token) over everything seen, whatever the chunking.
    """

    def __init__(self, n_features: int, k: int, device: torch.device | str = "cpu"):
        self.keys_FK = torch.full((n_features, k), EMPTY, dtype=torch.int64, device=device)

    def update(self, feature_E: Tensor, token_E: Tensor, value_E: Tensor) -> None:
        """Merge entries (feature, token id, activation > 0), in any order."""
        F, K = self.keys_FK.shape
        key_E = pack(value_E, token_E)
        # Only entries above a feature's current k-th key can enter: few, once the stream is long,
        # so grouping them by feature (a sort) is cheap.
        keep = key_E > self.keys_FK[feature_E, -1]
        feature_E, order = torch.sort(feature_E[keep])
        key_E = key_E[keep][order]
        if len(key_E) == 0:
            return
        count_F = torch.bincount(feature_E, minlength=F)
        rank_E = torch.arange(len(key_E), device=key_E.device) - (count_F.cumsum(0) - count_F)[feature_E]
        new_FR = torch.full((F, int(count_F.max())), EMPTY, dtype=torch.int64, device=key_E.device)
        new_FR[feature_E, rank_E] = key_E
        self.keys_FK = torch.cat([self.keys_FK, new_FR], dim=1).topk(K, dim=1).values

    def result(self) -> tuple[Tensor, Tensor]:
        """(values float32 [F, K], token ids int64 [F, K]), largest first; unused slots (0, −1)."""
        return unpack(self.keys_FK)
