"""Streaming statistics of one dictionary's activations: firing counts, activation sums and
histograms, the top-k tokens and the label counts, updated chunk by chunk in flat memory.

Shape legend: N tokens of a chunk, F features, E firing entries (token, feature), B histogram bins.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from othello_tui.dictionary.sae import ActiveEntries
from othello_tui.features.labels import LabelCounts, PredicateCounts
from othello_tui.features.topk import StreamingTopK

#: activation histogram bin edges: 10 log-spaced bins per decade from 1e-3 to 1e3, fixed in
#: advance so a single pass can fill them; values outside land in the first or last bin
HISTOGRAM_EDGES = np.geomspace(1e-3, 1e3, 61)


class ModuleStatistics:
    def __init__(self, n_features: int, top_k: int, device: torch.device | str = "cpu"):
        self.n_features = n_features
        self.activation_sum_F = torch.zeros(n_features, dtype=torch.float64, device=device)
        self.histogram_FB = torch.zeros(
            n_features, len(HISTOGRAM_EDGES) - 1, dtype=torch.int64, device=device
        )
        self.top = StreamingTopK(n_features, top_k, device)
        self.labels = LabelCounts(n_features, device)
        self._inner_edges = torch.as_tensor(HISTOGRAM_EDGES[1:-1], device=device)

    @property
    def fire_count_F(self) -> Tensor:
        return self.labels.fires_F

    def update(
        self,
        active: ActiveEntries,
        token_N: Tensor,
        predicates_NP: Tensor,
        predicates: PredicateCounts,
        example_N: Tensor | None = None,
    ) -> None:
        """Add a chunk: its active features, global token ids (increasing), int8 predicates of its
        tokens, and which tokens may be top examples (bool; default all: see ``openings.py``)."""
        position_E, feature_E, value_E = active.position_E, active.feature_E, active.value_E
        F, B = self.histogram_FB.shape
        fires_NF = torch.zeros(active.n_tokens, F, dtype=torch.int8, device=value_E.device)
        fires_NF.view(-1)[position_E * F + feature_E] = 1
        value64_E = value_E.double()
        self.activation_sum_F += torch.bincount(feature_E, weights=value64_E, minlength=F)
        bin_E = torch.bucketize(value64_E, self._inner_edges, right=True)  # edges[b] <= v < edges[b+1]
        self.histogram_FB += torch.bincount(feature_E * B + bin_E, minlength=F * B).view(F, B)
        keep_E = slice(None) if example_N is None else example_N[position_E]
        self.top.update(feature_E[keep_E], token_N[position_E][keep_E], value_E[keep_E])
        self.labels.update(fires_NF, feature_E, position_E, predicates_NP, predicates)
