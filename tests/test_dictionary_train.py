"""The trainer recovers known sparse directions; dead features come back; resume continues."""

from __future__ import annotations

import pytest
import torch

from othello_tui.dictionary.sae import DictionaryConfig, hook_name_of
from othello_tui.dictionary.stacked import StackedDictionaries
from othello_tui.dictionary.trainer import DictionaryTrainConfig, DictionaryTrainer, lr_scale

Tensor = torch.Tensor
D, TRUE_FEATURES, ACTIVE = 16, 24, 3


def synthetic_batch(directions_GD: Tensor, n: int, generator: torch.Generator, scale: float) -> Tensor:
    """``n`` tokens, each a sum of ACTIVE random true directions with coefficients in [0.5, 1.5]."""
    picks = torch.rand(n, len(directions_GD), generator=generator).argsort(-1)[:, :ACTIVE]
    coefficients = torch.zeros(n, len(directions_GD)).scatter(
        -1, picks, 0.5 + torch.rand(n, ACTIVE, generator=generator)
    )
    return scale * coefficients @ directions_GD


def train_synthetic(
    architecture: str, steps: int, **settings
) -> tuple[StackedDictionaries, Tensor, DictionaryTrainer]:
    generator = torch.Generator().manual_seed(0)
    directions_GD = torch.randn(TRUE_FEATURES, D, generator=generator)
    directions_GD /= directions_GD.norm(dim=-1, keepdim=True)
    form = "jumprelu" if architecture == "batchtopk" else architecture  # BatchTopK saves as JumpReLU
    cfgs = [
        DictionaryConfig(m, hook_name_of(m), form, d_in=D, d_sae=2 * TRUE_FEATURES, k=ACTIVE)
        for m in ("L0A", "L0M")
    ]
    batch_k = [ACTIVE, ACTIVE] if architecture == "batchtopk" else None
    stacked = StackedDictionaries(cfgs, torch.Generator().manual_seed(1), batch_k)
    cfg = DictionaryTrainConfig(
        modules=("L0A", "L0M"),
        architecture=architecture,
        d_sae=2 * TRUE_FEATURES,
        k=ACTIVE,
        tokens=steps * 256,
        minutes=None,
        batch_tokens=256,
        lr=1e-2,
        warmup_steps=20,
        dead_tokens=256 * 50,
        **settings,
    )
    trainer = DictionaryTrainer(stacked, cfg)
    # module 1 sees the same data 40× larger: the power-of-two scale must make that irrelevant
    batch = lambda n: torch.stack([synthetic_batch(directions_GD, n, generator, s) for s in (1.0, 40.0)])  # noqa: E731
    trainer.initialise(batch(4096))
    for i in range(steps):
        trainer.step(batch(256), progress=i / steps)
    return stacked, directions_GD, trainer


@pytest.mark.parametrize(
    ("architecture", "steps", "settings"),
    [("topk", 600, {}), ("standard", 600, {"l1_coefficient": 0.5}), ("batchtopk", 1500, {})],
)
def test_training_recovers_known_sparse_directions(architecture, steps, settings):
    """(A Matryoshka dictionary is not expected to: its first features must reconstruct alone,
    so they become broader directions, by design.)"""
    stacked, directions_GD, _ = train_synthetic(architecture, steps, **settings)
    for m in range(2):
        cosine_GF = directions_GD @ stacked.W_dec[m].detach().T
        best_G = cosine_GF.max(dim=1).values
        assert best_G.min() >= 0.95, f"dictionary {m}: worst recovered cosine {best_G.min():.3f}"


def test_topk_auxiliary_loss_revives_dead_features():
    """Starve half the features (encoder rows shrunk 20×, so they never win the top-k): AuxK, which
    trains the best dead features to fit the residual, brings them back."""
    stacked, _, trainer = train_synthetic("topk", 1, aux_k=8)
    with torch.no_grad():
        stacked.W_enc[:, :, ::2] *= 0.05
        stacked.b_enc[:, ::2] = 0.0
    trainer.tokens_since_fired_MF[:, ::2] = trainer.cfg.dead_tokens  # and are already counted dead
    generator = torch.Generator().manual_seed(5)
    directions_GD = torch.randn(TRUE_FEATURES, D, generator=generator)
    directions_GD /= directions_GD.norm(dim=-1, keepdim=True)
    dead_before = trainer.dead_MF().sum().item()
    for i in range(300):
        x = torch.stack([synthetic_batch(directions_GD, 256, generator, s) for s in (1.0, 40.0)])
        trainer.step(x, progress=0.1 + i / 1000)
    assert dead_before == 2 * TRUE_FEATURES
    assert trainer.dead_MF().sum().item() < dead_before / 2  # without AuxK all 48 stay dead


def test_standard_resampling_revives_dead_features():
    stacked, _, trainer = train_synthetic("standard", 1, l1_coefficient=0.1)
    with torch.no_grad():
        stacked.b_enc[:, ::2] = -100.0
    trainer.tokens_since_fired_MF[:, ::2] = trainer.cfg.dead_tokens
    trainer.step(torch.randn(2, 256, D), progress=0.1)
    assert trainer.dead_MF().sum().item() == 0
    assert (stacked.b_enc[:, ::2] == 0).all()
    assert torch.allclose(stacked.W_dec.norm(dim=-1), torch.ones(2, 2 * TRUE_FEATURES), atol=1e-5)


def test_lr_schedule():
    cfg = DictionaryTrainConfig(tokens=100, minutes=None, warmup_steps=10, decay_fraction=0.2)
    assert lr_scale(0, 0.0, cfg) == pytest.approx(0.1)
    assert lr_scale(50, 0.5, cfg) == 1.0
    assert lr_scale(90, 0.9, cfg) == pytest.approx(0.5)
    assert lr_scale(99, 1.0, cfg) == 0.0


def test_checkpoint_tensors_round_trip():
    stacked, _, trainer = train_synthetic("topk", 5)
    tensors = {k: v.clone() for k, v in trainer.checkpoint_tensors().items()}
    _, _, other = train_synthetic("topk", 1)
    other.load_checkpoint_tensors(tensors)
    for key, value in other.checkpoint_tensors().items():
        assert torch.equal(value, tensors[key]), key


@pytest.mark.parametrize("architecture", ["topk", "standard", "jumprelu"])
def test_grouped_steps_equal_one_stacked_step(architecture):
    """Differentiating the dictionaries one group at a time gives the same update as all at once."""
    stacks = []
    for group_size in (1, 2):
        cfgs = [
            DictionaryConfig(m, hook_name_of(m), architecture, d_in=D, d_sae=32, k=4) for m in ("L0A", "L0M")
        ]
        stacked = StackedDictionaries(cfgs, torch.Generator().manual_seed(3))
        cfg = DictionaryTrainConfig(
            modules=("L0A", "L0M"),
            architecture=architecture,
            d_sae=32,
            k=4,
            tokens=10,
            minutes=None,
            group_size=group_size,
            dead_tokens=64,
        )
        trainer = DictionaryTrainer(stacked, cfg)
        generator = torch.Generator().manual_seed(4)
        trainer.initialise(torch.randn(2, 512, D, generator=generator))
        for _ in range(3):
            trainer.step(torch.randn(2, 64, D, generator=generator), progress=0.6)
        stacks.append(stacked)
    for (name, a), b in zip(stacks[0].named_parameters(), stacks[1].parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_batchtopk_saves_a_jumprelu_whose_threshold_keeps_about_k_per_token():
    stacked, directions_GD, _ = train_synthetic("batchtopk", 600)
    generator = torch.Generator().manual_seed(9)
    for m, dictionary in enumerate(stacked.to_dictionaries().values()):
        assert dictionary.cfg.architecture == "jumprelu"
        assert torch.unique(dictionary.threshold).numel() == 1 and dictionary.threshold[0] > 0
        x = synthetic_batch(directions_GD, 2048, generator, (1.0, 40.0)[m])
        l0 = (dictionary.encode(x) > 0).sum(-1).float().mean().item()
        assert ACTIVE * 0.7 <= l0 <= ACTIVE * 1.4, f"dictionary {m}: L0 {l0:.2f}, trained for {ACTIVE}"


def test_matryoshka_prefix_of_every_feature_is_the_full_reconstruction():
    stacked, directions_GD, trainer = train_synthetic("topk", 5, matryoshka=(4, 12))
    x = torch.stack(
        [synthetic_batch(directions_GD, 64, torch.Generator().manual_seed(3), s) for s in (1.0, 1.0)]
    )
    x_hat, _, codes = stacked(x)
    assert torch.allclose(stacked.decode_prefix(*codes, 2 * TRUE_FEATURES), x_hat, atol=1e-5)
    first_MND = stacked.decode_prefix(*codes, 4)
    _, indices, values = codes
    expected = stacked.decode_sparse(indices, values * (indices < 4)) + stacked.b_dec[:, None, :]
    assert torch.allclose(first_MND, expected, atol=1e-6)


def test_activation_store_serves_the_stored_module_outputs(tiny_model, tmp_path):
    import numpy as np

    from othello_tui.dictionary.buffer import module_outputs
    from othello_tui.dictionary.store import StoredActivations, write_store
    from othello_tui.game.generator import random_games
    from othello_tui.model.weights import WeightsError

    modules = ["L0A", "L1M"]
    hooks = [hook_name_of(m) for m in modules]
    write_store(tiny_model, hooks, modules, 3000, seed=4, out_dir=tmp_path)
    stored = np.load(tmp_path / "activations.npy")
    games = random_games(64, np.random.default_rng(4))
    tokens = torch.from_numpy(games.tokens[:, :-1].astype(np.int64))
    expected = module_outputs(tiny_model, tokens, hooks)[: len(stored)].numpy()
    assert stored.shape == (3000, 2, tiny_model.cfg.d_model)
    assert np.allclose(stored.astype(np.float32), expected, rtol=2e-3, atol=2e-3)  # float16
    store = StoredActivations(tmp_path, ["L1M"], 1000, np.random.default_rng(0))
    seen = torch.cat([store.next_batch() for _ in range(3)], dim=1)  # one epoch: every token once
    assert seen.shape == (1, 3000, tiny_model.cfg.d_model)
    assert torch.equal(
        seen[0].sort(0).values, torch.from_numpy(stored[:, 1].astype(np.float32)).sort(0).values
    )
    with pytest.raises(WeightsError, match="lacks L5M"):
        StoredActivations(tmp_path, ["L5M"], 1000, np.random.default_rng(0))
