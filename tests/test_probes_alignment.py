"""Probe directions and their cosines with dictionary decoder rows, on hand-set weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from othello_tui.dictionary.sae import Dictionary, DictionaryConfig, hook_name_of
from othello_tui.game.squares import CENTRE_SQUARES, parse_square
from othello_tui.probes.alignment import (
    KINDS,
    FeatureAlignment,
    FeatureMatch,
    ProbeAligner,
    ProbeAlignment,
    parse_feature_id,
    probe_directions,
    rediscovery_counts,
)
from othello_tui.probes.families import CORNERS, probe_sites
from othello_tui.probes.linear import LinearProbes

C4, E2 = parse_square("c-4"), parse_square("e-2")
SITE = "blocks.0.hook_resid_post"  # where L0A and L0M write


def probes_with_random_weights(n_layers: int = 2, d_model: int = 4) -> LinearProbes:
    probes = LinearProbes(probe_sites(n_layers), d_model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for value in probes.parameters():
            value.copy_(torch.randn(value.shape, generator=generator))
    return probes


def dictionary(module: str, rows: list[list[float]]) -> Dictionary:
    cfg = DictionaryConfig(module, hook_name_of(module), "topk", d_in=len(rows[0]), d_sae=len(rows), k=1)
    result = Dictionary(cfg)
    with torch.no_grad():
        result.W_dec.copy_(torch.tensor(rows))
    return result


def test_directions_are_the_documented_class_contrasts():
    probes = probes_with_random_weights()
    directions, vectors_PD = probe_directions(probes, SITE)
    by_name = {d.name: v for d, v in zip(directions, vectors_PD, strict=True)}
    W_mt, W_colour = probes.W["mine_theirs"][1].detach(), probes.W["colour"][1].detach()
    torch.testing.assert_close(by_name["c-4 mine"], W_mt[:, C4, 0] - W_mt[:, C4, 1])
    torch.testing.assert_close(by_name["c-4 empty"], W_mt[:, C4, 2] - (W_mt[:, C4, 0] + W_mt[:, C4, 1]) / 2)
    torch.testing.assert_close(by_name["c-4 black"], W_colour[:, C4, 0] - W_colour[:, C4, 1])
    torch.testing.assert_close(by_name["e-2 flipped"], probes.W["flipped"][1, :, E2].detach())
    torch.testing.assert_close(by_name["e-2 legal"], probes.W["legal"][1, :, E2].detach())
    kinds = [d.contrast.positive for d in directions]
    assert {k: kinds.count(k) for k in KINDS} == {
        "mine": 64,
        "empty": 60,
        "black": 64,
        "flipped": 60,
        "legal": 60,
    }
    assert len(by_name) == len(directions)  # names are unique
    assert not {f"{d.name.split()[0]}" for d in directions if d.contrast.positive == "empty"} & {
        "d-3", "d-4", "e-3", "e-4"
    }  # fmt: skip
    assert {d.square for d in directions if d.contrast.positive == "flipped"}.isdisjoint(CORNERS)
    assert {d.square for d in directions if d.contrast.positive == "legal"}.isdisjoint(CENTRE_SQUARES)


def test_readings_follow_the_sign():
    directions, _ = probe_directions(probes_with_random_weights(), SITE)
    by_name = {d.name: d for d in directions}
    assert by_name["c-4 mine"].reading(0.8) == "c-4 mine"
    assert by_name["c-4 mine"].reading(-0.8) == "c-4 theirs"
    assert by_name["c-4 black"].reading(-0.1) == "c-4 white"
    assert by_name["c-4 empty"].reading(-0.9) == "c-4 occupied"
    assert by_name["e-2 legal"].reading(-0.9) == "e-2 not legal"


@pytest.fixture
def aligner():
    """Probes whose only non-zero direction at the site of L0 is "c-4 mine" = e0, and at the site
    of L1 "e-2 legal" = e1; decoder rows at known angles to them."""
    probes = LinearProbes(probe_sites(2), 4)
    with torch.no_grad():
        probes.W["mine_theirs"][1, 0, C4, :2] = torch.tensor([0.5, -0.5])  # mine − theirs = e0, empty 0
        probes.W["legal"][2, 1, E2] = 3.0  # legal = 3·e1: scale must not matter
    dictionaries = {
        "L0A": dictionary("L0A", [[1, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 1, 0]]),
        "L1M": dictionary("L1M", [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0.5, 0.5, 0]]),
    }
    return ProbeAligner(probes, dictionaries)


def test_best_features_by_absolute_cosine_keep_their_sign(aligner):
    alignments = {(a.module, a.direction.name): a for a in aligner.align(top=2)}
    c4 = alignments["L0A", "c-4 mine"]
    assert c4.site == SITE
    assert [m.feature for m in c4.matches] == ["L0A1", "L0A0"]
    assert [m.cosine for m in c4.matches] == pytest.approx([-1.0, 1 / math.sqrt(2)])
    e2 = alignments["L1M", "e-2 legal"]
    assert e2.site == "blocks.1.hook_resid_post"
    assert [m.feature for m in e2.matches] == ["L1M0", "L1M2"]
    assert [m.cosine for m in e2.matches] == pytest.approx([1.0, 1 / math.sqrt(2)])
    # each module is compared with the probe of its own site only: L1's "c-4 mine" is zero
    assert alignments["L1M", "c-4 mine"].best.cosine == 0.0


def test_rediscovery_counts_per_module_and_kind(aligner):
    counts = rediscovery_counts(aligner.align())
    assert counts["L0A"]["mine"] == (1, 64) and counts["L0A"]["legal"] == (0, 60)
    assert counts["L1M"]["legal"] == (1, 60) and counts["L1M"]["mine"] == (0, 64)
    assert counts["any"] == {
        "mine": (1, 64),
        "empty": (0, 60),
        "black": (0, 64),
        "flipped": (0, 60),
        "legal": (1, 60),
    }
    assert rediscovery_counts(aligner.align(), min_cosine=1.01)["any"]["mine"] == (0, 64)


def test_the_best_classifier_counts_as_rediscovery_too():
    direction = probe_directions(probes_with_random_weights(), SITE)[0][0]
    weak = (FeatureMatch("L0A3", 0.2, f1=0.9),)  # an aligned feature's F1 of its own reading: shown only
    assert not ProbeAlignment(direction, "L0A", SITE, weak).rediscovered()
    assert ProbeAlignment(direction, "L0A", SITE, weak, FeatureMatch("L0A5", 0.1, 0.85)).rediscovered()
    assert not ProbeAlignment(direction, "L0A", SITE, weak, FeatureMatch("L0A5", 0.1, 0.75)).rediscovered()
    assert ProbeAlignment(direction, "L0A", SITE, (FeatureMatch("L0A3", -0.75),)).rediscovered()


def test_readings_map_to_cache_predicates():
    directions = {d.name: d for d in probe_directions(probes_with_random_weights(), SITE)[0]}
    assert directions["c-4 mine"].predicate(0.5) == ("mine=c-4", False)
    assert directions["c-4 mine"].predicate(-0.5) == ("theirs=c-4", False)
    assert directions["c-4 empty"].predicate(-0.5) == ("empty=c-4", True)  # "occupied"
    assert directions["c-4 legal"].predicate(-0.5) == ("legal=c-4", True)
    assert directions["c-4 black"].predicate(0.5) is None


def test_f1s_come_from_the_cache_lookup(aligner):
    asked = []

    def f1_of(module, predicate, negate):
        asked.append((module, predicate, negate))
        scores = np.full(3, 0.1, np.float32)
        scores[2] = 0.9 if (predicate, negate) == ("mine=c-4", False) else 0.2
        return scores

    alignments = {(a.module, a.direction.name): a for a in aligner.align(top=2, f1_of=f1_of)}
    c4 = alignments["L0A", "c-4 mine"]
    assert [m.f1 for m in c4.matches] == pytest.approx([0.1, 0.1])  # L0A1 reads "theirs", L0A0 "mine"
    assert c4.best_f1 == FeatureMatch("L0A2", 0.0, pytest.approx(0.9))  # row 2 is orthogonal to e0
    assert alignments["L0A", "c-4 black"].best_f1 is None
    assert ("L0A", "theirs=c-4", False) in asked and len(asked) == len(set(asked))  # each fetched once
    counts = rediscovery_counts(list(alignments.values()))
    assert counts["L1M"]["mine"] == (1, 64)  # by F1 alone: no L1M row aligns with it
    assert counts["L0A"]["legal"] == (0, 60) and counts["any"]["black"] == (0, 64)


def test_alignments_for_one_feature(aligner):
    assert aligner.for_feature("L0A1") == [FeatureAlignment("c-4 mine", "c-4 theirs", pytest.approx(-1.0))]
    assert aligner.for_feature("L0A0", min_abs_cosine=0.7) == [
        FeatureAlignment("c-4 mine", "c-4 mine", pytest.approx(1 / math.sqrt(2)))
    ]
    assert aligner.for_feature("L0A0", min_abs_cosine=0.8) == []
    assert aligner.for_feature("L0A2") == []
    assert parse_feature_id(" L12M345 ") == ("L12M", 345)
    for bad, message in (
        ("L0X3", "not a feature id"),
        ("L3M1", "no dictionary for L3M"),
        ("L0A3", "features 0…2"),
    ):
        with pytest.raises(ValueError, match=message):
            aligner.for_feature(bad)


def test_dictionaries_need_a_probe_site():
    probes = LinearProbes(probe_sites(1), 4)
    with pytest.raises(ValueError, match="no site blocks.1.hook_resid_post"):
        ProbeAligner(probes, {"L1A": dictionary("L1A", [[1, 0, 0, 0]])})
