"""The incremental forward pass: a game's first moves run once, their keys and values kept
(:class:`KVCache`), then only the moves after them. Attention is causal, so this must give what
one pass over the whole game gives, at every hook, to float rounding; checked on the tiny model
with every parameter random and on a random model of the public config (8 layers, d_model 512,
n_ctx 59, LNPre)."""

from __future__ import annotations

import pytest
import torch
from test_model import random_model
from test_tl_checkpoint import PUBLIC, game_tokens, tl_state_dict

from othello_tui.model.transformer import KVCache, OthelloGPT
from othello_tui.model.weights import load_model

TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(scope="module", params=["tiny", "public"])
def model(request, tmp_path_factory) -> OthelloGPT:
    """The tiny model with every parameter random, or a random one of the public config saved and
    loaded the way a TransformerLens user's checkpoint is."""
    if request.param == "tiny":
        return random_model()
    path = tmp_path_factory.mktemp("public") / "synthetic_model.pth"
    torch.save(tl_state_dict(PUBLIC), path)
    loaded, _ = load_model(path)
    return loaded


def tokens_of_game(model: OthelloGPT, seed: int = 5) -> torch.Tensor:
    """[1, n_ctx]: the first moves of a long random game, as many as the model reads."""
    return torch.from_numpy(game_tokens(60, seed)[: model.cfg.n_ctx])[None]


def positions(name: str, value: torch.Tensor, start: int) -> torch.Tensor:
    """A full pass's hook value from position ``start`` on (the position axis of each hook)."""
    if name == "hook_pos_embed":  # W_pos[:T]: no batch axis
        return value[start:]
    if name.endswith(("hook_pattern", "hook_attn_scores")):  # [B, H, T, S]: queries from start on
        return value[:, :, start:]
    return value[:, start:]


def kv_cache(model: OthelloGPT, tokens_1T: torch.Tensor) -> KVCache:
    """The keys and values of one pass over ``tokens_1T``."""
    _, cache = model.run_with_cache(tokens_1T, KVCache.hook_names(model.cfg.n_layers))
    return KVCache.of(cache, model.cfg.n_layers)


@pytest.mark.parametrize("start", [1, 17, -1])
@torch.no_grad()
def test_a_pass_after_the_first_moves_equals_one_pass_at_every_hook(model, start):
    tokens_1T = tokens_of_game(model)
    start %= tokens_1T.shape[1]
    logits_1TV, full = model.run_with_cache(tokens_1T)
    past = kv_cache(model, tokens_1T[:, :start])
    assert len(past) == start
    later_1TV, later = model.run_with_cache(tokens_1T[:, start:], past=past)
    torch.testing.assert_close(later_1TV, logits_1TV[:, start:], **TOLERANCE)
    assert later.keys() == full.keys()
    for name, value in later.items():
        torch.testing.assert_close(value, positions(name, full[name], start), **TOLERANCE, msg=name)


@torch.no_grad()
def test_keys_and_values_grow_a_move_at_a_time_and_equal_one_pass(model):
    tokens_1T = tokens_of_game(model)
    n_layers = model.cfg.n_layers
    names = KVCache.hook_names(n_layers)
    logits_1TV = model(tokens_1T)
    past, rows = None, []
    for t in range(tokens_1T.shape[1]):
        logits_11V, cache = model.run_with_cache(tokens_1T[:, t : t + 1], names, past)
        past = KVCache.of(cache, n_layers, past)
        rows.append(logits_11V)
    torch.testing.assert_close(torch.cat(rows, 1), logits_1TV, **TOLERANCE)
    whole = kv_cache(model, tokens_1T)
    for grown, expected in zip(past.keys + past.values, whole.keys + whole.values, strict=True):
        torch.testing.assert_close(grown, expected, **TOLERANCE)


@torch.no_grad()
def test_a_truncated_cache_serves_a_game_that_branches_there(model):
    """The keys and values of game A cut to its first 20 moves run game B, which shares only
    those: what a pass over B alone gives (nothing of A's later moves leaks in)."""
    game_a, game_b = tokens_of_game(model, seed=5), tokens_of_game(model, seed=6).clone()
    game_b[:, :20] = game_a[:, :20]
    assert not torch.equal(game_a[:, 20:], game_b[:, 20:])
    past = kv_cache(model, game_a).truncated(20)
    assert len(past) == 20
    branched_1TV = model(game_b[:, 20:], past)
    torch.testing.assert_close(branched_1TV, model(game_b)[:, 20:], **TOLERANCE)
    assert not torch.allclose(branched_1TV, model(game_a)[:, 20:], atol=1e-2)
