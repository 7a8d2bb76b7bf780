"""One optimisation step for a stack of dictionaries: losses, the unit-norm decoder constraint and
dead-feature revival. The data source is separate (``buffer.py``), so the same step trains on model
activations or on synthetic data in tests.

Losses, per dictionary, on inputs scaled by a power of two (``stacked.py``); ``FVU = Σ‖x − x̂‖² /
Σ‖x − x̄‖²`` is used as the reconstruction loss so every module weighs the same whatever its norm:

- ``topk``: ``FVU + α·AuxK`` (Gao et al. 2024, "Scaling and evaluating sparse autoencoders", §A.2):
  the top ``aux_k`` *dead* features reconstruct the residual ``e = x − x̂``; AuxK is that fit's
  normalised MSE, α = 1/32. It gives dead features a gradient, so they come back;
- ``standard``: ``FVU + λ·‖c‖₁/σ`` with σ² = E‖x − x̄‖² (the write-up's ReLU + L1; λ warms up over the
  first 5% of training), dead features resampled towards badly reconstructed inputs (Bricken et al.
  2023, "Towards Monosemanticity", resampling);
- ``jumprelu``: ``FVU + λ₀·L0`` with straight-through threshold gradients (``jumprelu.py``),
  resampled like ``standard``;
- ``batchtopk``: ``FVU + α·AuxK`` like ``topk``, but the ``k·N`` largest activations of the batch
  are kept wherever they fall (Bussmann et al. 2024, "BatchTopK Sparse Autoencoders"); the saved
  dictionary is a JumpReLU with one threshold, the running mean of the smallest kept activation.

``matryoshka`` (Bussmann et al. 2025, "Learning Multi-Level Features with Matryoshka SAEs") adds
nested prefixes: the reconstruction term becomes the mean FVU of the reconstructions from the
first m₁ < m₂ < … features and from all of them, so early features must stand on their own and
are not absorbed into later, narrower ones.

Shape legend: M dictionaries, N tokens, D d_in, F features, K active per token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from othello_tui.dictionary import distributed
from othello_tui.dictionary.jumprelu import step as heaviside
from othello_tui.dictionary.sae import MODULES
from othello_tui.dictionary.stacked import ALL, StackedDictionaries, power_of_two_scale

#: mean active features per token of the write-up's dictionaries, L0A … L5M (DESIGN.md §5); issue 4
#: asks for less, ideally half, which ``half_writeup_k`` gives as per-module top-k settings
WRITEUP_L0 = dict(
    zip(MODULES, (70.6, 88.3, 30.6, 98.7, 68.5, 113.6, 62.9, 118.8, 79.0, 121.3, 81.9, 121.9), strict=True)
)
THRESHOLD_EMA = 0.99  # BatchTopK: smoothing of the smallest kept activation (the saved threshold)
RESAMPLE_ENCODER_NORM = 0.2  # Bricken et al.: new encoder rows at 0.2 × the mean alive encoder norm
L1_WARMUP = 0.05  # fraction of training over which the L1 coefficient ramps up


@dataclass
class DictionaryTrainConfig:
    modules: tuple[str, ...] = tuple(MODULES)
    architecture: str = "topk"  # topk, batchtopk, standard or jumprelu
    d_sae: int = 1024
    k: int = 32  # topk, batchtopk
    matryoshka: tuple[int, ...] = ()  # nested prefix sizes (topk, batchtopk), e.g. (64, 256)
    module_k: dict[str, int] = field(default_factory=dict)  # topk, batchtopk: per-module overrides of k
    l1_coefficient: float = 1.0  # standard
    l0_coefficient: float = 3e-4  # jumprelu
    tokens: int | None = None  # budget in training tokens per dictionary
    minutes: float | None = 80.0  # wall-clock budget (stops at whichever budget ends first)
    batch_tokens: int = 4096
    activations: str | None = None  # an activation store (``store.py``) instead of fresh games
    group_size: int | None = None  # dictionaries per backward pass; None: 1 on a CPU, all on a GPU
    buffer_batches: int = 16  # buffer capacity in batches
    lr: float = 3e-3
    warmup_steps: int = 100
    decay_fraction: float = 0.2  # the learning rate decays linearly to 0 over the last 20%
    dead_tokens: int = 1_000_000  # a feature that has not fired for this many tokens is dead
    aux_k: int = 64
    aux_coefficient: float = 1 / 32
    revive_until: float = 0.5  # resampling (standard, jumprelu) stops after this share of training
    seed: int = 0
    threads: int | None = None
    checkpoint_every_minutes: float = 5.0
    extra: dict = field(default_factory=dict)  # free-form provenance (e.g. the command line)

    def __post_init__(self):
        if self.minutes is None and self.tokens is None:
            raise ValueError("give a budget: minutes, tokens or both")
        if self.matryoshka and self.architecture not in ("topk", "batchtopk"):
            raise ValueError("Matryoshka prefixes go with topk or batchtopk")


def half_writeup_k(modules: list[str]) -> dict[str, int]:
    """Per-module k = half the write-up's L0 (rounded down), for the modules it reports."""
    return {m: int(WRITEUP_L0[m] // 2) for m in modules if m in WRITEUP_L0}


def lr_scale(step: int, progress: float, cfg: DictionaryTrainConfig) -> float:
    """Multiplier of the learning rate: linear warm-up, constant, linear decay to 0 at the end."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps)
    decay = min(1.0, (1.0 - progress) / cfg.decay_fraction) if cfg.decay_fraction > 0 else 1.0
    return warm * max(0.0, decay)


@dataclass
class StepStats:
    loss: float
    fvu_M: Tensor
    l0_M: Tensor


class DictionaryTrainer:
    """Adam on a :class:`StackedDictionaries`; call :meth:`initialise` once with sample inputs."""

    def __init__(self, dictionaries: StackedDictionaries, cfg: DictionaryTrainConfig):
        self.dicts, self.cfg = dictionaries, cfg
        M, F = dictionaries.b_enc.shape
        device = dictionaries.W_enc.device
        self.optimizer = torch.optim.Adam(dictionaries.trainable_parameters(), lr=cfg.lr, fused=True)
        self.variance_M = torch.ones(M, device=device)  # E‖s·x − mean‖², the FVU denominator
        self.tokens_since_fired_MF = torch.zeros(M, F, device=device)
        self.steps = 0
        self.tokens = 0

    @torch.no_grad()
    def initialise(self, sample_MND: Tensor) -> None:
        """Scales, FVU denominators and ``b_dec`` (the mean input, Gao et al.) from raw inputs."""
        D = sample_MND.shape[-1]
        self.dicts.scale.copy_(power_of_two_scale(sample_MND.pow(2).sum(-1).mean(1), D))
        x_MND = sample_MND * self.dicts.scale[:, None, None]
        mean_MD = x_MND.mean(1)
        self.dicts.b_dec.copy_(mean_MD)
        self.variance_M.copy_((x_MND - mean_MD[:, None]).pow(2).sum(-1).mean(1))
        distributed.broadcast_([self.dicts.scale, self.dicts.b_dec, self.variance_M])  # rank 0's sample

    def dead_MF(self) -> Tensor:
        return self.tokens_since_fired_MF >= self.cfg.dead_tokens

    def _auxk_loss(self, h_MNF: Tensor, error_MND: Tensor, dead_MF: Tensor, group: slice) -> Tensor:
        """Normalised MSE of the top ``aux_k`` dead features' fit to the residual, per dictionary."""
        M, N, _ = h_MNF.shape
        n_dead = int(dead_MF.sum(-1).max())
        dead_first_Mn = dead_MF.to(torch.int8).argsort(dim=-1, descending=True, stable=True)[:, :n_dead]
        is_dead_Mn = dead_MF.gather(1, dead_first_Mn)
        h_dead_MNn = h_MNF.gather(-1, dead_first_Mn[:, None, :].expand(M, N, n_dead))
        h_dead_MNn = h_dead_MNn.masked_fill(~is_dead_Mn[:, None, :], float("-inf"))
        values_MNK, picks_MNK = h_dead_MNn.topk(min(self.cfg.aux_k, n_dead), dim=-1, sorted=False)
        features_MNK = dead_first_Mn.gather(1, picks_MNK.reshape(M, -1)).reshape(picks_MNK.shape)
        fit_MND = self.dicts.decode_sparse(features_MNK, torch.relu(values_MNK), group)
        target_MND = error_MND.detach()
        spread_M = (target_MND - target_MND.mean(1, keepdim=True)).pow(2).sum((1, 2)).clamp(min=1e-12)
        return (target_MND - fit_MND).pow(2).sum((1, 2)) / spread_M * dead_MF.any(-1)

    def losses(
        self, x_MND: Tensor, progress: float, group: slice = ALL
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``(loss, fvu_M, l0_M, fired_MF, x̂)`` of the dictionaries ``group`` on their inputs,
        already scaled."""
        cfg, M, N = self.cfg, x_MND.shape[0], x_MND.shape[1]
        variance_M = self.variance_M[group]
        x_hat_MND, h_MNF, (dense_MNF, indices_MNK, values_MNK) = self.dicts(x_MND, group)
        error_MND = x_MND - x_hat_MND
        fvu_M = error_MND.pow(2).sum((1, 2)) / (N * variance_M)
        loss = fvu_M.sum()
        if cfg.matryoshka:
            prefix_fvu_M = [
                (x_MND - self.dicts.decode_prefix(dense_MNF, indices_MNK, values_MNK, width, group))
                .pow(2)
                .sum((1, 2))
                / (N * variance_M)
                for width in cfg.matryoshka
            ]
            loss = (loss + sum(f.sum() for f in prefix_fvu_M)) / (len(cfg.matryoshka) + 1)
        if dense_MNF is None:
            active_MNK = values_MNK > 0
            fired_MF = torch.zeros(M, h_MNF.shape[-1], device=x_MND.device).scatter_add_(
                1, indices_MNK.reshape(M, -1), active_MNK.reshape(M, -1).to(x_MND.dtype)
            )
        else:
            fired_MF = (dense_MNF > 0).sum(1).to(x_MND.dtype)
        if dense_MNF is None:  # TopK, BatchTopK
            if self.dicts.batch_k is not None:
                self._track_threshold(values_MNK, group)
            dead_MF = self.dead_MF()[group]
            if dead_MF.any():
                loss = loss + cfg.aux_coefficient * self._auxk_loss(h_MNF, error_MND, dead_MF, group).sum()
        elif self.dicts.architecture == "standard":
            l1_M = dense_MNF.sum((1, 2)) / (N * variance_M.sqrt())
            loss = loss + cfg.l1_coefficient * min(1.0, progress / L1_WARMUP) * l1_M.sum()
        else:
            threshold_M1F = self.dicts.log_threshold[group].exp()[:, None, :]
            loss = loss + cfg.l0_coefficient * heaviside(h_MNF, threshold_M1F).sum() / N
        return loss, fvu_M.detach(), fired_MF.sum(-1) / N, fired_MF, x_hat_MND.detach()

    @torch.no_grad()
    def _track_threshold(self, values_MNK: Tensor, group: slice) -> None:
        smallest_M = values_MNK.masked_fill(values_MNK <= 0, float("inf")).amin((1, 2))
        log_M = smallest_M.clamp(min=1e-6).log()
        current_M = self.dicts.log_threshold[group, 0]
        new_M = log_M if self.steps == 0 else THRESHOLD_EMA * current_M + (1 - THRESHOLD_EMA) * log_M
        new_M = torch.where(torch.isfinite(smallest_M), new_M, current_M)  # a batch keeping nothing
        self.dicts.log_threshold[group] = new_M[:, None].expand_as(self.dicts.log_threshold[group])

    def groups(self) -> list[slice]:
        """Consecutive slices of the stack processed one after the other within a step."""
        M = len(self.dicts.configs)
        size = self.cfg.group_size or (M if self.dicts.W_enc.is_cuda else 1)
        return [slice(start, min(start + size, M)) for start in range(0, M, size)]

    def step(self, raw_MND: Tensor, progress: float) -> StepStats:
        """One Adam step on a batch of raw (unscaled) inputs ``[M, N, D]``. The loss is a sum of
        independent per-dictionary terms, so each group's part is differentiated on its own (small
        working sets, which on a CPU beat one stacked product, see ``bench/dictionaries.py``)."""
        x_MND = raw_MND * self.dicts.scale[:, None, None]
        group_losses: list[float] = []
        parts: list[list[Tensor]] = []  # (fvu_M, l0_M, fired_MF, x_hat_MND) of each group
        for group in self.groups():
            loss, *stats = self.losses(x_MND[group], progress, group)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"dictionary loss is {loss.item()} at step {self.steps}")
            loss.backward()
            group_losses.append(loss.item())
            parts.append(stats)
        total_loss = sum(group_losses)
        fvu_M, l0_M, fired_MF, x_hat_MND = (torch.cat([part[i] for part in parts]) for i in range(4))
        distributed.average_gradients(self.dicts.trainable_parameters())
        distributed.sum_(fired_MF)
        self.dicts.remove_radial_gradient()
        for param_group in self.optimizer.param_groups:
            param_group["lr"] = self.cfg.lr * lr_scale(self.steps, progress, self.cfg)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.dicts.normalise_decoder()
        N = x_MND.shape[1] * distributed.size()  # tokens of the step, over every rank
        with torch.no_grad():
            self.tokens_since_fired_MF += N
            self.tokens_since_fired_MF.masked_fill_(fired_MF > 0, 0)
        self.steps += 1
        self.tokens += N
        if (
            self.dicts.architecture in ("standard", "jumprelu")
            and self.dicts.batch_k is None
            and progress < self.cfg.revive_until
        ):
            self.resample_dead(x_MND, x_hat_MND)
        return StepStats(total_loss, fvu_M, l0_M)

    @torch.no_grad()
    def resample_dead(self, x_MND: Tensor, x_hat_MND: Tensor) -> None:
        """Point each dead feature at an input drawn with probability ∝ its squared error: decoder
        row = that input's direction (after ``b_dec``), encoder row = the same direction at 0.2 ×
        the mean alive encoder norm, bias 0, Adam moments cleared (Bricken et al. 2023)."""
        dead_MF = self.dead_MF()
        if not dead_MF.any():
            return
        error_MN = (x_MND - x_hat_MND).pow(2).sum(-1)
        state = self.optimizer.state
        for m in dead_MF.any(-1).nonzero().flatten().tolist():
            features = dead_MF[m].nonzero().flatten()
            picks = torch.multinomial(error_MN[m] + 1e-12, len(features), replacement=True)
            direction_nD = x_MND[m, picks] - self.dicts.b_dec[m]
            direction_nD /= direction_nD.norm(dim=-1, keepdim=True).clamp(min=1e-8)
            alive = ~dead_MF[m]
            enc_norm = self.dicts.W_enc[m][:, alive].norm(dim=0).mean() if alive.any() else torch.tensor(1.0)
            self.dicts.W_dec[m, features] = direction_nD
            self.dicts.W_enc[m][:, features] = direction_nD.T * RESAMPLE_ENCODER_NORM * enc_norm
            self.dicts.b_enc[m, features] = 0.0
            for p, index in (
                (self.dicts.W_dec, (m, features)),
                (self.dicts.W_enc, (m, slice(None), features)),
                (self.dicts.b_enc, (m, features)),
                (self.dicts.log_threshold, (m, features)),
            ):
                for moment in ("exp_avg", "exp_avg_sq"):
                    if p in state and moment in state[p]:
                        state[p][moment][index] = 0.0
            self.tokens_since_fired_MF[m, features] = 0

    def checkpoint_tensors(self) -> dict[str, Tensor]:
        """Everything needed to continue exactly: parameters, Adam state, scales, counters."""
        tensors: dict[str, Tensor] = {f"param.{name}": p for name, p in self.dicts.named_parameters()}
        tensors["state.scale"] = self.dicts.scale
        tensors["state.variance"] = self.variance_M
        tensors["state.tokens_since_fired"] = self.tokens_since_fired_MF
        names: dict[Tensor, str] = {p: name for name, p in self.dicts.named_parameters()}
        for p, moments in self.optimizer.state.items():
            for key, value in moments.items():
                tensors[f"adam.{names[p]}.{key}"] = torch.as_tensor(value)
        return tensors

    @torch.no_grad()
    def load_checkpoint_tensors(self, tensors: dict[str, Tensor]) -> None:
        for name, p in self.dicts.named_parameters():
            p.copy_(tensors[f"param.{name}"])
        self.dicts.scale.copy_(tensors["state.scale"])
        self.variance_M.copy_(tensors["state.variance"])
        self.tokens_since_fired_MF.copy_(tensors["state.tokens_since_fired"])
        for name, p in self.dicts.named_parameters():
            prefix = f"adam.{name}."
            moments = {
                k[len(prefix) :]: v.clone().to(p.device) for k, v in tensors.items() if k.startswith(prefix)
            }
            if moments:
                self.optimizer.state[p] = moments
