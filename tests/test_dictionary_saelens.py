"""SAELens folders (``cfg.json`` + ``sae_weights.safetensors``), written by hand the way sae-lens
6.x writes them, read as the module their hook names: encoding exactly as the dictionary they came
from, ``apply_b_dec_to_input: false`` folded in exactly, and what we cannot read refused clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from othello_tui.cli import main
from othello_tui.dictionary.io import load_dictionaries, load_saelens, save_dictionary
from othello_tui.dictionary.sae import hook_name_of
from othello_tui.game.generator import generate_games
from othello_tui.game.squares import square_name
from othello_tui.model.weights import WeightsError, model_fingerprint


def write_saelens(folder: Path, dictionary, **cfg) -> Path:
    """A folder as ``sae.save_model(folder)`` (sae-lens 6.54) writes one of a TopK SAE."""
    folder.mkdir(parents=True)
    tensors = {
        name: getattr(dictionary, name).detach().clone() for name in ("W_enc", "b_enc", "W_dec", "b_dec")
    }
    save_file(tensors, folder / "sae_weights.safetensors")
    config = {
        "d_in": dictionary.cfg.d_in,
        "d_sae": dictionary.cfg.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {"sae_lens_version": "6.54.12", "hook_name": dictionary.cfg.hook_name},
        "k": dictionary.cfg.k,
        "rescale_acts_by_decoder_norm": False,
        "architecture": "topk",
        **cfg,
    }
    (folder / "cfg.json").write_text(json.dumps(config))
    return folder


def test_a_saelens_folder_is_the_module_its_hook_names_and_encodes_as_ours(
    tmp_path, tiny_model, tiny_dictionaries
):
    original = tiny_dictionaries["L1M"]
    write_saelens(tmp_path / "any-name", original)
    loaded = load_dictionaries(tmp_path, tiny_model)
    assert list(loaded) == ["L1M"] and loaded["L1M"].cfg.hook_name == "blocks.1.hook_mlp_out"
    x_ND = torch.randn(50, original.cfg.d_in, generator=torch.Generator().manual_seed(1))
    assert torch.equal(loaded["L1M"].encode(x_ND), original.encode(x_ND))


def test_apply_b_dec_to_input_false_reads_the_raw_input(tmp_path, tiny_dictionaries):
    original = tiny_dictionaries["L0A"]
    loaded = load_saelens(write_saelens(tmp_path / "sae", original, apply_b_dec_to_input=False))
    x_ND = torch.randn(20, original.cfg.d_in, generator=torch.Generator().manual_seed(2))
    expected_NF = x_ND @ original.W_enc + original.b_enc  # SAELens: no b_dec subtracted first
    assert torch.allclose(loaded.pre_acts(x_ND), expected_NF, atol=1e-5)
    assert not torch.allclose(original.pre_acts(x_ND), expected_NF, atol=1e-3)


def test_an_old_config_names_its_hook_point_and_means_standard(tmp_path, tiny_dictionaries):
    original = tiny_dictionaries["L1A"]
    folder = tmp_path / "old"
    write_saelens(folder, original)
    config = json.loads((folder / "cfg.json").read_text())
    for key in ("metadata", "architecture", "k", "rescale_acts_by_decoder_norm"):
        del config[key]
    (folder / "cfg.json").write_text(json.dumps({**config, "hook_point": "blocks.1.hook_attn_out"}))
    loaded = load_saelens(folder)
    assert loaded.cfg.module == "L1A" and loaded.cfg.architecture == "standard"
    x_ND = torch.randn(5, original.cfg.d_in)
    assert torch.equal(loaded.encode(x_ND), torch.relu(original.pre_acts(x_ND)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"normalize_activations": "layer_norm"}, "normalize_activations 'layer_norm'"),
        ({"architecture": "gated"}, "architecture 'gated'"),
        ({"rescale_acts_by_decoder_norm": True}, "rescale_acts_by_decoder_norm"),
        ({"metadata": {"hook_name": "blocks.1.hook_resid_pre"}}, "no module output"),
        ({"d_in": 7}, "does not match its config"),
    ],
)
def test_what_cannot_be_read_is_refused_clearly(tmp_path, tiny_dictionaries, change, message):
    write_saelens(tmp_path / "sae", tiny_dictionaries["L1M"], **change)
    with pytest.raises(WeightsError, match=message.replace("(", r"\(")):
        load_dictionaries(tmp_path)


def test_two_dictionaries_for_one_module_are_refused(tmp_path, tiny_dictionaries):
    save_dictionary(tiny_dictionaries["L1M"], tmp_path)
    write_saelens(tmp_path / "sae", tiny_dictionaries["L1M"])
    with pytest.raises(WeightsError, match="two dictionaries for L1M"):
        load_dictionaries(tmp_path)


def test_trace_reads_saelens_folders_from_dictionaries(tmp_path, tiny_weights, tiny_model, tiny_dictionaries):
    for name in ("othello_gpt.safetensors", "othello_gpt.json"):
        shutil.copy(tiny_weights / name, tmp_path / name)
    for dictionary in tiny_dictionaries.values():
        save_dictionary(
            dictionary, tmp_path / "dictionaries", {"model_fingerprint": model_fingerprint(tiny_model)}
        )
        write_saelens(tmp_path / "saelens" / f"sae-{hook_name_of(dictionary.cfg.module)}", dictionary)
    moves = " ".join(square_name(s) for s in generate_games(1, 4).squares[0][:12])
    args = ["trace", "--moves", moves, "--target", "logit:c-4", "--depth", "2", "--weights", str(tmp_path)]
    ours = CliRunner().invoke(main, args)
    theirs = CliRunner().invoke(main, [*args, "--dictionaries", str(tmp_path / "saelens")])
    assert ours.exit_code == 0 and theirs.exit_code == 0, theirs.output
    assert theirs.output == ours.output
    missing = CliRunner().invoke(main, [*args, "--dictionaries", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "no such folder" in missing.output and "Traceback" not in missing.output


def test_the_app_and_eval_dictionaries_read_them_too(tmp_path, tiny_weights, tiny_dictionaries):
    from othello_tui.tui.engine import load_engine

    for dictionary in tiny_dictionaries.values():
        write_saelens(tmp_path / "saelens" / dictionary.cfg.module.lower(), dictionary)
    engine = load_engine(tiny_weights, "cpu", tmp_path / "saelens")
    assert list(engine.dictionaries) == list(tiny_dictionaries)
    x_ND = torch.randn(5, tiny_dictionaries["L0M"].cfg.d_in)
    assert torch.equal(engine.dictionaries["L0M"].encode(x_ND), tiny_dictionaries["L0M"].encode(x_ND))
    args = [
        "eval",
        "dictionaries",
        "--weights",
        str(tiny_weights),
        "--dictionaries",
        str(tmp_path / "saelens"),
    ]
    refused = CliRunner().invoke(main, [*args, "--save", "--games", "2"])
    assert refused.exit_code == 2 and "came from SAELens folders" in refused.output


def test_a_jumprelu_folder_activates_as_saelens_does(tmp_path, tiny_dictionaries):
    original = tiny_dictionaries["L0M"]
    folder = write_saelens(tmp_path / "jump", original, architecture="jumprelu")
    threshold_F = torch.linspace(-0.5, 0.5, original.cfg.d_sae)  # some below zero
    tensors = {
        name: getattr(original, name).detach().clone() for name in ("W_enc", "b_enc", "W_dec", "b_dec")
    }
    save_file({**tensors, "threshold": threshold_F}, folder / "sae_weights.safetensors")
    loaded = load_saelens(folder)
    x_ND = torch.randn(40, original.cfg.d_in, generator=torch.Generator().manual_seed(3))
    h_NF = original.pre_acts(x_ND)
    assert torch.equal(loaded.encode(x_ND), torch.relu(h_NF) * (h_NF > threshold_F))  # SAELens's rule


def test_a_fingerprint_in_the_metadata_must_match_the_model(tmp_path, tiny_model, tiny_dictionaries):
    metadata = {"hook_name": "blocks.0.hook_attn_out", "model_fingerprint": "0" * 16}
    write_saelens(tmp_path / "sae", tiny_dictionaries["L0A"], metadata=metadata)
    with pytest.raises(WeightsError, match="trained for another model"):
        load_dictionaries(tmp_path, tiny_model)
    assert list(load_dictionaries(tmp_path)) == ["L0A"]  # no model: nothing to compare with


def test_sae_lens_encodes_a_folder_as_we_read_it(tmp_path, tiny_dictionaries):
    sae_lens = pytest.importorskip("sae_lens")
    original = tiny_dictionaries["L1M"]
    folder = write_saelens(tmp_path / "sae", original, apply_b_dec_to_input=False)
    sae = sae_lens.SAE.load_from_disk(str(folder), device="cpu")
    x_ND = torch.randn(30, original.cfg.d_in, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(sae.encode(x_ND), load_saelens(folder).encode(x_ND), atol=1e-5)
