"""Which dictionary features point where a probe points, and which classify what it reads (issue 9,
part 3).

A probe reads a property off the residual stream at a site; the modules ``L{l}A`` and ``L{l}M`` write
into the site after block ``l`` (``blocks.{l}.hook_resid_post``). For every probe direction of that
site and every feature of those modules' dictionaries, the cosine between the direction and the
feature's decoder row says how nearly the feature writes exactly what the probe reads.

Probe directions (a weighted sum of class columns of ``W[site, :, square]``, named by what the
positive side reads; a negative cosine reads the other side):

- ``c-4 mine``    mine_theirs  W_mine − W_theirs                     (negative: "c-4 theirs")
- ``c-4 empty``   mine_theirs  W_empty − (W_mine + W_theirs)/2        (negative: "c-4 occupied")
- ``c-4 black``   colour       W_black − W_white                     (negative: "c-4 white")
- ``c-4 flipped`` flipped      W                                      (negative: "c-4 not flipped")
- ``c-4 legal``   legal        W                                      (negative: "c-4 not legal")

Softmax logits are unchanged by adding one vector to every class column, so only contrasts
between classes are meaningful; hence "empty" against the mean of the other two. Squares whose
label never changes (see ``families.py``) have no direction: centre squares have no "empty",
corners no "flipped", centre squares no "legal". Colour's "empty" would repeat mine_theirs' one.

The F1 half needs the feature cache: each feature scored as a classifier of the board predicate a
direction reads ("c-4 mine" is the predicate ``mine=c-4``; "c-4 occupied" the negation of
``empty=c-4``) over every cached token. A direction counts as rediscovered when some feature of the
module has |cos| ≥ 0.7 with it, or classifies its positive reading with F1 ≥ 0.8. Colour directions
have no predicate (the cache's predicates are relative to the mover, as the model's board is).

Shape legend: P probe directions, D d_model, F features.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from othello_tui.dictionary.sae import Dictionary
from othello_tui.game.squares import CENTRE_SQUARES, N_SQUARES, square_name
from othello_tui.probes.families import FAMILY, site_of_module
from othello_tui.probes.linear import LinearProbes

REDISCOVERY_COSINE = 0.7
REDISCOVERY_F1 = 0.8
_PREDICATE_KINDS = ("mine", "theirs", "empty", "flipped", "legal")  # readings named like predicates
_FEATURE_ID = re.compile(r"(L\d+[AMR])(\d+)")


@dataclass(frozen=True)
class Contrast:
    family: str
    positive: str  # what the direction reads
    negative: str  # what its opposite reads
    weights: tuple[float, ...]  # over the family's class columns; binary families have one column
    skip: tuple[int, ...]  # squares without this direction


#: every kind of probe direction, in report order
CONTRASTS = (
    Contrast("mine_theirs", "mine", "theirs", (1.0, -1.0, 0.0), ()),
    Contrast("mine_theirs", "empty", "occupied", (-0.5, -0.5, 1.0), CENTRE_SQUARES),
    Contrast("colour", "black", "white", (1.0, -1.0, 0.0), ()),
    Contrast("flipped", "flipped", "not flipped", (1.0,), FAMILY["flipped"].constant_squares),
    Contrast("legal", "legal", "not legal", (1.0,), FAMILY["legal"].constant_squares),
)
KINDS = tuple(contrast.positive for contrast in CONTRASTS)


@dataclass(frozen=True)
class ProbeDirection:
    contrast: Contrast
    square: int

    @property
    def name(self) -> str:
        """``"c-4 mine"``."""
        return f"{square_name(self.square)} {self.contrast.positive}"

    def reading(self, cosine: float) -> str:
        """What a feature with this signed cosine reads: ``"c-4 mine"`` or ``"c-4 theirs"``."""
        side = self.contrast.positive if cosine >= 0 else self.contrast.negative
        return f"{square_name(self.square)} {side}"

    def predicate(self, cosine: float = 1.0) -> tuple[str, bool] | None:
        """The feature-cache predicate of the reading and whether it is negated:
        ``("mine=c-4", False)``, ``("empty=c-4", True)`` for "occupied"; None for colours."""
        positive = cosine >= 0
        side = self.contrast.positive if positive else self.contrast.negative
        name = square_name(self.square)
        if side in _PREDICATE_KINDS:
            return f"{side}={name}", False
        if self.contrast.positive in _PREDICATE_KINDS:  # "not legal", "occupied"
            return f"{self.contrast.positive}={name}", True
        return None


@dataclass(frozen=True)
class FeatureMatch:
    feature: str  # "L3M17"
    cosine: float  # signed: negative means the feature writes the opposite reading
    f1: float | None = None  # the feature as a classifier of the reading (from the feature cache)


@dataclass(frozen=True)
class ProbeAlignment:
    """The features of one module that align best with one probe direction, best first."""

    direction: ProbeDirection
    module: str
    site: str
    matches: tuple[FeatureMatch, ...]  # best |cos| first; f1 of each one's own reading, when known
    best_f1: FeatureMatch | None = None  # the module's best classifier of the positive reading

    @property
    def best(self) -> FeatureMatch:
        return self.matches[0]

    def rediscovered(self, min_cosine: float = REDISCOVERY_COSINE, min_f1: float = REDISCOVERY_F1) -> bool:
        """Some feature has |cos| ≥ ``min_cosine``, or classifies the positive reading with
        F1 ≥ ``min_f1`` (where the F1s are known)."""
        return any(abs(m.cosine) >= min_cosine for m in self.matches) or (
            self.best_f1 is not None and self.best_f1.f1 is not None and self.best_f1.f1 >= min_f1
        )


@dataclass(frozen=True)
class FeatureAlignment:
    """A probe direction one feature aligns with: "aligned with probe c-4 theirs (cos −0.83)"."""

    probe: str  # the direction's name, "c-4 mine"
    reading: str  # what the feature reads given the sign, "c-4 theirs"
    cosine: float


def probe_directions(probes: LinearProbes, site: str) -> tuple[list[ProbeDirection], Tensor]:
    """Every probe direction at ``site``: their descriptions and the vectors [P, D] (not normalised)."""
    index = probes.sites.index(site)
    directions, vectors = [], []
    for contrast in CONTRASTS:
        if contrast.family not in probes.families:
            continue
        W_DQC = probes.W[contrast.family][index].detach()
        if W_DQC.dim() == 2:  # binary: one logit column
            W_DQC = W_DQC[..., None]
        weights_C = torch.tensor(contrast.weights, dtype=W_DQC.dtype, device=W_DQC.device)
        vector_QD = (W_DQC @ weights_C).T
        for square in range(N_SQUARES):
            if square not in contrast.skip:
                directions.append(ProbeDirection(contrast, square))
                vectors.append(vector_QD[square])
    return directions, torch.stack(vectors)


def parse_feature_id(feature_id: str) -> tuple[str, int]:
    """``"L3M17" -> ("L3M", 17)``."""
    match = _FEATURE_ID.fullmatch(feature_id.strip())
    if match is None:
        raise ValueError(f"{feature_id!r} is not a feature id (expected e.g. L3M17)")
    return match[1], int(match[2])


class ProbeAligner:
    """Cosines between the probe directions of each module's site and that module's decoder rows.

    ``align()`` gives, per module and probe direction, the best-aligned features (the rediscovery
    report); ``for_feature("L3M17")`` gives the probe directions one feature aligns with (the
    feature page). Cosine matrices are computed once per module, on first use."""

    def __init__(self, probes: LinearProbes, dictionaries: dict[str, Dictionary]):
        missing = sorted({site_of_module(m) for m in dictionaries} - set(probes.sites))
        if missing:
            raise ValueError(f"the probes have no site {', '.join(missing)} for these dictionaries")
        self.probes, self.dictionaries = probes, dictionaries
        self._cosines: dict[str, tuple[list[ProbeDirection], Tensor]] = {}

    def cosines(self, module: str) -> tuple[list[ProbeDirection], Tensor]:
        """The directions of ``module``'s site and the cosines [P, F] with its decoder rows."""
        if module not in self._cosines:
            directions, vectors_PD = probe_directions(self.probes, site_of_module(module))
            W_dec_FD = self.dictionaries[module].W_dec.detach().to(vectors_PD)
            cos_PF = F.normalize(vectors_PD, dim=1) @ F.normalize(W_dec_FD, dim=1).T
            self._cosines[module] = directions, cos_PF.cpu()
        return self._cosines[module]

    def align(self, top: int = 3, f1_of: PredicateF1 | None = None) -> list[ProbeAlignment]:
        """For every module and probe direction, the ``top`` features by |cos|, best first; with
        ``f1_of`` (``FeatureCache.predicate_f1``), their F1s and the best classifier's."""
        alignments = []
        for module in self.dictionaries:
            directions, cos_PF = self.cosines(module)
            _, top_index_PK = cos_PF.abs().topk(min(top, cos_PF.shape[1]), dim=1)
            signed_PK = cos_PF.gather(1, top_index_PK)
            for direction, cos_K, index_K, cos_F in zip(
                directions, signed_PK.tolist(), top_index_PK.tolist(), cos_PF, strict=True
            ):
                f1 = _F1Lookup(f1_of, module, direction)
                matches = tuple(
                    FeatureMatch(f"{module}{i}", round(c, 6), f1.of(i, c))
                    for c, i in zip(cos_K, index_K, strict=True)
                )
                alignments.append(
                    ProbeAlignment(direction, module, site_of_module(module), matches, f1.best(cos_F))
                )
        return alignments

    def for_feature(
        self, feature_id: str, min_abs_cosine: float = 0.5, limit: int = 5
    ) -> list[FeatureAlignment]:
        """The probe directions of the feature's site with |cos| ≥ ``min_abs_cosine``, by |cos|."""
        module, index = parse_feature_id(feature_id)
        if module not in self.dictionaries:
            raise ValueError(f"no dictionary for {module} (have {', '.join(self.dictionaries)})")
        directions, cos_PF = self.cosines(module)
        if not 0 <= index < cos_PF.shape[1]:
            raise ValueError(f"{module} has features 0…{cos_PF.shape[1] - 1}, not {index}")
        cos_P = cos_PF[:, index]
        order = cos_P.abs().argsort(descending=True)[:limit].tolist()
        return [
            FeatureAlignment(directions[p].name, directions[p].reading(c), round(c, 6))
            for p in order
            if abs(c := float(cos_P[p])) >= min_abs_cosine
        ]


#: ``(module, predicate, negate) -> float32 [F]``: each feature's F1 as a classifier of the predicate
PredicateF1 = Callable[[str, str, bool], np.ndarray]


class _F1Lookup:
    """F1s of one module's features for one direction's readings, fetched once each."""

    def __init__(self, f1_of: PredicateF1 | None, module: str, direction: ProbeDirection):
        self.f1_of, self.module, self.direction = f1_of, module, direction
        self._by_predicate: dict[tuple[str, bool], np.ndarray] = {}

    def _scores(self, cosine: float) -> np.ndarray | None:
        predicate = self.direction.predicate(cosine)
        if self.f1_of is None or predicate is None:
            return None
        if predicate not in self._by_predicate:
            self._by_predicate[predicate] = self.f1_of(self.module, *predicate)
        return self._by_predicate[predicate]

    def of(self, feature: int, cosine: float) -> float | None:
        scores = self._scores(cosine)
        return None if scores is None else round(float(scores[feature]), 6)

    def best(self, cos_F: Tensor) -> FeatureMatch | None:
        scores = self._scores(1.0)
        if scores is None:
            return None
        feature = int(np.argmax(scores))
        return FeatureMatch(
            f"{self.module}{feature}", round(float(cos_F[feature]), 6), round(float(scores[feature]), 6)
        )


def rediscovery_counts(
    alignments: list[ProbeAlignment], min_cosine: float = REDISCOVERY_COSINE, min_f1: float = REDISCOVERY_F1
) -> dict[str, dict[str, tuple[int, int]]]:
    """Module -> kind ("mine", "empty", …) -> (directions rediscovered, directions), plus the row
    ``"any"``: probe properties (kind and square) rediscovered by some module at its own site."""
    counts: dict[str, dict[str, list[int]]] = {}
    anywhere: dict[str, set[int]] = {kind: set() for kind in KINDS}
    squares: dict[str, set[int]] = {kind: set() for kind in KINDS}
    for alignment in alignments:
        kind, square = alignment.direction.contrast.positive, alignment.direction.square
        row = counts.setdefault(alignment.module, {k: [0, 0] for k in KINDS})
        found = alignment.rediscovered(min_cosine, min_f1)
        row[kind][0] += found
        row[kind][1] += 1
        squares[kind].add(square)
        if found:
            anywhere[kind].add(square)
    result = {module: {k: (v[0], v[1]) for k, v in row.items()} for module, row in counts.items()}
    result["any"] = {kind: (len(anywhere[kind]), len(squares[kind])) for kind in KINDS}
    return result


@dataclass(frozen=True)
class FlipFeatures:
    """Per square, the residual feature whose decoder row points most nearly along the probe's
    class difference: ``index_QC[q, to]`` (``to`` 0 mine, 1 theirs) pushes the reading of square q
    towards ``to`` (``W_to − W_other``), with cosine ``cosine_QC[q, to]``."""

    module: str  # "L3R"
    index_QC: np.ndarray  # int64 [64, 2]
    cosine_QC: np.ndarray  # float32 [64, 2]

    def feature(self, square: int, to: int) -> tuple[str, float]:
        """(``"L3R512"``, its cosine) for flipping ``square`` to ``to``."""
        return f"{self.module}{int(self.index_QC[square, to])}", float(self.cosine_QC[square, to])


def flip_features(probes: LinearProbes, module: str, dictionary: Dictionary) -> FlipFeatures:
    """The best-aligned decoder rows of residual dictionary ``module`` for flipping each square's
    mine/theirs reading at the site it reads (the belief edit along a feature, DESIGN.md §3.9)."""
    mine_DQ = F.normalize(_mine_minus_theirs(probes, module), dim=0)
    cos_FQ = F.normalize(dictionary.W_dec.detach().to(mine_DQ), dim=1) @ mine_DQ
    cos_QC = torch.stack([cos_FQ.T, -cos_FQ.T], dim=-1)  # towards mine, towards theirs: [Q, F, 2]
    cosine_QC, index_QC = cos_QC.max(dim=1)
    return FlipFeatures(module, index_QC.cpu().numpy(), cosine_QC.float().cpu().numpy())


def decoder_readings(probes: LinearProbes, module: str, dictionary: Dictionary) -> np.ndarray:
    """float32 [F, 64]: what each feature of residual dictionary ``module`` writes into the
    mine/theirs probe of its site, per unit of activation: ``W_dec[f]·(W_mine − W_theirs)`` on every
    square (positive: the square reads more mine; the feature page's belief panel)."""
    mine_DQ = _mine_minus_theirs(probes, module)
    return (dictionary.W_dec.detach().to(mine_DQ) @ mine_DQ).float().cpu().numpy()


def _mine_minus_theirs(probes: LinearProbes, module: str) -> Tensor:
    """[D, 64]: the mine/theirs probe's ``W_mine − W_theirs`` at the site ``module`` reads."""
    W_DQC = probes.W["mine_theirs"][probes.sites.index(site_of_module(module))].detach()
    return W_DQC[..., 0] - W_DQC[..., 1]
