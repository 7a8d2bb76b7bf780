"""Dictionaries on disk: SAELens folders (sae-lens 6.x fields), exact round trips, older pairs still
read, the shipped weights, clear errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from othello_tui.dictionary.io import load_dictionaries, load_residual, save_dictionary
from othello_tui.dictionary.sae import (
    Dictionary,
    DictionaryConfig,
    hook_name_of,
    module_names,
    residual_names,
)
from othello_tui.model.config import TINY
from othello_tui.model.transformer import OthelloGPT
from othello_tui.model.weights import WEIGHTS_DIR, WeightsError, load_model, model_fingerprint


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


SAE_LENS_FIELDS = [  # sae-lens 6.x SAEConfig.to_dict(), in its order
    "d_in",
    "d_sae",
    "dtype",
    "device",
    "apply_b_dec_to_input",
    "normalize_activations",
    "reshape_activations",
    "metadata",
]


@pytest.mark.parametrize("architecture", ["topk", "standard", "jumprelu"])
def test_round_trip_through_saelens_folders_is_exact(tmp_path, tiny_model, architecture):
    original = {m: make(m, architecture) for m in ("L0A", "L1M")}
    info = {
        "model_fingerprint": model_fingerprint(tiny_model),
        "training": {"tokens": 5},
        "metrics": {"fvu": 0.1},
    }
    for dictionary in original.values():
        assert save_dictionary(dictionary, tmp_path, info) == tmp_path / dictionary.cfg.module
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.*")) == [
        "L0A/cfg.json",
        "L0A/sae_weights.safetensors",
        "L1M/cfg.json",
        "L1M/sae_weights.safetensors",
    ]
    loaded = load_dictionaries(tmp_path, tiny_model)
    assert list(loaded) == ["L0A", "L1M"]
    x_ND = torch.randn(40, 32, generator=torch.Generator().manual_seed(0))
    for module, dictionary in loaded.items():
        assert dictionary.cfg == original[module].cfg
        names = ["W_enc", "b_enc", "W_dec", "b_dec"] + (["threshold"] if architecture == "jumprelu" else [])
        for name in names:
            assert torch.equal(getattr(dictionary, name), getattr(original[module], name)), name
        assert torch.equal(dictionary.encode(x_ND), original[module].encode(x_ND))
    tensors = load_file(tmp_path / "L0A" / "sae_weights.safetensors")
    assert tensors["W_enc"].shape == (32, 64) and tensors["W_dec"].shape == (64, 32)
    assert set(tensors) == {"W_enc", "b_enc", "W_dec", "b_dec"} | (
        {"threshold"} if architecture == "jumprelu" else set()
    )
    assert load_dictionaries(tmp_path, modules=["L1M"]).keys() == {"L1M"}


@pytest.mark.parametrize("architecture", ["topk", "standard", "jumprelu"])
def test_cfg_json_has_the_sae_lens_6_fields_and_our_provenance_in_metadata(tmp_path, architecture):
    save_dictionary(
        make("L1M", architecture), tmp_path, {"model_fingerprint": "f" * 16, "metrics": {"l0": 3}}
    )
    cfg = json.loads((tmp_path / "L1M" / "cfg.json").read_text())
    topk = ["k", "rescale_acts_by_decoder_norm"] if architecture == "topk" else []
    assert list(cfg) == [*SAE_LENS_FIELDS, *topk, "architecture"]
    assert cfg["architecture"] == architecture and (cfg["d_in"], cfg["d_sae"]) == (32, 64)
    assert (cfg["dtype"], cfg["device"], cfg["apply_b_dec_to_input"]) == ("float32", "cpu", True)
    assert cfg["normalize_activations"] == cfg["reshape_activations"] == "none"
    assert cfg.get("k") == (8 if architecture == "topk" else None)
    assert cfg.get("rescale_acts_by_decoder_norm", False) is False
    metadata = cfg["metadata"]
    assert metadata["sae_lens_version"].startswith("6.") and "sae_lens_training_version" in metadata
    assert metadata["hook_name"] == "blocks.1.hook_mlp_out" and metadata["hook_head_index"] is None
    assert (metadata["model_name"], metadata["prepend_bos"], metadata["context_size"]) == (
        "othello-gpt",
        False,
        59,
    )
    assert metadata["module"] == "L1M" and metadata["model_fingerprint"] == "f" * 16
    assert metadata["metrics"] == {"l0": 3}
    assert metadata.get("l1_coefficient") == (0.5 if architecture == "standard" else None)


def write_old_pair(directory, dictionary, **info) -> None:
    """A dictionary in the layout of earlier versions: ``{module}.json`` + ``{module}.safetensors``."""
    cfg = dictionary.cfg
    names = ["W_enc", "b_enc", "W_dec", "b_dec"] + (["threshold"] if cfg.architecture == "jumprelu" else [])
    save_file(
        {n: getattr(dictionary, n).detach().clone() for n in names}, directory / f"{cfg.module}.safetensors"
    )
    meta = {
        "architecture": cfg.architecture,
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "hook_name": cfg.hook_name,
        "hook_layer": int(cfg.module[1:-1]),
        "module": cfg.module,
        **({"k": cfg.k} if cfg.architecture == "topk" else {}),
        **({"l1_coefficient": cfg.l1_coefficient} if cfg.architecture == "standard" else {}),
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "dtype": "float32",
        **info,
    }
    (directory / f"{cfg.module}.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("architecture", ["topk", "standard", "jumprelu"])
def test_older_pairs_still_load_beside_folders_and_a_save_replaces_them(tmp_path, tiny_model, architecture):
    fingerprint = model_fingerprint(tiny_model)
    old, new = make("L0A", architecture), make("L1M", architecture)
    write_old_pair(tmp_path, old, model_fingerprint=fingerprint)
    save_dictionary(new, tmp_path, {"model_fingerprint": fingerprint})
    loaded = load_dictionaries(tmp_path, tiny_model)
    assert list(loaded) == ["L0A", "L1M"] and loaded["L0A"].cfg == old.cfg
    x_ND = torch.randn(20, 32, generator=torch.Generator().manual_seed(1))
    assert torch.equal(loaded["L0A"].encode(x_ND), old.encode(x_ND))
    write_old_pair(tmp_path, new, model_fingerprint="0" * 16)  # the same module twice
    with pytest.raises(WeightsError, match="two dictionaries for L1M"):
        load_dictionaries(tmp_path)
    save_dictionary(old, tmp_path, {"model_fingerprint": fingerprint})  # replaces L0A's pair
    assert not (tmp_path / "L0A.json").exists() and not (tmp_path / "L0A.safetensors").exists()
    shutil.rmtree(tmp_path / "L1M")
    assert load_dictionaries(tmp_path).keys() == {"L0A", "L1M"}  # without a model nothing to check
    with pytest.raises(WeightsError, match="L1M.json was trained for another model"):
        load_dictionaries(tmp_path, tiny_model)


def test_missing_folder_or_file(tmp_path):
    with pytest.raises(WeightsError, match="no such folder.*othello-tui train dictionaries"):
        load_dictionaries(tmp_path / "nowhere")
    with pytest.raises(WeightsError, match="no dictionaries in"):
        load_dictionaries(tmp_path)
    save_dictionary(make("L0A"), tmp_path, {"model_fingerprint": "x"})
    with pytest.raises(WeightsError, match="no dictionary for L0M in .*othello-tui train dictionaries"):
        load_dictionaries(tmp_path, modules=["L0M"])
    (tmp_path / "L0A" / "sae_weights.safetensors").unlink()
    with pytest.raises(WeightsError, match="sae_weights.safetensors does not exist"):
        load_dictionaries(tmp_path)


def test_truncated_file(tmp_path):
    save_dictionary(make("L0A"), tmp_path)
    path = tmp_path / "L0A" / "sae_weights.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_dictionaries(tmp_path)


def test_wrong_shapes(tmp_path):
    save_dictionary(make("L0A"), tmp_path)
    path = tmp_path / "L0A" / "sae_weights.safetensors"
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


def test_a_config_that_is_no_json_object_is_refused_in_one_line(tmp_path):
    save_dictionary(make("L0A"), tmp_path)
    (tmp_path / "L0A" / "cfg.json").write_text("[1, 2]")
    with pytest.raises(WeightsError, match="is no dictionary config"):
        load_dictionaries(tmp_path)


def test_the_shipped_weights_are_saelens_folders_12_modules_and_6_residual():
    model, _ = load_model(WEIGHTS_DIR)
    dictionaries = load_dictionaries(WEIGHTS_DIR / "dictionaries", model)
    residual = load_residual(WEIGHTS_DIR, model)
    assert list(dictionaries) == module_names(6) and list(residual) == residual_names(6)
    for sub in ("dictionaries", "residual"):
        assert sorted(p.name for p in (WEIGHTS_DIR / sub).iterdir()) == sorted(
            residual_names(6) if sub == "residual" else module_names(6)
        )
    for module in ("L4A", "L3M", "L2R"):
        folder = WEIGHTS_DIR / ("residual" if module.endswith("R") else "dictionaries") / module
        metadata = json.loads((folder / "cfg.json").read_text())["metadata"]
        assert metadata["model_fingerprint"] == model_fingerprint(model)
        assert {"training", "metrics"} <= set(metadata) and metadata["hook_name"] == hook_name_of(module)
