"""The feature cache's identity and layout: what the writer promises and the reader checks.

``features-<id>.h5``, where ``<id>`` hashes the model fingerprint, the dictionaries' hash and the
build settings, so changed weights or settings never reuse an old file. Layout (F features per
module, K top tokens, P predicates, B histogram bins):

    attrs            format, format_version, cache_id, model_fingerprint, dictionaries_hash,
                     n_games, seed, top_k, batch_games, n_tokens, created,
                     modules (JSON {module: features}, bottom module first)
    predicates       [P] predicate names (see ``predicates.py``)
    predicate_count  int64 [P] tokens where each predicate holds
    histogram_edges  float64 [B + 1]
    games/tokens     uint8 [n_games, 60] (game k of ``seed``, as ``iter_games`` makes it)
    modules/<M>/     attrs architecture, hook_name, d_sae
        summary  [F] records: fire_count int64, activation_sum float64, label_candidates int16
                 [C, 3] (predicate indices, −1 unused), label_scores float32 [C, 3] (precision,
                 recall, F1; see ``labels.py``), label_top_share float32 [C] (the share of the
                 top tokens that satisfy the candidate); one chunk per module, for scanning
                 every label at once
        details  [F] records, a few features per chunk, so one feature is one small read:
            histogram int64 [B]
            top_game int32 [K], top_position int8 [K], top_square int8 [K], top_activation
                float32 [K]   (largest first; unused slots: activation 0, the rest −1)
            example_predicates int32 [P]   predicate counts over the top tokens (the panels)
            example_positions int32 [60]   position histogram of the top tokens
            logit_effect float32 [64]      W_dec[f] @ W_U on each square's move logit (NaN: centre)
        predicate_tp  int32 [F, P]: tokens where the feature fires and the predicate holds (the
                 labels' true positives: any feature scored against any predicate)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from othello_tui.dictionary.sae import Dictionary
from othello_tui.features.accumulate import HISTOGRAM_EDGES
from othello_tui.features.labels import CONJUNCTION_SIZE, N_CANDIDATES
from othello_tui.features.predicates import N_PREDICATES
from othello_tui.game.generator import N_MOVES
from othello_tui.game.squares import N_SQUARES

FORMAT = "othello-tui feature cache"
FORMAT_VERSION = 5


def summary_dtype() -> np.dtype:
    return np.dtype(
        [
            ("fire_count", "<i8"),
            ("activation_sum", "<f8"),
            ("label_candidates", "<i2", (N_CANDIDATES, CONJUNCTION_SIZE)),
            ("label_scores", "<f4", (N_CANDIDATES, 3)),
            ("label_top_share", "<f4", (N_CANDIDATES,)),
        ]
    )


def details_dtype(top_k: int) -> np.dtype:
    return np.dtype(
        [
            ("histogram", "<i8", (len(HISTOGRAM_EDGES) - 1,)),
            ("top_game", "<i4", (top_k,)),
            ("top_position", "i1", (top_k,)),
            ("top_square", "i1", (top_k,)),
            ("top_activation", "<f4", (top_k,)),
            ("example_predicates", "<i4", (N_PREDICATES,)),
            ("example_positions", "<i4", (N_MOVES,)),
            ("logit_effect", "<f4", (N_SQUARES,)),
        ]
    )


@dataclass(frozen=True)
class BuildSettings:
    n_games: int = 20_000
    seed: int = 0
    top_k: int = 256
    batch_games: int = 256  # games per forward pass; chunking can move activations by rounding

    def to_dict(self) -> dict:
        return asdict(self)


def dictionaries_hash(dictionaries: Mapping[str, Dictionary]) -> str:
    """A short hash of every dictionary's config and tensors, in module order."""
    digest = hashlib.sha256()
    for module in sorted(dictionaries):
        dictionary = dictionaries[module]
        config = dictionary.cfg.to_dict()
        if config["normalize_activations"] == "none":  # a later field: caches built before it stay valid
            del config["normalize_activations"]
        digest.update(json.dumps(config, sort_keys=True).encode())
        for name, value in sorted(dictionary.state_dict().items()):
            digest.update(name.encode())
            digest.update(value.detach().cpu().contiguous().numpy().data)  # its buffer: no copy
    return digest.hexdigest()[:16]


def cache_id(model_fingerprint: str, dictionaries_digest: str, settings: BuildSettings) -> str:
    identity = {
        "format_version": FORMAT_VERSION,
        "model": model_fingerprint,
        "dictionaries": dictionaries_digest,
        **settings.to_dict(),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def cache_filename(identity: str) -> str:
    return f"features-{identity}.h5"


def cache_path(
    directory: Path, model_fingerprint: str, dictionaries_digest: str, settings: BuildSettings
) -> Path:
    return Path(directory) / cache_filename(cache_id(model_fingerprint, dictionaries_digest, settings))
