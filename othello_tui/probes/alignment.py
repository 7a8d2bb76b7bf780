"""Which dictionary features point where a probe points (issue 9, part 3: the cosine half).

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

Shape legend: P probe directions, D d_model, F features.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from othello_tui.dictionary.sae import Dictionary
from othello_tui.game.squares import CENTRE_SQUARES, N_SQUARES, square_name
from othello_tui.probes.families import FAMILY, site_of_module
from othello_tui.probes.linear import LinearProbes

REDISCOVERY_COSINE = 0.7
REDISCOVERY_F1 = 0.8
_FEATURE_ID = re.compile(r"(L\d+[AM])(\d+)")


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
    matches: tuple[FeatureMatch, ...]

    @property
    def best(self) -> FeatureMatch:
        return self.matches[0]

    def rediscovered(self, min_cosine: float = REDISCOVERY_COSINE, min_f1: float = REDISCOVERY_F1) -> bool:
        """Some feature has |cos| ≥ ``min_cosine`` or, where known, F1 ≥ ``min_f1`` (issue 9)."""
        return any(abs(m.cosine) >= min_cosine or (m.f1 is not None and m.f1 >= min_f1) for m in self.matches)


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

    def align(self, top: int = 3) -> list[ProbeAlignment]:
        """For every module and probe direction, the ``top`` features by |cos|, best first."""
        alignments = []
        for module in self.dictionaries:
            directions, cos_PF = self.cosines(module)
            _, top_index_PK = cos_PF.abs().topk(min(top, cos_PF.shape[1]), dim=1)
            signed_PK = cos_PF.gather(1, top_index_PK)
            for direction, cos_K, index_K in zip(
                directions, signed_PK.tolist(), top_index_PK.tolist(), strict=True
            ):
                matches = tuple(
                    FeatureMatch(f"{module}{i}", round(c, 6)) for c, i in zip(cos_K, index_K, strict=True)
                )
                alignments.append(ProbeAlignment(direction, module, site_of_module(module), matches))
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
