"""Circuit attributions: completeness and agreement with independent recomputations.

The independent computations run the model's own modules (LayerNorm, Attention, MLP) on a
residual stream with one node removed, the relevant quantities frozen through hooks, instead of
re-deriving the attribution formulas.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from othello_tui.circuits.nodes import CircuitError, Target, parse_feature_node, parse_target
from othello_tui.circuits.trace import GameTrace
from othello_tui.dictionary.sae import Dictionary, DictionaryConfig, hook_name_of, module_names
from othello_tui.game.generator import generate_games
from othello_tui.game.squares import TOKEN_TO_SQUARE
from othello_tui.model.config import TINY
from othello_tui.model.transformer import OthelloGPT


def _double(model, dictionaries):
    return copy.deepcopy(model).double(), {m: copy.deepcopy(d).double() for m, d in dictionaries.items()}


@pytest.fixture(scope="module")
def random_setup():
    """A float64 random model with every bias and LayerNorm weight non-trivial, and dictionaries
    of every architecture; L1A has none (it enters as one whole-output node)."""
    generator = torch.Generator().manual_seed(1)
    model = OthelloGPT(TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3, generator=generator)
    dictionaries = {}
    for module, (architecture, k) in zip(
        module_names(2), [("standard", None), ("jumprelu", None), (None, None), ("topk", 6)], strict=True
    ):
        if architecture is None:
            continue
        cfg = DictionaryConfig(module, hook_name_of(module), architecture, d_in=32, d_sae=48, k=k)
        dictionary = Dictionary(cfg)
        dictionary.reset_parameters(generator)
        with torch.no_grad():
            dictionary.b_enc.normal_(0.0, 0.3, generator=generator)
            dictionary.b_dec.normal_(0.0, 0.3, generator=generator)
            dictionary.threshold.fill_(0.2)
        dictionaries[module] = dictionary
    return _double(model.eval(), dictionaries)


@pytest.fixture(scope="module")
def double_setup(tiny_model, tiny_dictionaries):
    return _double(tiny_model, tiny_dictionaries)


def _games(n: int, seed: int) -> list[np.ndarray]:
    games = generate_games(n, seed)
    return [
        tokens[: min(int(length), 59)].astype(np.int64)
        for tokens, length in zip(games.tokens, games.lengths, strict=True)
    ]


def _random_targets(trace: GameTrace, rng: np.random.Generator, per_kind: int) -> list[Target]:
    cfg, targets = trace.model.cfg, []
    for _ in range(per_kind):
        i = int(rng.integers(trace.n_positions))
        targets.append(Target("logit", i, square=int(TOKEN_TO_SQUARE[rng.integers(1, 61)])))
        module = str(rng.choice(sorted(trace.dictionaries)))
        targets.append(
            Target(
                "feature", i, module=module, feature=int(rng.integers(trace.dictionaries[module].cfg.d_sae))
            )
        )
        layer, head, key = rng.integers(cfg.n_layers), rng.integers(cfg.n_heads), rng.integers(i + 1)
        targets.append(Target("score", i, layer=int(layer), head=int(head), key=int(key)))
    return targets


def _relative_error(attribution) -> float:
    """|Σ contributions − value| over the scale of the sum, max(|value|, Σ|contributions|): float
    rounding grows with the size of the terms, not of their (possibly cancelling) total."""
    scale = max(abs(attribution.value), float(attribution.values_N.abs().sum()))
    return abs(attribution.sum() - attribution.value) / scale


@pytest.mark.parametrize(
    "setup, tolerance",
    [("float32", 1e-5), ("float64", 1e-10), ("random64", 1e-10)],
    ids=["f32", "f64", "random-f64"],
)
def test_contributions_sum_to_the_target(setup, tolerance, request, tiny_model, tiny_dictionaries):
    model, dictionaries = {
        "float32": (tiny_model, tiny_dictionaries),
        "float64": request.getfixturevalue("double_setup"),
        "random64": request.getfixturevalue("random_setup"),
    }[setup]
    rng = np.random.default_rng(0)
    errors = {"logit": [], "feature": [], "score": []}
    for tokens in _games(100, seed=11):
        trace = GameTrace(model, dictionaries, tokens)
        for target in _random_targets(trace, rng, per_kind=2):
            attribution = trace.contributions(target)
            assert attribution.value == trace.target_value(target)
            errors[target.kind].append(_relative_error(attribution))
    assert {kind: len(e) for kind, e in errors.items()} == {"logit": 200, "feature": 200, "score": 200}
    assert {kind: max(e) for kind, e in errors.items()} == pytest.approx(
        {k: 0 for k in errors}, abs=tolerance
    )


@pytest.mark.parametrize(
    "dtype, tolerance", [(torch.float32, 1e-5), (torch.float64, 1e-10)], ids=["f32", "f64"]
)
def test_contributions_sum_on_the_shipped_weights(dtype, tolerance):
    from othello_tui.dictionary.io import load_dictionaries
    from othello_tui.model.weights import WEIGHTS_DIR, load_model

    if not (WEIGHTS_DIR / "othello_gpt.json").exists() or not (WEIGHTS_DIR / "dictionaries").is_dir():
        pytest.skip("no shipped model and dictionaries in weights/ yet")
    model, _ = load_model(WEIGHTS_DIR)
    dictionaries = load_dictionaries(WEIGHTS_DIR / "dictionaries", model)
    model, dictionaries = model.to(dtype), {m: d.to(dtype) for m, d in dictionaries.items()}
    rng = np.random.default_rng(1)
    for tokens in _games(4, seed=12):
        trace = GameTrace(model, dictionaries, tokens)
        for target in _random_targets(trace, rng, per_kind=5):
            assert _relative_error(trace.contributions(target)) <= tolerance, target


def test_target_values_match_the_model(random_setup):
    model, dictionaries = random_setup
    tokens = _games(1, seed=2)[0]
    trace = GameTrace(model, dictionaries, tokens)
    with torch.no_grad():
        logits, cache = model.run_with_cache(torch.as_tensor(tokens)[None])
    assert trace.target_value(parse_target("logit:c-2", 9)) == float(logits[0, 9, 19])  # c-2 is token 19
    h = dictionaries["L1M"].pre_acts(cache["blocks.1.hook_mlp_out"][0, 9])[3].detach()
    assert trace.target_value(parse_target("feature:L1M3", 9)) == float(h)
    assert trace.target_value(parse_target("score:L1H2:4", 9)) == float(
        cache["blocks.1.attn.hook_attn_scores"][0, 2, 9, 4]
    )


def test_nodes_sum_to_every_block_input(random_setup):
    model, dictionaries = random_setup
    tokens = _games(1, seed=3)[0]
    trace = GameTrace(model, dictionaries, tokens)
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.as_tensor(tokens)[None])
    inputs = [
        "blocks.0.hook_resid_pre",
        "blocks.0.hook_resid_mid",
        "blocks.1.hook_resid_pre",
        "blocks.1.hook_resid_mid",
    ]
    decomposition = trace.decomposition
    for position in range(trace.n_positions):
        for below, name in enumerate(inputs, start=1):
            torch.testing.assert_close(
                decomposition.residual(position, below), cache[name][0, position], rtol=0, atol=1e-12
            )
        final = cache["blocks.1.hook_resid_post"][0, position]
        torch.testing.assert_close(decomposition.residual(position, 5), final, rtol=0, atol=1e-12)


def test_node_ids_and_feature_lookup(random_setup):
    model, dictionaries = random_setup
    trace = GameTrace(model, dictionaries, _games(1, seed=4)[0])
    ids = [
        trace.decomposition.node(row).id for row in range(*trace.decomposition.rows_at(5, 5).indices(10**9))
    ]
    assert ids[:2] == ["P5embed", "P5pos"]
    assert {"P5L0A.bias", "P5L0A.error", "P5L0M.bias", "P5L1A", "P5L1M.error"} <= set(ids)
    assert "P5L1A.bias" not in ids  # no dictionary: the whole output is one node
    for feature, value in trace.active_features(5, "L1M"):
        node = trace.node(f"P5L1M{feature}")
        assert (node.id, node.kind, node.feature_id, value) == (
            f"P5L1M{feature}",
            "feature",
            f"L1M{feature}",
            trace.activation(5, "L1M", feature),
        )
    inactive = next(f for f in range(48) if trace.activation(5, "L1M", f) == 0)
    with pytest.raises(CircuitError, match="not active"):
        trace.node(f"P5L1M{inactive}")
    assert parse_feature_node("P12L3M845") == (12, "L3M", 845)
    assert [parse_target(t, 7).id for t in ("logit:e-1", "feature:L2M845", "score:L1H2:3")] == [
        "P7logit:e-1",
        "P7L2M845",
        "P7L1H2:3",
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("logit:d-3", "centre square"),
        ("logit:z9", "not a square"),
        ("feature:L9M1", "no module"),
        ("feature:L1M48", "features 0…47"),
        ("feature:L1A2", "no dictionary"),
        ("score:L1H9:2", "no head"),
        ("score:L1H0:8", "causal"),
        ("nonsense", "expected"),
    ],
)
def test_bad_targets_are_clear_errors(random_setup, text, message):
    trace = GameTrace(*random_setup, _games(1, seed=5)[0])
    with pytest.raises(CircuitError, match=message):
        trace.contributions(parse_target(text, 7))


def _frozen_ln(ln, scale_T):
    """Apply a model LayerNorm module with its scale frozen: ``γ ⊙ (x − mean)/σ + β``."""

    def run(x_BTD):
        with torch.no_grad():
            handle = ln.hook_scale.register_forward_hook(
                lambda *_: scale_T[None, :, None].expand(len(x_BTD), -1, -1)
            )
            try:
                return ln(x_BTD)
            finally:
                handle.remove()

    return run


def test_dla_is_the_unembedding_of_each_node(random_setup):
    model, dictionaries = random_setup
    trace = GameTrace(model, dictionaries, _games(1, seed=6)[0])
    target = parse_target("logit:f-4", 20)
    attribution = trace.contributions(target)
    rows = trace.decomposition.rows_at(20, 5)
    vectors_ND = trace.decomposition.vectors_ND[rows]
    # every node alone at position 20 (other positions zero: LayerNorm is per position)
    x_NTD = torch.zeros(len(vectors_ND), trace.n_positions, 32, dtype=torch.float64)
    x_NTD[:, 20] = vectors_ND
    normalised_ND = _frozen_ln(model.ln_final, trace.ln_scale("ln_final"))(x_NTD)[:, 20] - model.ln_final.b
    expected_N = normalised_ND.detach() @ model.unembed.W_U[:, target.token].detach()
    torch.testing.assert_close(attribution.values_N[: len(expected_N)], expected_N, rtol=1e-12, atol=1e-12)
    ids = {attribution.node_at(len(expected_N) + k).id for k in range(2)}
    assert ids == {"P20ln_final.b", "P20unembed.b_U"}


def _residual_minus_nodes(trace, cache, name, rows):
    """The cached block input [B, T, D], copy b with node rows[b] removed at its position."""
    resid_TD = cache[name][0]
    x_BTD = resid_TD.expand(len(rows), -1, -1).clone()
    positions = trace.decomposition.position_N[rows]
    x_BTD[torch.arange(len(rows)), positions] -= trace.decomposition.vectors_ND[rows]
    return x_BTD


def test_ov_matches_attention_with_one_source_node_removed(random_setup):
    model, dictionaries = random_setup
    tokens = _games(1, seed=7)[0]
    trace = GameTrace(model, dictionaries, tokens)
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.as_tensor(tokens)[None])
    layer, i, feature = 0, 17, 5
    target = Target("feature", i, module="L0A", feature=feature)
    attribution = trace.contributions(target)
    rows = trace.decomposition.rows_upto(i, 1)
    block, dictionary = model.blocks[layer], dictionaries["L0A"]
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
    x_BTD = _residual_minus_nodes(trace, cache, f"blocks.{layer}.hook_resid_pre", rows)
    with (
        torch.no_grad(),
        model.hooks([(f"blocks.{layer}.attn.hook_pattern", lambda _: pattern.expand(len(rows), -1, -1, -1))]),
    ):
        out_BTD = block.attn(_frozen_ln(block.ln1, trace.ln_scale(f"blocks.{layer}.ln1"))(x_BTD))
    h_B = dictionary.pre_acts(out_BTD[:, i])[:, feature].detach()
    torch.testing.assert_close(
        attribution.values_N[: len(rows)], attribution.value - h_B, rtol=1e-9, atol=1e-12
    )
    # per head: column h sums to the part of h_Y written through head h
    z_HE = cache[f"blocks.{layer}.attn.hook_z"][0, i]
    head_part_H = torch.einsum("he,hed,d->h", z_HE, block.attn.W_O, dictionary.W_enc[:, feature]).detach()
    torch.testing.assert_close(attribution.per_head().sum(0), head_part_H, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(attribution.per_head()[: len(rows)].sum(1), attribution.values_N[: len(rows)])


def test_adc_matches_the_frozen_gate_mlp(random_setup):
    model, dictionaries = random_setup
    tokens = _games(1, seed=8)[0]
    trace = GameTrace(model, dictionaries, tokens)
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.as_tensor(tokens)[None])
    layer, i, feature = 1, 30, 11
    attribution = trace.contributions(Target("feature", i, module="L1M", feature=feature))
    rows = trace.decomposition.rows_at(i, 4)
    rows_N = torch.arange(rows.start, rows.stop)
    block, dictionary = model.blocks[layer], dictionaries["L1M"]
    pre_M = cache[f"blocks.{layer}.mlp.hook_pre"][0, i]
    gate_M = 0.5 * (1 + torch.erf(pre_M / math.sqrt(2)))
    x_BTD = _residual_minus_nodes(trace, cache, f"blocks.{layer}.hook_resid_mid", rows_N)
    captured = {}
    hooks = [
        (f"blocks.{layer}.mlp.hook_pre", lambda p: captured.update(pre=p)),
        (f"blocks.{layer}.mlp.hook_post", lambda _: captured["pre"] * gate_M),  # GELU(p) = p·Φ(p), Φ frozen
    ]
    with torch.no_grad(), model.hooks(hooks):
        out_BTD = block.mlp(_frozen_ln(block.ln2, trace.ln_scale(f"blocks.{layer}.ln2"))(x_BTD))
    h_B = dictionary.pre_acts(out_BTD[:, i])[:, feature]
    torch.testing.assert_close(
        attribution.values_N[: len(rows_N)], attribution.value - h_B, rtol=1e-9, atol=1e-12
    )


def test_qk_pairs_multiply_the_query_and_key_parts(random_setup):
    model, dictionaries = random_setup
    tokens = _games(1, seed=9)[0]
    trace = GameTrace(model, dictionaries, tokens)
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.as_tensor(tokens)[None])
    layer, head, i, j = 1, 3, 25, 11
    attribution = trace.contributions(Target("score", i, layer=layer, head=head, key=j))
    block = model.blocks[layer]
    frozen_ln = _frozen_ln(block.ln1, trace.ln_scale(f"blocks.{layer}.ln1"))
    parts = []
    query, key = (
        (i, block.attn.W_Q[head], block.attn.b_Q[head]),
        (j, block.attn.W_K[head], block.attn.b_K[head]),
    )
    for position, W_DE, b_E in (query, key):
        vectors_ND = trace.decomposition.vectors_ND[trace.decomposition.rows_at(position, 3)]
        x_NTD = torch.zeros(len(vectors_ND), trace.n_positions, 32, dtype=torch.float64)
        x_NTD[:, position] = vectors_ND
        node_parts_NE = (frozen_ln(x_NTD)[:, position] - block.ln1.b) @ W_DE
        parts.append(torch.cat([node_parts_NE, (block.ln1.b @ W_DE)[None], b_E[None]]).detach())
    q_parts_QE, k_parts_KE = parts
    q_E, k_E = (
        cache[f"blocks.{layer}.attn.hook_q"][0, i, head],
        cache[f"blocks.{layer}.attn.hook_k"][0, j, head],
    )
    torch.testing.assert_close(q_parts_QE.sum(0), q_E, rtol=0, atol=1e-12)
    torch.testing.assert_close(k_parts_KE.sum(0), k_E, rtol=0, atol=1e-12)
    pairs_QK = attribution.values_N.reshape(len(q_parts_QE), len(k_parts_KE))
    scale = math.sqrt(model.cfg.d_head)
    torch.testing.assert_close(pairs_QK.sum(1), q_parts_QE @ k_E / scale, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(pairs_QK.sum(0), k_parts_KE @ q_E / scale, rtol=1e-10, atol=1e-12)
    node = attribution.node_at(len(k_parts_KE) + 1)  # query node 1 × key node 1
    assert node.kind == "pair" and node.id == f"{node.parts[0].id} × {node.parts[1].id}"
    assert node.parts[0].id == "P25pos" and node.parts[1].id == "P11pos"
    last = attribution.node_at(pairs_QK.numel() - 1)
    assert last.id == f"P25blocks.{layer}.attn.b_Q × P11blocks.{layer}.attn.b_K"


def test_tree_levels_sum_and_expand_lazily(tiny_model, tiny_dictionaries):
    trace = GameTrace(tiny_model, tiny_dictionaries, _games(1, seed=10)[0])
    expansion = trace.expand(parse_target("logit:e-1", 40), depth=3, top=4)
    assert expansion.value == trace.target_value(expansion.target)
    assert len(expansion.branches) == 4
    expanded = 0

    def check(level, depth):
        nonlocal expanded
        assert sum(b.contribution for b in level.branches) + level.rest == pytest.approx(
            level.total, abs=1e-9
        )
        assert level.total == pytest.approx(level.value, rel=1e-5, abs=1e-5)
        for branch in level.branches:
            if branch.node.kind == "feature" and depth > 1:
                expanded += 1
                child = branch.expansion
                # a feature's expansion explains its pre-activation, which equals its activation
                assert child.value == pytest.approx(
                    trace.activation(branch.node.position, branch.node.module, branch.node.feature), rel=1e-6
                )
                assert [b.node.id for b in child.branches] == [
                    b.node.id for b in trace.children(branch.node, top=4).branches
                ]
                check(child, depth - 1)
            else:
                assert branch.expansion is None

    check(expansion, 3)
    assert expanded > 0
    embed = next(
        trace.decomposition.node(r) for r in range(10) if trace.decomposition.node(r).kind == "embed"
    )
    assert trace.children(embed) is None
    few = trace.expand(expansion.target, top=None, threshold=abs(expansion.branches[1].contribution))
    assert [b.node.id for b in few.branches] == [b.node.id for b in expansion.branches[:2]]
