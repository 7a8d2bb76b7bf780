"""Othello-GPTs saved by TransformerLens users: one ``torch.save(model.state_dict())`` file.

Nothing can be downloaded here, so the public model (Li et al.'s, converted by Nanda: 8 layers,
d_model 512, n_ctx 59, LNPre) is rebuilt at exactly its config with random weights, keyed and
saved the way TransformerLens saves it, ``mask`` and ``IGNORE`` buffers included.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from othello_tui.circuits.nodes import Target
from othello_tui.circuits.trace import GameTrace
from othello_tui.cli import main
from othello_tui.game.generator import generate_games
from othello_tui.game.rules import Game
from othello_tui.game.squares import TOKEN_TO_SQUARE, square_name
from othello_tui.model.errors import WeightsError
from othello_tui.model.weights import load_model, weights_home

PUBLIC = {
    "n_layers": 8, "d_model": 512, "d_head": 64, "n_heads": 8, "d_mlp": 2048, "d_vocab": 61,
    "d_vocab_out": 61, "n_ctx": 59, "act_fn": "gelu", "normalization_type": "LNPre",
}  # fmt: skip
SMALL = {**PUBLIC, "n_layers": 3, "d_model": 32, "d_head": 8, "n_heads": 4, "d_mlp": 64}


def tl_state_dict(cfg: dict, seed: int = 0, ln: bool = False) -> OrderedDict:
    """A random ``HookedTransformer.state_dict()`` of ``cfg``: TransformerLens key names and
    shapes, the attention buffers, and LayerNorm weights only when ``ln`` (random γ, β)."""
    g = torch.Generator().manual_seed(seed)
    L, D, H, E, M, T = (cfg[k] for k in ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "n_ctx"))

    def rand(*shape, std=0.05):
        return torch.randn(*shape, generator=g) * std

    def norm(name):
        if ln:
            state[f"{name}.w"], state[f"{name}.b"] = 1 + rand(D, std=0.3), rand(D, std=0.3)

    state = OrderedDict([("embed.W_E", rand(61, D, std=1.0)), ("pos_embed.W_pos", rand(T, D, std=0.5))])
    for layer in range(L):
        b = f"blocks.{layer}."
        norm(b + "ln1")
        for n in "QKV":
            state[f"{b}attn.W_{n}"] = rand(H, D, E, std=D**-0.5)
        state[b + "attn.W_O"] = rand(H, E, D, std=(H * E) ** -0.5)
        for n in "QKV":
            state[f"{b}attn.b_{n}"] = rand(H, E)
        state[b + "attn.b_O"] = rand(D)
        state[b + "attn.mask"] = torch.tril(torch.ones(T, T, dtype=torch.bool))
        state[b + "attn.IGNORE"] = torch.tensor(-1e5)
        norm(b + "ln2")
        state[b + "mlp.W_in"], state[b + "mlp.b_in"] = rand(D, M, std=D**-0.5), rand(M)
        state[b + "mlp.W_out"], state[b + "mlp.b_out"] = rand(M, D, std=M**-0.5), rand(D)
    norm("ln_final")
    state["unembed.W_U"], state["unembed.b_U"] = rand(D, 61, std=D**-0.5), rand(61)
    return state


def folded(state: dict, n_layers: int) -> OrderedDict:
    """TransformerLens's ``fold_ln``: each LayerNorm's γ into the next weights, β into their
    biases; the result is an LNPre state dict of the same function."""
    out = OrderedDict((k, v.clone()) for k, v in state.items() if ".ln" not in k and "ln_final" not in k)
    for layer in range(n_layers):
        b = f"blocks.{layer}."
        w, beta = state[b + "ln1.w"], state[b + "ln1.b"]
        for n in "QKV":
            W = state[f"{b}attn.W_{n}"]
            out[f"{b}attn.W_{n}"] = W * w[None, :, None]
            out[f"{b}attn.b_{n}"] = state[f"{b}attn.b_{n}"] + torch.einsum("d,hde->he", beta, W)
        w, beta = state[b + "ln2.w"], state[b + "ln2.b"]
        out[b + "mlp.W_in"] = state[b + "mlp.W_in"] * w[:, None]
        out[b + "mlp.b_in"] = state[b + "mlp.b_in"] + beta @ state[b + "mlp.W_in"]
    w, beta = state["ln_final.w"], state["ln_final.b"]
    out["unembed.W_U"] = state["unembed.W_U"] * w[:, None]
    out["unembed.b_U"] = state["unembed.b_U"] + beta @ state["unembed.W_U"]
    return out


@pytest.fixture(scope="module")
def public_file(tmp_path_factory) -> Path:
    """The public model's config, random weights, saved as ``torch.save(model.state_dict())``."""
    path = tmp_path_factory.mktemp("public") / "synthetic_model.pth"
    torch.save(tl_state_dict(PUBLIC), path)
    return path


@pytest.fixture(scope="module")
def small_file(tmp_path_factory) -> Path:
    """A 3-layer LNPre model of n_ctx 59 with its config beside it, for the command sweep."""
    folder = tmp_path_factory.mktemp("small")
    torch.save(tl_state_dict(SMALL, seed=1), folder / "small.pth")
    (folder / "small.json").write_text(json.dumps(SMALL))
    return folder / "small.pth"


def game_tokens(n_moves: int = 60, seed: int = 5) -> np.ndarray:
    games = generate_games(8, seed)
    index = int(np.flatnonzero(games.lengths >= n_moves)[0])
    return games.tokens[index].astype(np.int64)


def relative_error(attribution) -> float:
    scale = max(abs(attribution.value), float(attribution.values_N.abs().sum()))
    return abs(attribution.sum() - attribution.value) / scale


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


# -- the public model ----------------------------------------------------------------------------


def test_the_public_model_loads_with_an_inferred_config_and_traces_exactly(public_file):
    from tests.conftest import random_dictionaries

    model, meta = load_model(public_file)
    assert {k: model.cfg.to_dict()[k] for k in PUBLIC} == PUBLIC
    assert "inferred from the tensor shapes" in meta["note"] and "--config" in meta["note"]
    tokens = game_tokens()[: model.cfg.n_ctx]  # 59 of the 60 moves: the last is never an input
    dictionaries = {m: d for m, d in random_dictionaries(model).items() if m in ("L2A", "L7M")}
    trace = GameTrace(model, dictionaries, tokens)
    assert trace.modules[-1] == "L7M" and len(trace.modules) == 16
    rng = np.random.default_rng(0)
    targets = [Target("logit", p, square=int(TOKEN_TO_SQUARE[rng.integers(1, 61)])) for p in (0, 30, 58)]
    targets += [Target("score", 58, layer=7, head=3, key=11), Target("score", 40, layer=0, head=0, key=40)]
    for module in dictionaries:
        feature = int(np.flatnonzero(trace.activations[module][50].cpu().numpy() > 0)[0])
        targets.append(Target("feature", 50, module=module, feature=feature))
    for target in targets:
        attribution = trace.contributions(target)
        assert attribution.value == trace.target_value(target)
        assert relative_error(attribution) <= 1e-5, target
    with pytest.raises(Exception, match="n_ctx"):
        trace.check_position(59)


def test_trace_on_the_public_file_reads_59_moves_and_says_the_config_was_inferred(public_file):
    moves = " ".join(square_name(int(s)) for s in TOKEN_TO_SQUARE[game_tokens()])
    result = run("trace", "--weights", public_file, "--moves", moves, "--target", "logit:e-1", "--depth", "2")
    assert result.exit_code == 0, result.output
    assert "config inferred from the tensor shapes" in result.stderr
    assert "at P58 (move 59)" in result.stdout  # the last move the model reads
    result = run("trace", "--weights", public_file, "--moves", moves, "--pos", "59", "--target", "logit:e-1")
    assert result.exit_code == 1 and "reads 59 moves" in result.output and "Traceback" not in result.output


def test_the_app_stops_at_the_context_of_an_n_ctx_59_model(public_file):
    from othello_tui.tui.session import Session

    session = Session.from_weights(public_file, device="cpu", build=False)
    session.load()
    assert "inferred" in session.model_note
    game = Game.from_squares(TOKEN_TO_SQUARE[game_tokens()].tolist())
    session.analyse(game)
    assert session.view(game, 59).probs is not None
    last = session.view(game, 60)
    assert last.probs is None and not last.pending and "first 59 moves" in last.predictions_note
    session.analyse(game)  # already covered: no second pass, nothing indexes past n_ctx
    assert session.view(game, 60).pending is False


# -- LN and LNPre ------------------------------------------------------------------------------


def test_ln_and_lnpre_forms_give_identical_logits(tmp_path):
    ln_state = tl_state_dict(SMALL, seed=2, ln=True)
    torch.save(ln_state, tmp_path / "ln.pth")
    save_file(dict(folded(ln_state, SMALL["n_layers"])), tmp_path / "pre.safetensors")
    ln_model, _ = load_model(tmp_path / "ln.pth")
    pre_model, _ = load_model(tmp_path / "pre.safetensors")
    assert (ln_model.cfg.normalization_type, pre_model.cfg.normalization_type) == ("LN", "LNPre")
    assert torch.equal(pre_model.blocks[1].ln2.w, torch.ones(SMALL["d_model"]))
    tokens = torch.from_numpy(game_tokens()[:59])[None]
    ln_logits, pre_logits = ln_model(tokens), pre_model(tokens)
    assert (ln_logits - ln_model(tokens * 0 + 1)).abs().max() > 0.1  # the LN weights matter
    torch.testing.assert_close(pre_logits, ln_logits, rtol=1e-5, atol=1e-5)


# -- where the config comes from ----------------------------------------------------------------


def test_config_beside_the_file_bare_or_under_config_and_config_overrides_it(tmp_path):
    torch.save(tl_state_dict(SMALL, seed=3), tmp_path / "m.pth")
    tl_fields = {**SMALL, "d_vocab_out": -1, "n_heads": -1, "eps": 1e-5, "tokenizer_name": None, "seed": 7}
    (tmp_path / "m.json").write_text(json.dumps(tl_fields))
    model, meta = load_model(tmp_path / "m.pth")
    assert meta["note"] is None and meta["config_source"].endswith("m.json")
    assert (model.cfg.n_heads, model.cfg.d_vocab_out, model.cfg.normalization_type) == (4, 61, "LNPre")
    (tmp_path / "m.json").write_text(json.dumps({"config": {**SMALL, "act_fn": "gelu_new"}}))
    with pytest.raises(WeightsError, match="act_fn='gelu_new'"):
        load_model(tmp_path / "m.pth")
    (tmp_path / "good.json").write_text(json.dumps({"config": SMALL}))
    model, meta = load_model(tmp_path / "m.pth", config=tmp_path / "good.json")
    assert meta["config_source"].endswith("good.json") and model.cfg.n_layers == 3
    result = run("eval", "model", "--weights", tmp_path / "m.pth", "--config", tmp_path / "good.json",
                 "--games", 2, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["legal_top1_by_move"]) == 59


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"act_fn": "relu"}, "act_fn='relu'"),
        ({"parallel_attn_mlp": True}, "parallel_attn_mlp=True"),
        ({"positional_embedding_type": "rotary"}, "positional_embedding_type='rotary'"),
        ({"normalization_type": "RMS"}, "normalization_type='RMS'"),
        ({"n_ctx": 61}, "n_ctx=61"),
        ({"attn_scale": 3.0}, "attn_scale=3.0"),
    ],
)
def test_unsupported_configs_are_refused_in_one_line(tmp_path, setting, message):
    torch.save(tl_state_dict(SMALL, seed=3), tmp_path / "m.pth")
    (tmp_path / "m.json").write_text(json.dumps({**SMALL, **setting}))
    result = run("eval", "model", "--weights", tmp_path / "m.pth", "--games", 1)
    assert result.exit_code == 1 and message in result.output and "unsupported model" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


# -- bad files -----------------------------------------------------------------------------------


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # what a malicious pickle does: call a function when unpickled
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["garbage", "pickle-that-runs-code", "not-only-tensors", "list",
                                  "unknown-tensor", "missing-tensor", "wrong-suffix", "lnpre-with-ln"])  # fmt: skip
def test_bad_files_are_clear_errors_and_never_run_code(tmp_path, kind):
    path, marker = tmp_path / "m.pth", tmp_path / "pwned"
    state = tl_state_dict(SMALL, seed=4)
    if kind == "garbage":
        path.write_bytes(b"this is not a torch file")
        message = "not a readable torch file"
    elif kind == "pickle-that-runs-code":
        torch.save({"embed.W_E": _RunsCode(marker)}, path)
        message = "holds more than tensors"
    elif kind == "not-only-tensors":
        torch.save({"state_dict": state, "epoch": 3}, path)
        message = "not a tensor"
    elif kind == "list":
        torch.save([state["embed.W_E"]], path)
        message = "not a state dict"
    elif kind == "unknown-tensor":
        torch.save({**state, "blocks.0.mlp.W_gate": torch.zeros(32, 64)}, path)
        message = "no place for"
    elif kind == "missing-tensor":
        del state["blocks.2.mlp.b_out"]
        torch.save(state, path)
        message = "missing blocks.2.mlp.b_out"
    elif kind == "wrong-suffix":
        path = tmp_path / "m.bin"
        torch.save(state, path)
        message = "a model file is .safetensors, .pth, .pt"
    else:
        torch.save({**state, "blocks.0.ln1.w": torch.ones(32)}, path)
        (tmp_path / "m.json").write_text(json.dumps(SMALL))
        message = "the config says LNPre"
    with pytest.raises(WeightsError, match=message):
        load_model(path)
    result = run("trace", "--weights", path, "--moves", "f-4 f-5", "--target", "logit:e-1")
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert not marker.exists()


# -- every command on a small n_ctx-59 LNPre checkpoint ------------------------------------------


def test_every_command_runs_on_a_checkpoint_file(small_file, tmp_path):
    home = weights_home(small_file)
    assert home == small_file.with_suffix("")
    moves = ["--seed", 0, "--game-index", 1]
    steps = [
        ("eval", "model", "--games", 2),
        ("train", "dictionaries", "--d-sae", 32, "--k", 4, "--tokens", 4096, "--batch", 1024,
         "--checkpoint", tmp_path / "dict.safetensors", "--device", "cpu"),
        ("train", "probes", "--games", 8, "--positions", 4, "--eval-games", 4, "--device", "cpu"),
        ("cache", "build", "--games", 4, "--top-k", 4, "--out", tmp_path / "features.h5", "--device", "cpu"),
        ("trace", *moves, "--target", "feature:L2M0", "--depth", 2),
        ("trace", *moves, "--target", "probe:L2:e-4:mine-theirs"),
        ("intervene", *moves, "--pos", 20, "--believe", "L1:e-4=theirs"),
        ("board", *moves, "--layer", "L2"),
        ("feature", "L2M3", "--cache", tmp_path / "features.h5", *moves),
    ]  # fmt: skip
    for step in steps:
        args = list(step)
        result = run(*args, "--weights", small_file)
        assert result.exit_code == 0, (step, result.output)
    assert sorted(p.name for p in (home / "dictionaries").iterdir())[-1].startswith("L2M")
    assert (home / "probes.safetensors").exists()


@pytest.mark.filterwarnings("ignore")
def test_logits_equal_transformerlens(public_file):
    transformer_lens = pytest.importorskip("transformer_lens")
    cfg = transformer_lens.HookedTransformerConfig(**PUBLIC)
    tl_model = transformer_lens.HookedTransformer(cfg)
    tl_model.load_state_dict(torch.load(public_file, weights_only=True), strict=False)
    model, _ = load_model(public_file)
    tokens = torch.from_numpy(game_tokens()[:59])[None]
    torch.testing.assert_close(model(tokens), tl_model(tokens), rtol=1e-5, atol=1e-5)


def test_the_app_opens_the_public_file_says_the_config_was_inferred_and_steps_to_move_60(public_file):
    from othello_tui.tui.app import make_app
    from othello_tui.tui.session import Session
    from tests.test_tui_app import run, settle

    game = Game.from_squares(TOKEN_TO_SQUARE[game_tokens()].tolist())
    app = make_app(Session.from_weights(public_file, device="cpu", build=False), game, 0)

    async def scenario(pilot):
        assert any("inferred" in str(n.message) for n in app._notifications)
        await pilot.press("end")  # move 60: the model reads 59
        await settle(app, pilot)
        view = app.main_screen.current_view
        assert view.n_moves == 60 and view.probs is None and "first 59 moves" in view.predictions_note
        await pilot.press("left")
        await settle(app, pilot)
        assert app.main_screen.current_view.probs is not None

    run(app, scenario)
