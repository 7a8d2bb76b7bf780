"""The hooked model against an independent reference forward pass; weights IO."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from othello_tui.model.config import TINY, ModelConfig
from othello_tui.model.transformer import OthelloGPT
from othello_tui.model.weights import WeightsError, load_model, load_state_dict, save_model

EXPECTED_HOOKS_PER_BLOCK = [
    "hook_resid_pre", "ln1.hook_scale", "ln1.hook_normalized", "attn.hook_q", "attn.hook_k", "attn.hook_v",
    "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_mid",
    "ln2.hook_scale", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out", "hook_resid_post",
]  # fmt: skip


def random_model(cfg: ModelConfig = TINY, seed: int = 0) -> OthelloGPT:
    """A model with every parameter random (biases and LayerNorms too), so no term hides."""
    torch.manual_seed(seed)
    model = OthelloGPT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


def reference_forward(
    sd: dict[str, torch.Tensor], cfg: ModelConfig, tokens: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The same network written independently with torch.nn.functional, from the state dict."""
    out = {}
    T = tokens.shape[1]
    x = sd["embed.W_E"][tokens] + sd["pos_embed.W_pos"][:T]
    for layer in range(cfg.n_layers):
        p = f"blocks.{layer}."
        out[p + "hook_resid_pre"] = x
        h = F.layer_norm(x, (cfg.d_model,), sd[p + "ln1.w"], sd[p + "ln1.b"], eps=cfg.eps)
        q = torch.stack([h @ sd[p + "attn.W_Q"][i] + sd[p + "attn.b_Q"][i] for i in range(cfg.n_heads)], 2)
        k = torch.stack([h @ sd[p + "attn.W_K"][i] + sd[p + "attn.b_K"][i] for i in range(cfg.n_heads)], 2)
        v = torch.stack([h @ sd[p + "attn.W_V"][i] + sd[p + "attn.b_V"][i] for i in range(cfg.n_heads)], 2)
        z = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        z = z.transpose(1, 2)  # [B, T, H, E]
        attn_out = sum(z[:, :, i] @ sd[p + "attn.W_O"][i] for i in range(cfg.n_heads)) + sd[p + "attn.b_O"]
        out[p + "attn.hook_q"], out[p + "attn.hook_z"], out[p + "hook_attn_out"] = q, z, attn_out
        x = x + attn_out
        h = F.layer_norm(x, (cfg.d_model,), sd[p + "ln2.w"], sd[p + "ln2.b"], eps=cfg.eps)
        pre = h @ sd[p + "mlp.W_in"] + sd[p + "mlp.b_in"]
        mlp_out = F.gelu(pre) @ sd[p + "mlp.W_out"] + sd[p + "mlp.b_out"]
        out[p + "mlp.hook_pre"], out[p + "hook_mlp_out"] = pre, mlp_out
        x = x + mlp_out
        out[p + "hook_resid_post"] = x
    h = F.layer_norm(x, (cfg.d_model,), sd["ln_final.w"], sd["ln_final.b"], eps=cfg.eps)
    out["logits"] = h @ sd["unembed.W_U"] + sd["unembed.b_U"]
    return out


def test_hook_names_are_transformerlens_names():
    model = OthelloGPT(ModelConfig(n_layers=2))
    expected = ["hook_embed", "hook_pos_embed"]
    for layer in range(2):
        expected += [f"blocks.{layer}.{name}" for name in EXPECTED_HOOKS_PER_BLOCK]
    assert sorted(model.hook_names()) == sorted(
        expected + ["ln_final.hook_scale", "ln_final.hook_normalized"]
    )


def test_parameters_have_transformerlens_names_and_shapes():
    shapes = {k: tuple(v.shape) for k, v in OthelloGPT(ModelConfig()).state_dict_tl().items()}
    assert shapes["embed.W_E"] == (61, 128) and shapes["pos_embed.W_pos"] == (60, 128)
    assert shapes["blocks.0.attn.W_Q"] == (8, 128, 16) and shapes["blocks.0.attn.b_Q"] == (8, 16)
    assert shapes["blocks.5.attn.W_O"] == (8, 16, 128) and shapes["blocks.5.attn.b_O"] == (128,)
    assert shapes["blocks.3.mlp.W_in"] == (128, 512) and shapes["blocks.3.mlp.W_out"] == (512, 128)
    assert shapes["blocks.0.ln1.w"] == (128,) and shapes["ln_final.b"] == (128,)
    assert shapes["unembed.W_U"] == (128, 61) and shapes["unembed.b_U"] == (61,)
    assert len(shapes) == 2 + 6 * 16 + 2 + 2
    assert 1.2e6 < sum(torch.tensor(s).prod().item() for s in shapes.values()) < 1.25e6


def test_forward_and_every_hook_match_an_independent_reference():
    model = random_model()
    tokens = torch.randint(1, 61, (3, 59))
    logits, cache = model.run_with_cache(tokens)
    reference = reference_forward(model.state_dict_tl(), model.cfg, tokens)
    torch.testing.assert_close(logits, reference.pop("logits"), rtol=1e-4, atol=1e-4)
    for name, value in reference.items():
        torch.testing.assert_close(cache[name], value, rtol=1e-4, atol=1e-4, msg=name)
    pattern = cache["blocks.1.attn.hook_pattern"]
    torch.testing.assert_close(pattern.sum(-1), torch.ones_like(pattern.sum(-1)))
    assert (pattern.triu(1) == 0).all()


def test_residual_stream_is_embed_plus_pos_plus_module_outputs_exactly():
    model = random_model()
    _, cache = model.run_with_cache(torch.randint(1, 61, (2, 59)))
    resid = cache["hook_embed"] + cache["hook_pos_embed"]
    for layer in range(model.cfg.n_layers):
        assert torch.equal(cache[f"blocks.{layer}.hook_resid_pre"], resid)
        resid = resid + cache[f"blocks.{layer}.hook_attn_out"]
        assert torch.equal(cache[f"blocks.{layer}.hook_resid_mid"], resid)
        resid = resid + cache[f"blocks.{layer}.hook_mlp_out"]
    assert torch.equal(cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"], resid)


def test_hooks_can_replace_values_and_are_removed_afterwards():
    model = random_model()
    tokens = torch.randint(1, 61, (1, 10))
    clean = model(tokens)
    with model.hooks([("blocks.1.hook_mlp_out", torch.zeros_like)]):
        patched = model(tokens)
    assert not torch.allclose(clean, patched)
    assert torch.equal(model(tokens), clean)
    with (
        pytest.raises(KeyError, match="no hook named 'blocks.9.hook_mlp_out'"),
        model.hooks([("blocks.9.hook_mlp_out", print)]),
    ):
        pass


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model = random_model()
    save_model(model, tmp_path, {"metrics": {"legal_top1": 0.5}})
    loaded, meta = load_model(tmp_path)
    assert meta["metrics"] == {"legal_top1": 0.5} and meta["config"]["n_layers"] == TINY.n_layers
    for name, value in model.state_dict_tl().items():
        assert torch.equal(loaded.state_dict_tl()[name], value), name
    tokens = torch.randint(1, 61, (2, 59))
    assert torch.equal(loaded(tokens), model(tokens))


def test_loading_a_transformerlens_keyed_state_dict_with_extra_buffers():
    model, source = OthelloGPT(TINY), random_model()
    state = {k: v.detach().clone() for k, v in source.state_dict_tl().items()}
    state["blocks.0.attn.IGNORE"] = torch.tensor(-1e5)  # TransformerLens buffers are ignored
    load_state_dict(model, state, "test")
    assert torch.equal(model.unembed.W_U, source.unembed.W_U)


def test_missing_truncated_and_mismatched_files_give_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="no model weights in .*othello-tui train model"):
        load_model(tmp_path)
    save_model(random_model(), tmp_path)
    tensors = tmp_path / "othello_gpt.safetensors"
    data = tensors.read_bytes()
    tensors.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_model(tmp_path)
    save_model(random_model(ModelConfig(n_layers=1, d_model=32, n_heads=4, d_head=8, d_mlp=64)), tmp_path)
    meta = json.loads((tmp_path / "othello_gpt.json").read_text())
    meta["config"]["n_layers"] = 2
    (tmp_path / "othello_gpt.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="does not fit this model: missing blocks.1"):
        load_model(tmp_path)
    meta["config"]["n_layers"], meta["config"]["d_model"] = 1, 48
    (tmp_path / "othello_gpt.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match=r"embed.W_E \(61, 32\) \(expected \(61, 48\)\)"):
        load_model(tmp_path)
    (tmp_path / "othello_gpt.json").write_text("{not json")
    with pytest.raises(WeightsError, match="not valid JSON"):
        load_model(tmp_path)


def test_transformerlens_loads_our_files_without_conversion(tmp_path):
    transformer_lens = pytest.importorskip("transformer_lens")
    from safetensors.torch import load_file

    model = random_model()
    save_model(model, tmp_path)
    cfg = transformer_lens.HookedTransformerConfig(
        **json.loads((tmp_path / "othello_gpt.json").read_text())["config"]
    )
    tl_model = transformer_lens.HookedTransformer(cfg)
    tl_model.load_state_dict(load_file(tmp_path / "othello_gpt.safetensors"), strict=False)
    tokens = torch.randint(1, 61, (2, 59))
    torch.testing.assert_close(tl_model(tokens), model(tokens), rtol=1e-4, atol=1e-4)
