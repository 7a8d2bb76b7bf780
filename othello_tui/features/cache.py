"""Reading a feature cache: checked on open, then numpy arrays and dataclasses out; no h5py
handle ever leaves this module (STYLE.md §7). Each read opens the file briefly, so a
``FeatureCache`` is safe to share with worker threads.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import h5py
import numpy as np

from othello_tui.features.format import (
    FORMAT,
    FORMAT_VERSION,
    BuildSettings,
    cache_filename,
    details_dtype,
    summary_dtype,
)
from othello_tui.features.labels import (
    GOOD_LABEL_F1,
    LABEL_F1_FLOOR,
    Label,
    f1_score,
    informative,
    label_text,
)
from othello_tui.features.meaning import Meaning, meaning
from othello_tui.features.predicates import PREDICATE_NAMES
from othello_tui.features.stats import Example, FeatureStats, panels_from_counts
from othello_tui.game.generator import N_MOVES

BUILD_HINT = "build it with `othello-tui cache build`"
REBUILD_HINT = "rebuild it with `othello-tui cache build`"
_HEADER = ("cache_id", "model_fingerprint", "dictionaries_hash", "n_tokens", "seed", "top_k", "batch_games")
_FEATURE_ID = re.compile(r"^(L\d+[AMR])(\d+)$", re.IGNORECASE)
T = TypeVar("T")


class CacheError(RuntimeError):
    """Not a usable feature cache: missing, foreign, truncated or corrupt. Never trusted."""


class StaleCacheError(CacheError):
    """A sound cache built for other weights or by another format version: rebuild it."""


class FeatureIdError(ValueError):
    """A feature id that names no feature of the cache; the message lists the valid range."""


@dataclass(frozen=True)
class LabelSummary:
    alive: int  # features that fire at least once in the cache's tokens
    labelled: int  # alive with a label (F1 ≥ LABEL_F1_FLOOR)
    good: int  # alive with a label of F1 ≥ GOOD_LABEL_F1

    @property
    def good_share(self) -> float:
        return self.good / max(self.alive, 1)


def parse_feature_id(feature_id: str, n_features: dict[str, int], owner: str) -> tuple[str, int]:
    """``"l2m845" -> ("L2M", 845)``, checked against ``n_features`` (module -> features) of
    ``owner`` ("this cache"); :class:`FeatureIdError` lists the valid range."""
    valid = f"modules {', '.join(n_features)}; indices 0…{max(n_features.values(), default=0) - 1}"
    match = _FEATURE_ID.match(feature_id.strip())
    if match is None:
        raise FeatureIdError(
            f"{feature_id!r} is not a feature id (a module and an index, e.g. L2M845; {valid})"
        )
    module, index = match[1].upper(), int(match[2])
    if module not in n_features:
        raise FeatureIdError(f"{owner} has no module {module} ({valid})")
    if index >= n_features[module]:
        raise FeatureIdError(f"{module} has features 0…{n_features[module] - 1}, not {index}")
    return module, index


class FeatureCache:
    """An opened, checked cache; see :func:`open_cache`."""

    def __init__(self, path: Path, attrs: dict, n_features: dict[str, int], histogram_edges: np.ndarray):
        self.path = path
        self.cache_id: str = attrs["cache_id"]
        self.model_fingerprint: str = attrs["model_fingerprint"]
        self.dictionaries_hash: str = attrs["dictionaries_hash"]
        self.settings = BuildSettings(*(int(attrs[k]) for k in ("n_games", "seed", "top_k", "batch_games")))
        self.n_tokens = int(attrs["n_tokens"])
        self.n_features = n_features  # module -> features, bottom module first
        self.modules = tuple(n_features)
        self.histogram_edges = histogram_edges
        self._labels: dict[str, list[Label | None]] = {}
        self._checked: set[str] = set()

    @contextmanager
    def _file(self) -> Iterator[h5py.File]:
        try:
            with h5py.File(self.path, "r") as f:
                yield f
        except OSError as error:
            raise CacheError(f"{self.path} cannot be read ({error}); delete it and {BUILD_HINT}") from None

    def _read(self, module: str, fn: Callable[[h5py.Group], T]) -> T:
        """``fn(group of module)`` on the open file; a module's datasets are checked on first use
        (checking all of them would dominate the cost of opening)."""
        with self._file() as f:
            group = f.get(f"modules/{module}")
            if module not in self._checked:
                _check_module(self.path, group, module, self.n_features[module], self.settings.top_k)
                self._checked.add(module)
            return fn(group)

    def parse(self, feature_id: str) -> tuple[str, int]:
        """``"L2M845" -> ("L2M", 845)``, checked against this cache's modules and sizes."""
        return parse_feature_id(feature_id, self.n_features, "this cache")

    def feature(self, feature_id: str) -> FeatureStats:
        module, f = self.parse(feature_id)
        summary, details = self._read(module, lambda g: (g["summary"][f], g["details"][f]))
        fired = details["top_activation"] > 0
        names = ("top_game", "top_position", "top_square", "top_activation")
        examples = [Example(*e) for e in zip(*(details[name][fired].tolist() for name in names), strict=True)]
        candidates = [
            self._label(c, s, share)
            for c, s, share in zip(
                summary["label_candidates"], summary["label_scores"], summary["label_top_share"], strict=True
            )
        ]
        return FeatureStats(
            feature_id=f"{module}{f}",
            module=module,
            index=f,
            fire_count=int(summary["fire_count"]),
            n_tokens=self.n_tokens,
            activation_sum=float(summary["activation_sum"]),
            histogram=details["histogram"],
            histogram_edges=self.histogram_edges,
            examples=examples,
            **panels_from_counts(details["example_predicates"], len(examples)),
            move_number=details["example_positions"],
            logit_effect=details["logit_effect"].reshape(8, 8),
            label=self._labelled(candidates[0]),
            candidates=[c for c in candidates if c.f1 > 0],  # F1 0: uninformative, nothing to show
        )

    @staticmethod
    def _label(candidate: np.ndarray, scores: np.ndarray, top_share: float) -> Label:
        precision, recall, f1 = (float(x) for x in scores)
        return Label(label_text(*(int(p) for p in candidate)), precision, recall, f1, float(top_share))

    @staticmethod
    def _labelled(label: Label) -> Label | None:
        return label if label.f1 >= LABEL_F1_FLOOR else None

    def labels(self, module: str) -> list[Label | None]:
        """Every feature's label (None where unlabelled), read once per module."""
        if module not in self.n_features:
            raise FeatureIdError(f"this cache has no module {module} (modules {', '.join(self.modules)})")
        if module not in self._labels:
            summary = self._read(module, lambda g: g["summary"][()])
            candidates, scores = summary["label_candidates"][:, 0], summary["label_scores"][:, 0]
            shares = summary["label_top_share"][:, 0]
            self._labels[module] = [
                self._labelled(self._label(c, s, share))
                for c, s, share in zip(candidates, scores, shares, strict=True)
            ]
        return self._labels[module]

    def label(self, feature_id: str) -> str | None:
        """``"move=f-1 (P 0.98, R 0.91)"`` or None: the shape the TUI's ``labels`` callback takes."""
        module, index = self.parse(feature_id)
        label = self.labels(module)[index]
        return None if label is None else str(label)

    def predicate_f1(self, module: str, predicate: str, negate: bool = False) -> np.ndarray:
        """float32 [F]: every feature of ``module`` as a classifier of ``predicate`` ("mine=c-4")
        over all cached tokens, or of its negation (``negate``: "c-4 not mine"); 0 where the
        feature says nothing about it (precision within ``MIN_LIFT`` of the base rate)."""
        if predicate not in PREDICATE_NAMES:
            raise ValueError(f"no predicate {predicate!r} (e.g. {PREDICATE_NAMES[0]})")
        if module not in self.n_features:
            raise FeatureIdError(f"this cache has no module {module} (modules {', '.join(self.modules)})")
        p = PREDICATE_NAMES.index(predicate)
        tp_F, fires_F, count = self._read(
            module,
            lambda g: (
                g["predicate_tp"][:, p].astype(np.int64),
                g["summary"].fields("fire_count")[()],
                int(g.file["predicate_count"][p]),
            ),
        )
        if negate:
            tp_F, count = fires_F - tp_F, self.n_tokens - count
        useful_F = informative(tp_F, fires_F, count, self.n_tokens)  # as for labels: no base-rate F1s
        return np.where(useful_F, f1_score(tp_F, fires_F, count), 0.0).astype(np.float32)

    def game_tokens(self, game: int) -> np.ndarray:
        """uint8 [60]: the moves of game ``game`` of the cache's seed (0 after its end)."""
        if not 0 <= game < self.settings.n_games:
            raise IndexError(f"game {game} is outside 0…{self.settings.n_games - 1}")
        with self._file() as f:
            return f["games/tokens"][game]

    def label_summary(self) -> dict[str, LabelSummary]:
        """Per module: alive features, labelled ones and those labelled with F1 ≥ GOOD_LABEL_F1."""
        summary = {}
        for module in self.modules:
            alive = self._read(module, lambda g: g["summary"].fields("fire_count")[()] > 0)
            labels = self.labels(module)
            labelled = alive & np.array([label is not None for label in labels])
            good = alive & np.array([label is not None and label.f1 >= GOOD_LABEL_F1 for label in labels])
            summary[module] = LabelSummary(int(alive.sum()), int(labelled.sum()), int(good.sum()))
        return summary

    def meaning_summary(self) -> dict[str, Meaning]:
        """Per module: labelled mass, top-k monosemantic share and density profile (``meaning.py``)."""
        base_rate_P = self._predicate_count / max(self.n_tokens, 1)
        result = {}
        for module in self.modules:
            summary, counts_FP, tops_FK = self._read(
                module,
                lambda g: (
                    g["summary"][()],
                    g["details"].fields("example_predicates")[()],
                    g["details"].fields("top_game")[()],
                ),
            )
            scores_FC3 = summary["label_scores"]
            precision_FC, recall_FC = scores_FC3[..., 0], scores_FC3[..., 1]
            holds_FC = precision_FC * summary["fire_count"][:, None] / np.maximum(recall_FC, 1e-12)
            candidate_base_FC = np.where(recall_FC > 0, holds_FC / max(self.n_tokens, 1), 1.0)
            result[module] = meaning(
                summary["fire_count"],
                summary["activation_sum"],
                scores_FC3[:, 0, 2],
                counts_FP,
                (tops_FK >= 0).sum(1),
                base_rate_P,
                summary["label_top_share"],
                candidate_base_FC,
                self.n_tokens,
            )
        return result

    @functools.cached_property
    def _predicate_count(self) -> np.ndarray:
        with self._file() as f:
            return f["predicate_count"][()].astype(np.float64)


def open_cache(
    path: Path, expect_model: str | None = None, expect_dictionaries: str | None = None
) -> FeatureCache:
    """Open and check a cache. :class:`StaleCacheError` when it was built by another format
    version, or for another model fingerprint / dictionaries hash than the ones expected (pass
    ``model_fingerprint(model)`` and ``dictionaries_hash(dictionaries)``); :class:`CacheError`
    when the file is missing, not HDF5, truncated, foreign or incomplete."""
    path = Path(path)
    if not path.exists():
        raise CacheError(f"no feature cache at {path}; {BUILD_HINT}")
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
            _check_identity(path, attrs, expect_model, expect_dictionaries)
            n_features = _check_layout(path, f, attrs)
            edges = f["histogram_edges"][()]
    except OSError as error:
        # nothing marks it as ours, so never advise deleting it (it may be anyone's file)
        raise CacheError(
            f"{path} is not a feature cache: not a readable HDF5 file, or a truncated one ({error}); give a file that"
            f" `othello-tui cache build` wrote, or {BUILD_HINT}"
        ) from None
    return FeatureCache(path, attrs, n_features, edges)


def _check_identity(
    path: Path, attrs: dict, expect_model: str | None, expect_dictionaries: str | None
) -> None:
    if attrs.get("format") != FORMAT:
        raise CacheError(
            f"{path} is an HDF5 file but not a feature cache; give a file that `othello-tui cache build`"
            f" wrote, or {BUILD_HINT}"
        )
    if attrs.get("format_version") != FORMAT_VERSION:
        raise StaleCacheError(
            f"{path} has cache format {attrs.get('format_version')}, this version reads {FORMAT_VERSION}; {REBUILD_HINT}"
        )
    for what, key, expected in (
        ("model weights", "model_fingerprint", expect_model),
        ("dictionaries", "dictionaries_hash", expect_dictionaries),
    ):
        if expected is not None and attrs.get(key) != expected:
            raise StaleCacheError(
                f"{path} was built for other {what} ({attrs.get(key)}, now {expected}); {REBUILD_HINT}"
            )


def _incomplete(path: Path, what: str) -> CacheError:
    return CacheError(f"{path} is incomplete ({what}); delete it and {BUILD_HINT}")


def _check_layout(path: Path, f: h5py.File, attrs: dict) -> dict[str, int]:
    """Module sizes from the header, after checking the datasets every module shares."""
    try:
        n_features = {str(m): int(n) for m, n in json.loads(attrs["modules"]).items()}
        n_games = int(attrs["n_games"])
        missing = [key for key in _HEADER if key not in attrs]
    except (KeyError, ValueError, TypeError, AttributeError):
        raise _incomplete(path, "no module list or game count") from None
    if missing:
        raise _incomplete(path, f"no {', '.join(missing)} in the header")
    if "games/tokens" not in f or f["games/tokens"].shape != (n_games, N_MOVES):
        raise _incomplete(path, "games")
    if "predicates" not in f or [name.decode() for name in f["predicates"][()]] != list(PREDICATE_NAMES):
        raise StaleCacheError(f"{path} uses other board predicates; {REBUILD_HINT}")
    if "histogram_edges" not in f:
        raise _incomplete(path, "histogram edges")
    return n_features


def _check_module(path: Path, group, module: str, n_features: int, top_k: int) -> None:
    expected = {
        "summary": (summary_dtype(), (n_features,)),
        "details": (details_dtype(top_k), (n_features,)),
        "predicate_tp": (np.dtype("<i4"), (n_features, len(PREDICATE_NAMES))),
    }
    for name, (dtype, shape) in expected.items():
        dataset = group.get(name) if isinstance(group, h5py.Group) else None
        if not isinstance(dataset, h5py.Dataset) or dataset.dtype != dtype or dataset.shape != shape:
            raise _incomplete(path, f"module {module}")


def find_cache(directory: Path, expect_model: str, expect_dictionaries: str) -> Path | None:
    """The newest readable cache in ``directory`` built for these weights, or None."""
    matches = []
    for path in Path(directory).glob(cache_filename("*")):
        try:
            open_cache(path, expect_model, expect_dictionaries)
        except CacheError:
            continue
        matches.append(path)
    return max(matches, key=lambda p: p.stat().st_mtime, default=None)
