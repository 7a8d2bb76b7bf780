"""SAELens folders (``cfg.json`` + ``sae_weights.safetensors``), written by hand the way sae-lens
6.x writes them, read as the module their hook names: encoding exactly as the dictionary they came
from, ``apply_b_dec_to_input: false`` folded in exactly, and what we cannot read refused clearly."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from click.testing import CliRunner
from conftest import write_saelens
from safetensors.torch import save_file

from othello_tui.cli import main
from othello_tui.dictionary.io import load_dictionaries, load_saelens, save_dictionary
from othello_tui.dictionary.sae import hook_name_of
from othello_tui.game.generator import generate_games
from othello_tui.game.squares import square_name
from othello_tui.model.weights import WeightsError, model_fingerprint


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
    old_topk = {**config, "hook_point": "blocks.1.hook_attn_out", "activation_fn": "topk"}
    (folder / "cfg.json").write_text(json.dumps({**old_topk, "activation_fn_kwargs": {"k": 8}}))
    loaded = load_saelens(folder)  # sae-lens reads this as TopK k = 8, so do we
    assert loaded.cfg.architecture == "topk" and loaded.cfg.k == 8
    assert torch.equal(loaded.encode(x_ND), original.encode(x_ND))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"normalize_activations": "covariance_whitening"},
            "normalize_activations 'covariance_whitening' (a training checkpoint: the input whitening",
        ),
        ({"normalize_activations": "per_token_magic"}, "'per_token_magic' (unknown to sae-lens 6.x"),
        ({"reshape_activations": "hook_z"}, "reshape_activations 'hook_z'"),
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


@pytest.mark.parametrize("normalisation", ["expected_average_only_in", False, True, None])
def test_normalisations_sae_lens_runs_as_the_identity_are_read_as_such(
    tmp_path, tiny_dictionaries, normalisation
):
    """sae-lens's ``load_from_disk`` leaves the input alone for ``expected_average_only_in`` (its
    scale is folded in at training's end) and old configs' true/false mean it or none."""
    original = tiny_dictionaries["L1M"]
    loaded = load_saelens(write_saelens(tmp_path / "sae", original, normalize_activations=normalisation))
    x_ND = torch.randn(30, original.cfg.d_in, generator=torch.Generator().manual_seed(5))
    assert torch.equal(loaded.encode(x_ND), original.encode(x_ND))


def test_eval_save_records_metrics_in_our_folders_of_any_name_and_older_pairs(
    tmp_path, tiny_weights, tiny_model, tiny_dictionaries
):
    fingerprint = {"model_fingerprint": model_fingerprint(tiny_model), "training": {"steps": 7}}
    folder = save_dictionary(tiny_dictionaries["L0A"], tmp_path, fingerprint)
    folder.rename(tmp_path / "renamed")
    save_dictionary(tiny_dictionaries["L1M"], tmp_path, fingerprint)
    old = json.loads((tmp_path / "L1M" / "cfg.json").read_text())
    shutil.move(tmp_path / "L1M" / "sae_weights.safetensors", tmp_path / "L1M.safetensors")
    (tmp_path / "L1M.json").write_text(
        json.dumps({**{k: v for k, v in old.items() if k != "metadata"}, **old["metadata"]})
    )
    shutil.rmtree(tmp_path / "L1M")
    args = ["eval", "dictionaries", "--weights", str(tiny_weights), "--dictionaries", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--games", "4", "--json", "--save"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["modules"]
    ours = json.loads((tmp_path / "renamed" / "cfg.json").read_text())["metadata"]
    assert ours["metrics"]["fvu"] == report["L0A"]["fvu"] and ours["metrics"]["games"] == 4
    assert ours["training"] == {"steps": 7} and ours["module"] == "L0A"
    pair = json.loads((tmp_path / "L1M.json").read_text())
    assert pair["metrics"]["fvu"] == report["L1M"]["fvu"] and pair["training"] == {"steps": 7}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["L1M.json", "L1M.safetensors", "renamed"]


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
    assert (
        refused.exit_code == 2 and "L0A, L0M, L1A, L1M: SAELens folders written elsewhere" in refused.output
    )
    assert "Traceback" not in refused.output


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


def _same_as_sae_lens(sae, dictionary, scale: float, seed: int = 0) -> None:
    """``sae.encode``/``decode`` against ours on random inputs (and random sparse codes)."""
    generator = torch.Generator().manual_seed(seed)
    x_ND = scale * torch.randn(200, dictionary.cfg.d_in, generator=generator)
    c_NF = torch.rand(200, dictionary.cfg.d_sae, generator=generator) * (
        torch.rand(200, dictionary.cfg.d_sae, generator=generator) < 0.05
    )
    with torch.no_grad():
        assert torch.allclose(sae.encode(x_ND), dictionary.encode(x_ND), atol=1e-5, rtol=0)
        assert torch.allclose(sae.decode(c_NF), dictionary.decode(c_NF), atol=1e-5, rtol=0)
    assert (dictionary.encode(x_ND) > 0).any()


@pytest.mark.parametrize("kind", ["dictionaries", "residual"])
def test_sae_lens_opens_every_shipped_folder_and_encodes_as_we_do(kind):
    sae_lens = pytest.importorskip("sae_lens")
    from othello_tui.dictionary.io import load_residual
    from othello_tui.model.weights import WEIGHTS_DIR

    ours = (
        load_residual(WEIGHTS_DIR) if kind == "residual" else load_dictionaries(WEIGHTS_DIR / "dictionaries")
    )
    assert len(ours) == (6 if kind == "residual" else 12)
    for module, dictionary in ours.items():
        sae = sae_lens.SAE.load_from_disk(str(WEIGHTS_DIR / kind / module), device="cpu")
        assert sae.cfg.architecture() == dictionary.cfg.architecture
        assert sae.cfg.metadata.hook_name == dictionary.cfg.hook_name
        _same_as_sae_lens(sae, dictionary, scale=10.0)  # module outputs have norms of tens


@pytest.mark.parametrize("architecture", ["standard", "topk", "jumprelu"])
def test_sae_lens_opens_what_we_save_of_each_architecture(tmp_path, tiny_dictionaries, architecture):
    sae_lens = pytest.importorskip("sae_lens")
    from othello_tui.dictionary.sae import Dictionary, DictionaryConfig

    source = tiny_dictionaries["L1A"]
    k = 8 if architecture == "topk" else None
    l1 = 0.5 if architecture == "standard" else None
    dictionary = Dictionary(
        DictionaryConfig("L1A", source.cfg.hook_name, architecture, source.cfg.d_in, source.cfg.d_sae, k, l1)
    )
    dictionary.load_state_dict(source.state_dict())
    with torch.no_grad():
        dictionary.threshold.uniform_(0.0, 0.3, generator=torch.Generator().manual_seed(6))
    folder = save_dictionary(dictionary, tmp_path, {"model_fingerprint": "x"})
    sae = sae_lens.SAE.load_from_disk(str(folder), device="cpu")
    assert sae.cfg.architecture() == architecture and sae.cfg.metadata.module == "L1A"
    _same_as_sae_lens(sae, dictionary, scale=1.0)
    assert load_dictionaries(tmp_path)["L1A"].cfg == dictionary.cfg


@pytest.mark.parametrize("architecture", ["standard", "topk", "jumprelu"])
@pytest.mark.parametrize("apply_b_dec_to_input", [True, False])
def test_we_read_what_sae_lens_saves(tmp_path, architecture, apply_b_dec_to_input):
    pytest.importorskip("sae_lens")
    from sae_lens.registry import get_sae_class
    from sae_lens.saes.sae import SAEMetadata

    sae_class, config_class = get_sae_class(architecture)
    cfg = config_class(
        d_in=16,
        d_sae=40,
        apply_b_dec_to_input=apply_b_dec_to_input,
        normalize_activations="expected_average_only_in",
        metadata=SAEMetadata(hook_name="blocks.2.hook_mlp_out", model_name="othello"),
        **({"k": 5} if architecture == "topk" else {}),
    )
    sae = sae_class(cfg)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for parameter in sae.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        if architecture == "jumprelu":
            sae.threshold.abs_()
    sae.save_model(tmp_path / "from-sae-lens")
    (dictionary,) = load_dictionaries(tmp_path).values()
    assert dictionary.cfg.module == "L2M" and dictionary.cfg.architecture == architecture
    _same_as_sae_lens(sae, dictionary, scale=1.0)
