"""The dictionary forms: shapes, unit-norm decoder, linear pre-activation, the stacked training form
and the exact fold of the training scale."""

from __future__ import annotations

import pytest
import torch

from othello_tui.dictionary.jumprelu import BANDWIDTH, jumprelu, step
from othello_tui.dictionary.sae import Dictionary, DictionaryConfig, hook_name_of
from othello_tui.dictionary.stacked import StackedDictionaries, power_of_two_scale

D, F = 16, 48


def make(architecture: str, module: str = "L1M", seed: int = 0) -> Dictionary:
    cfg = DictionaryConfig(module, hook_name_of(module), architecture, d_in=D, d_sae=F, k=5)
    dictionary = Dictionary(cfg)
    generator = torch.Generator().manual_seed(seed)
    dictionary.reset_parameters(generator)
    with torch.no_grad():
        dictionary.b_enc.normal_(0.0, 0.3, generator=generator)
        dictionary.b_dec.normal_(0.0, 0.3, generator=generator)
        dictionary.threshold.uniform_(0.0, 0.5, generator=generator)
    return dictionary


@pytest.mark.parametrize("architecture", ["standard", "topk", "jumprelu"])
def test_shapes_and_unit_norm_decoder(architecture):
    dictionary = make(architecture)
    x = torch.randn(3, 7, D)
    x_hat, c = dictionary(x)
    assert x_hat.shape == (3, 7, D) and c.shape == (3, 7, F)
    assert dictionary.encode(x).shape == (3, 7, F) and dictionary.decode(c).shape == (3, 7, D)
    assert torch.allclose(dictionary.W_dec.norm(dim=1), torch.ones(F), atol=1e-6)
    assert (c >= 0).all()
    if architecture == "topk":
        assert ((c > 0).sum(-1) <= 5).all()


def test_pre_activation_is_linear_in_x():
    """h(a·x + b·y) − bias = a·(h(x) − bias) + b·(h(y) − bias), bias = b_enc − W_encᵀ b_dec."""
    dictionary = make("standard")
    x, y = torch.randn(5, D, dtype=torch.float64), torch.randn(5, D, dtype=torch.float64)
    dictionary = dictionary.double()
    bias = dictionary.b_enc - dictionary.b_dec @ dictionary.W_enc
    h = lambda v: dictionary.pre_acts(v) - bias  # noqa: E731
    assert torch.allclose(h(2.5 * x - 0.75 * y), 2.5 * h(x) - 0.75 * h(y), atol=1e-12)
    assert torch.allclose(h(x), x @ dictionary.W_enc, atol=1e-12)


def test_topk_keeps_the_k_largest_positive_pre_activations():
    dictionary = make("topk")
    x = torch.randn(50, D)
    h, c = dictionary.pre_acts(x), dictionary.encode(x)
    kth = h.topk(5, dim=-1).values[:, -1:]
    assert torch.equal(c, torch.where((h >= kth) & (h > 0), h, 0.0))


@pytest.mark.parametrize("architecture", ["standard", "topk", "jumprelu"])
def test_encode_entries_are_the_nonzero_activations(architecture):
    dictionary = make(architecture)
    x = torch.randn(200, D)
    c = dictionary.encode(x)
    active = dictionary.encode_entries(x)
    rebuilt = torch.zeros_like(c)
    rebuilt[active.position_E, active.feature_E] = active.value_E
    assert active.n_tokens == 200 and (active.value_E > 0).all()
    assert len(active.value_E) == int((c > 0).sum()) and torch.equal(rebuilt, c)


def test_jumprelu_threshold_and_pseudo_gradients():
    h = torch.tensor([[0.10, 0.30, 0.498, 0.9]], requires_grad=False)
    threshold = torch.full((4,), 0.5, requires_grad=True)
    out = jumprelu(h, threshold)
    assert torch.equal(out, torch.tensor([[0.0, 0.0, 0.0, 0.9]]))
    out.sum().backward()
    # only h = 0.498 lies within BANDWIDTH/2 of θ: ∂/∂θ = −θ/ε there
    assert torch.allclose(threshold.grad, torch.tensor([0.0, 0.0, -0.5 / BANDWIDTH, 0.0]))
    threshold.grad = None
    step(h, threshold).sum().backward()
    assert torch.allclose(threshold.grad, torch.tensor([0.0, 0.0, -1 / BANDWIDTH, 0.0]))


@pytest.mark.parametrize("architecture", ["standard", "topk", "jumprelu"])
def test_stacked_equals_separate_dictionaries(architecture):
    cfgs = [
        DictionaryConfig(m, hook_name_of(m), architecture, d_in=D, d_sae=F, k=5)
        for m in ("L0A", "L0M", "L1A")
    ]
    stacked = StackedDictionaries(cfgs, torch.Generator().manual_seed(1))
    with torch.no_grad():
        stacked.b_enc.normal_(0.0, 0.3)
        stacked.b_dec.normal_(0.0, 0.3)
        stacked.log_threshold.uniform_(-3.0, -0.5)
        stacked.scale.copy_(torch.tensor([0.25, 1.0, 4.0]))
    x_MND = torch.randn(3, 20, D)
    x_hat_MND, _, _ = stacked(x_MND)
    separate = stacked.to_dictionaries()
    assert list(separate) == ["L0A", "L0M", "L1A"]
    for m, dictionary in enumerate(separate.values()):
        s = stacked.scale[m]
        # the saved dictionary on raw inputs x = (training input) / s gives (training output) / s
        x_hat, _ = dictionary(x_MND[m] / s)
        assert torch.allclose(x_hat, x_hat_MND[m] / s, atol=1e-5)


@pytest.mark.parametrize("architecture", ["standard", "topk", "jumprelu"])
def test_scale_fold_is_bit_exact(architecture):
    """A dictionary trained on s·x (s a power of two) and its folded copy agree bit for bit."""
    trained = make(architecture)
    folded = make(architecture)
    s = 8.0
    with torch.no_grad():
        folded.b_enc.copy_(trained.b_enc / s)
        folded.b_dec.copy_(trained.b_dec / s)
        folded.threshold.copy_(trained.threshold / s)
    x = torch.randn(200, D) * 3
    x_hat_trained, c_trained = trained(s * x)
    x_hat, c = folded(x)
    assert torch.equal(c, c_trained / s)
    assert torch.equal(x_hat, x_hat_trained / s)


def test_power_of_two_scale():
    s = power_of_two_scale(torch.tensor([128.0, 128.0 * 16, 128.0 / 3, 1e-30]), 128)
    assert torch.equal(torch.log2(s[:3]), torch.round(torch.log2(s[:3])))
    assert s[:3].tolist() == [1.0, 0.25, 2.0]  # sqrt(3) ≈ 1.73 rounds (in log) to 2
    assert torch.isfinite(s).all()


def test_stacked_topk_with_a_k_per_dictionary():
    cfgs = [
        DictionaryConfig(m, hook_name_of(m), "topk", d_in=D, d_sae=F, k=k)
        for m, k in (("L0A", 3), ("L0M", 7))
    ]
    stacked = StackedDictionaries(cfgs, torch.Generator().manual_seed(2))
    x_MND = torch.randn(2, 30, D)
    x_hat_MND, _, (_, _, values_MNK) = stacked(x_MND)
    assert ((values_MNK[0] > 0).sum(-1) <= 3).all() and ((values_MNK[1] > 0).sum(-1) > 3).any()
    for m, dictionary in enumerate(stacked.to_dictionaries().values()):
        assert torch.allclose(dictionary(x_MND[m])[0], x_hat_MND[m], atol=1e-5)


def test_stacked_rejects_mixed_shapes():
    a = DictionaryConfig("L0A", hook_name_of("L0A"), "topk", d_in=D, d_sae=F, k=5)
    b = DictionaryConfig("L0M", hook_name_of("L0M"), "topk", d_in=D, d_sae=2 * F, k=5)
    with pytest.raises(ValueError, match="must share"):
        StackedDictionaries([a, b])
