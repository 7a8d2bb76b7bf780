"""Dictionaries on disk: exact round trip, SAELens-style JSON, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from othello_tui.dictionary.io import load_dictionaries, save_dictionary
from othello_tui.dictionary.sae import Dictionary, DictionaryConfig, hook_name_of
from othello_tui.model.config import TINY
from othello_tui.model.transformer import OthelloGPT
from othello_tui.model.weights import WeightsError, model_fingerprint


def make(module: str, architecture: str = "topk", d_in: int = 32) -> Dictionary:
    k, l1 = (8 if architecture == "topk" else None), (0.5 if architecture == "standard" else None)
    cfg = DictionaryConfig(
        module, hook_name_of(module), architecture, d_in=d_in, d_sae=64, k=k, l1_coefficient=l1
    )
    dictionary = Dictionary(cfg)
    with torch.no_grad():
        for p in (dictionary.b_enc, dictionary.b_dec, dictionary.threshold):
            p.uniform_(0.0, 1.0)
    return dictionary


@pytest.mark.parametrize("architecture", ["topk", "standard", "jumprelu"])
def test_round_trip_is_exact(tmp_path, tiny_model, architecture):
    original = {m: make(m, architecture) for m in ("L0A", "L1M")}
    info = {
        "model_fingerprint": model_fingerprint(tiny_model),
        "training": {"tokens": 5},
        "metrics": {"fvu": 0.1},
    }
    for dictionary in original.values():
        save_dictionary(dictionary, tmp_path, info)
    loaded = load_dictionaries(tmp_path, tiny_model)
    assert list(loaded) == ["L0A", "L1M"]
    for module, dictionary in loaded.items():
        assert dictionary.cfg == original[module].cfg
        names = ["W_enc", "b_enc", "W_dec", "b_dec"] + (["threshold"] if architecture == "jumprelu" else [])
        for name in names:
            assert torch.equal(getattr(dictionary, name), getattr(original[module], name)), name
    tensors = load_file(tmp_path / "L0A.safetensors")
    assert tensors["W_enc"].shape == (32, 64) and tensors["W_dec"].shape == (64, 32)
    assert ("threshold" in tensors) == (architecture == "jumprelu")
    meta = json.loads((tmp_path / "L0A.json").read_text())
    assert meta["hook_name"] == "blocks.0.hook_attn_out" and meta["d_sae"] == 64 and meta["module"] == "L0A"
    assert meta["architecture"] == architecture and ("k" in meta) == (architecture == "topk")
    assert meta["training"] == {"tokens": 5} and meta["metrics"] == {"fvu": 0.1}
    assert load_dictionaries(tmp_path, modules=["L1M"]).keys() == {"L1M"}


def test_missing_folder_or_file(tmp_path):
    with pytest.raises(WeightsError, match="no such folder.*othello-tui train dictionaries"):
        load_dictionaries(tmp_path / "nowhere")
    with pytest.raises(WeightsError, match="no dictionaries in"):
        load_dictionaries(tmp_path)
    save_dictionary(make("L0A"), tmp_path, {"model_fingerprint": "x"})
    with pytest.raises(WeightsError, match="L0M.json does not exist"):
        load_dictionaries(tmp_path, modules=["L0M"])


def test_truncated_file(tmp_path):
    save_dictionary(make("L0A"), tmp_path)
    path = tmp_path / "L0A.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_dictionaries(tmp_path)


def test_wrong_shapes(tmp_path):
    save_dictionary(make("L0A"), tmp_path)
    path = tmp_path / "L0A.safetensors"
    tensors = load_file(path)
    tensors["W_dec"] = tensors["W_dec"][:, :16].contiguous()
    save_file(tensors, path)
    with pytest.raises(WeightsError, match=r"W_dec \(64, 16\) \(expected \(64, 32\)\)"):
        load_dictionaries(tmp_path)


def test_dictionary_for_another_model(tmp_path, tiny_model):
    other = OthelloGPT(TINY)
    other.reset_parameters(seed=123)
    save_dictionary(make("L0A"), tmp_path, {"model_fingerprint": model_fingerprint(other)})
    assert load_dictionaries(tmp_path).keys() == {"L0A"}  # without a model there is nothing to check
    with pytest.raises(WeightsError, match="trained for another model"):
        load_dictionaries(tmp_path, tiny_model)


def test_dictionary_of_another_width(tmp_path, tiny_model):
    save_dictionary(make("L0A", d_in=16), tmp_path, {"model_fingerprint": model_fingerprint(tiny_model)})
    with pytest.raises(WeightsError, match="does not fit the model"):
        load_dictionaries(tmp_path, tiny_model)
