"""Circuits over dictionaries that normalise each token's input (``conftest.NORMALISED``: layer_norm,
constant_norm_rescale and none side by side, and a normalised residual dictionary). With each
token's scale frozen at the real module output, as LayerNorm's σ is (DESIGN.md §3.2): the nodes are
what sae-lens's decoder writes, every contributor tree sums exactly to its target, and an edit moves
the module output by exactly what the feature wrote."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import NORMALISED

from othello_tui.circuits.decomposition import BIAS, ERROR, FEATURE
from othello_tui.circuits.intervention import Edit, intervene
from othello_tui.circuits.nodes import Target
from othello_tui.circuits.trace import GameTrace
from othello_tui.dictionary.sae import hook_name_of
from othello_tui.game.generator import generate_games
from othello_tui.game.squares import TOKEN_TO_SQUARE

TOKENS = generate_games(1, 8).tokens[0, :59].astype(np.int64)


def _trace(model, dictionaries, dtype: torch.dtype) -> GameTrace:
    copies = {module: copy.deepcopy(dictionary).to(dtype) for module, dictionary in dictionaries.items()}
    return GameTrace(copy.deepcopy(model).to(dtype), copies, TOKENS)


@pytest.fixture(scope="module")
def trace(tiny_model, normalised_dictionaries):
    return _trace(tiny_model, normalised_dictionaries, torch.float32)


def _sae_lens_norm(kind: str, x_TD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input scale s, output scale o, mean μ) per token, as sae-lens 6.54 computes them: the
    encoder reads ``s·(x − μ)``, the decoder writes ``o·(W_dec·c + b_dec) + μ``."""
    ones_T, zeros_T = torch.ones(len(x_TD), dtype=x_TD.dtype), torch.zeros(len(x_TD), dtype=x_TD.dtype)
    if kind == "constant_norm_rescale":
        s_T = x_TD.shape[1] ** 0.5 / x_TD.norm(dim=-1)
        return s_T, 1 / s_T, zeros_T
    if kind == "layer_norm":
        mean_T = x_TD.mean(-1)
        std_T = (x_TD - mean_T[:, None]).std(-1)
        return 1 / (std_T + 1e-5), std_T, mean_T
    return ones_T, ones_T, zeros_T


def test_the_nodes_are_what_the_decoder_writes_and_sum_to_the_output(trace, tiny_dictionaries):
    decomposition = trace.decomposition
    for level, module in enumerate(trace.modules, start=1):
        x_TD = trace.cache[hook_name_of(module)]
        _, o_T, mean_T = _sae_lens_norm(NORMALISED[module], x_TD)
        if NORMALISED[module] != "none":
            assert not torch.allclose(o_T, torch.ones_like(o_T), atol=0.1)  # the scale matters here
        W_dec_FD, b_dec_D = tiny_dictionaries[module].W_dec, tiny_dictionaries[module].b_dec
        c_TF = trace.activations[module]
        for t in range(trace.n_positions):
            rows = slice(int(decomposition.offsets_TL[t, level]), int(decomposition.offsets_TL[t, level + 1]))
            vectors_ND, kind_N = decomposition.vectors_ND[rows], decomposition.kind_N[rows]
            features_N = decomposition.feature_N[rows][kind_N == FEATURE]
            expected_ND = (c_TF[t, features_N] * o_T[t])[:, None] * W_dec_FD[features_N]
            torch.testing.assert_close(vectors_ND[kind_N == FEATURE], expected_ND, rtol=1e-5, atol=1e-6)
            bias_D = o_T[t] * b_dec_D + mean_T[t]
            torch.testing.assert_close(vectors_ND[kind_N == BIAS][0], bias_D, rtol=1e-5, atol=1e-6)
            x_hat_D = o_T[t] * (c_TF[t] @ W_dec_FD + b_dec_D) + mean_T[t]  # sae-lens's decode
            torch.testing.assert_close(
                vectors_ND[kind_N == ERROR][0], x_TD[t] - x_hat_D, rtol=1e-5, atol=1e-5
            )
            torch.testing.assert_close(vectors_ND.sum(0), x_TD[t], rtol=0, atol=1e-5)


def _targets(trace: GameTrace) -> list[Target]:
    """Logits, scores, and features of every dictionary (active ones and random ones) at a few positions."""
    rng, targets = np.random.default_rng(3), []
    for i in (0, 7, 22, 41, 58):
        for token in rng.integers(1, 61, 2):
            targets.append(Target("logit", i, square=int(TOKEN_TO_SQUARE[token])))
        targets.append(Target("score", i, layer=1, head=2, key=int(rng.integers(i + 1))))
        for module, dictionary in trace.all_dictionaries.items():
            active = [f for f, _ in trace.active_features(i, module)][:2]
            for feature in [*active, int(rng.integers(dictionary.cfg.d_sae))]:
                targets.append(Target("feature", i, module=module, feature=feature))
    return targets


def _sae_lens_pre_activation(x_D, source, kind: str, feature: int) -> float:
    """``W_enc[:,Y]·(s·(x − μ) − b_dec) + b_enc[Y]`` with the weights as the folder has them."""
    s, _, mean = (v[0] for v in _sae_lens_norm(kind, x_D[None].double()))
    W_enc_DF, b_enc_F, b_dec_D = (p.detach().double() for p in (source.W_enc, source.b_enc, source.b_dec))
    return float((s * (x_D.double() - mean) - b_dec_D) @ W_enc_DF[:, feature] + b_enc_F[feature])


@pytest.mark.parametrize(
    "dtype, tolerance", [(torch.float32, 1e-5), (torch.float64, 1e-10)], ids=["f32", "f64"]
)
def test_every_tree_sums_exactly_to_its_target(
    tiny_model, normalised_dictionaries, tiny_dictionaries, tiny_residual, dtype, tolerance
):
    trace = _trace(tiny_model, normalised_dictionaries, dtype)
    sources = {**tiny_dictionaries, **tiny_residual}
    checked = {"logit": 0, "score": 0, "feature": 0}
    for target in _targets(trace):
        attribution = trace.contributions(target)
        scale = max(abs(attribution.value), float(attribution.values_N.abs().sum()))
        assert abs(attribution.sum() - attribution.value) <= tolerance * scale, target
        if target.kind == "feature":
            module, feature = target.feature_key
            x_D = trace.cache[hook_name_of(module)][target.position]
            expected = _sae_lens_pre_activation(x_D, sources[module], NORMALISED[module], feature)
            assert attribution.value == pytest.approx(expected, rel=1e-5, abs=1e-5)
        checked[target.kind] += 1
    assert checked == {"logit": 10, "score": 5, "feature": 5 * 5 * 3}  # every dictionary has 2+ active


@pytest.mark.parametrize("module", ["L0A", "L0M", "L1A", "L1M"])
def test_an_ablation_moves_the_output_by_what_the_feature_wrote(trace, module, tiny_dictionaries):
    hook = hook_name_of(module)
    _, o_T, _ = _sae_lens_norm(NORMALISED[module], trace.cache[hook])
    position = 30
    feature, c = trace.active_features(position, module)[0]
    result = intervene(trace, [Edit(position, module, feature, value=0.0)], keep=[hook])
    change_TD = result.kept[hook] - trace.cache[hook]
    expected_D = -c * o_T[position] * tiny_dictionaries[module].W_dec[feature]
    torch.testing.assert_close(change_TD[position], expected_D, rtol=1e-5, atol=1e-6)
    change_TD[position] = 0.0  # the module's own output elsewhere does not read its edited output
    assert torch.equal(change_TD, torch.zeros_like(change_TD))
