"""SAELens dictionaries that normalise each token's input (``normalize_activations``
``constant_norm_rescale`` and ``layer_norm``): they encode and decode exactly as sae-lens 6.x does
(its formulas re-implemented here from ``SAE._setup_activation_normalization``, ``process_sae_in``
and the architectures' ``encode``/``decode``; and sae-lens itself where it is installed), and keep
their normalisation when saved."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import write_saelens
from safetensors.torch import save_file

from othello_tui.dictionary.io import load_dictionaries, load_saelens, save_dictionary
from othello_tui.dictionary.sae import Dictionary, DictionaryConfig, hook_name_of

D, F, K = 24, 60, 6
NORMALISATIONS = ["constant_norm_rescale", "layer_norm"]
ARCHITECTURES = ["standard", "topk", "jumprelu"]


def _folder(tmp_path, normalisation: str, architecture: str, apply_b_dec_to_input: bool):
    """A hand-written SAELens folder with random weights: an encoder whose columns are not centred
    and a decoder bias far from centred, so that layer_norm's centring matters."""
    k = K if architecture == "topk" else None
    dictionary = Dictionary(DictionaryConfig("L2M", hook_name_of("L2M"), architecture, D, F, k))
    generator = torch.Generator().manual_seed(len(normalisation) + len(architecture))
    with torch.no_grad():
        dictionary.W_enc.normal_(0.0, 0.4, generator=generator)
        dictionary.b_enc.normal_(0.2, 0.3, generator=generator)
        dictionary.b_dec.normal_(0.5, 0.5, generator=generator)
        dictionary.threshold.uniform_(0.0, 0.5, generator=generator)
    folder = write_saelens(
        tmp_path / "sae",
        dictionary,
        normalize_activations=normalisation,
        apply_b_dec_to_input=apply_b_dec_to_input,
        architecture=architecture,
        k=k,
    )
    tensors = {
        name: getattr(dictionary, name).detach().clone() for name in ("W_enc", "b_enc", "W_dec", "b_dec")
    }
    if architecture == "jumprelu":
        save_file({**tensors, "threshold": dictionary.threshold.clone()}, folder / "sae_weights.safetensors")
    return folder, {**tensors, "threshold": dictionary.threshold.clone()}


def _sae_lens_formulas(x_ND, tensors, normalisation, architecture, apply_b_dec_to_input):
    """(codes of x, decoder of codes) as sae-lens 6.54 computes them, in float64."""
    W_enc, b_enc, W_dec, b_dec = (tensors[name].double() for name in ("W_enc", "b_enc", "W_dec", "b_dec"))
    x = x_ND.double()
    if normalisation == "constant_norm_rescale":
        coeff = D**0.5 / x.norm(dim=-1, keepdim=True)
        x_in, out = x * coeff, lambda y: y / coeff
    else:  # layer_norm: eps 1e-5 in the input's scale, none in the output's
        mu = x.mean(dim=-1, keepdim=True)
        centred = x - mu
        std = centred.std(dim=-1, keepdim=True)
        x_in, out = centred / (std + 1e-5), lambda y: y * std + mu
    h = (x_in - b_dec * apply_b_dec_to_input) @ W_enc + b_enc
    if architecture == "topk":
        values, index = h.topk(K, dim=-1)
        c = torch.zeros_like(h).scatter(-1, index, torch.relu(values))
    elif architecture == "jumprelu":
        c = torch.relu(h) * (h > tensors["threshold"].double())
    else:
        c = torch.relu(h)
    return c, lambda c_NF: out(c_NF.double() @ W_dec + b_dec)


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens with norms of tens and means far from 0, and random sparse codes for them."""
    generator = torch.Generator().manual_seed(seed)
    x_ND = 3.0 * torch.randn(200, D, generator=generator) + 2.0 * torch.randn(200, 1, generator=generator)
    c_NF = torch.rand(200, F, generator=generator) * (torch.rand(200, F, generator=generator) < 0.1)
    return x_ND, c_NF


def _assert_close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    torch.testing.assert_close(ours, theirs.to(ours.dtype), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("apply_b_dec_to_input", [True, False])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("normalisation", NORMALISATIONS)
def test_encode_and_decode_are_sae_lens_s_formulas(
    tmp_path, normalisation, architecture, apply_b_dec_to_input
):
    folder, tensors = _folder(tmp_path, normalisation, architecture, apply_b_dec_to_input)
    dictionary = load_saelens(folder)
    assert dictionary.cfg.normalize_activations == normalisation
    x_ND, c_NF = _inputs()
    codes_NF, decode = _sae_lens_formulas(x_ND, tensors, normalisation, architecture, apply_b_dec_to_input)
    norm = dictionary.token_norm(x_ND)
    with torch.no_grad():
        _assert_close(dictionary.encode(x_ND), codes_NF)
        _assert_close(dictionary.decode(c_NF, norm), decode(c_NF))
        x_hat_ND, acts_NF = dictionary(x_ND)
        _assert_close(x_hat_ND, decode(codes_NF))
    assert (acts_NF > 0).any() and not torch.allclose(norm.in_scale_N, torch.ones(200))
    with pytest.raises(ValueError, match="decoding needs the inputs' token_norm"):
        dictionary.decode(c_NF)


@pytest.mark.parametrize("normalisation", NORMALISATIONS)
def test_saved_it_keeps_its_normalisation_and_encodes_the_same(tmp_path, normalisation):
    folder, _ = _folder(tmp_path, normalisation, "topk", apply_b_dec_to_input=False)
    dictionary = load_saelens(folder)
    saved = save_dictionary(dictionary, tmp_path / "ours")
    assert json.loads((saved / "cfg.json").read_text())["normalize_activations"] == normalisation
    again = load_dictionaries(tmp_path / "ours")["L2M"]  # layer_norm's fold, applied twice, is the same
    assert again.cfg == dictionary.cfg
    x_ND, c_NF = _inputs(1)
    with torch.no_grad():
        _assert_close(again.encode(x_ND), dictionary.encode(x_ND))
        _assert_close(
            again.decode(c_NF, again.token_norm(x_ND)), dictionary.decode(c_NF, dictionary.token_norm(x_ND))
        )


def _same_as_sae_lens(sae, dictionary: Dictionary, seed: int = 0) -> None:
    """sae-lens's encode of x, and its decode of codes right after (it keeps x's norm in between)."""
    x_ND, c_NF = _inputs(seed)
    with torch.no_grad():
        _assert_close(dictionary.encode(x_ND), sae.encode(x_ND))
        _assert_close(dictionary.decode(c_NF, dictionary.token_norm(x_ND)), sae.decode(c_NF))
        _assert_close(dictionary(x_ND)[0], sae.decode(sae.encode(x_ND)))
    assert (dictionary.encode(x_ND) > 0).any()


@pytest.mark.parametrize("apply_b_dec_to_input", [True, False])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("normalisation", NORMALISATIONS)
def test_sae_lens_reads_the_folder_as_we_do_and_what_we_save_of_it(
    tmp_path, normalisation, architecture, apply_b_dec_to_input
):
    sae_lens = pytest.importorskip("sae_lens")
    folder, _ = _folder(tmp_path, normalisation, architecture, apply_b_dec_to_input)
    dictionary = load_saelens(folder)
    _same_as_sae_lens(sae_lens.SAE.load_from_disk(str(folder), device="cpu"), dictionary)
    saved = save_dictionary(dictionary, tmp_path / "ours")  # layer_norm's centring folded into W_enc
    _same_as_sae_lens(sae_lens.SAE.load_from_disk(str(saved), device="cpu"), dictionary, seed=1)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("normalisation", NORMALISATIONS)
def test_we_read_what_sae_lens_saves_with_a_normalisation(tmp_path, normalisation, architecture):
    pytest.importorskip("sae_lens")
    from sae_lens.registry import get_sae_class
    from sae_lens.saes.sae import SAEMetadata

    sae_class, config_class = get_sae_class(architecture)
    cfg = config_class(
        d_in=D,
        d_sae=F,
        normalize_activations=normalisation,
        metadata=SAEMetadata(hook_name="blocks.2.hook_mlp_out", model_name="othello"),
        **({"k": K} if architecture == "topk" else {}),
    )
    sae = sae_class(cfg)
    generator = torch.Generator().manual_seed(8)
    with torch.no_grad():
        for parameter in sae.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3 + 0.1)
        if architecture == "jumprelu":
            sae.threshold.abs_()
    sae.save_model(tmp_path / "from-sae-lens")
    (dictionary,) = load_dictionaries(tmp_path).values()
    assert dictionary.cfg.normalize_activations == normalisation
    _same_as_sae_lens(sae, dictionary)
