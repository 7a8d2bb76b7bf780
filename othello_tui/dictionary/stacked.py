"""Several same-shape dictionaries as one module: one set of stacked parameters ``[M, …]``, one
optimiser, one checkpoint, and products batched over the stack (``torch.bmm``). The computation
methods take a ``group`` (a slice of the stack), because measurement decides how much to batch:
on this 2-core CPU a step that differentiates one dictionary at a time beats one product over all
12 (smaller working sets; ``bench/dictionaries.py``), while a GPU wants everything at once.

Dictionary ``m`` of the stack is a :class:`~othello_tui.dictionary.sae.Dictionary` acting on
``scale[m]·x``: training sees every module's output rescaled by a power of two (module norms range
over more than an order of magnitude, DESIGN.md §5), and :meth:`StackedDictionaries.to_dictionaries`
folds the scale back so the saved dictionary works on raw activations. Because the scale is a power
of two, the fold is exact in floating point (``fl(s·a) = s·fl(a)`` for ``s = 2^j``): with primes
marking the training-space dictionary,

    h(x)    = W_enc·(x − b_dec'/s) + b_enc'/s  = h'(s·x) / s
    c(x)    = act(h(x))                        = c'(s·x) / s   (ReLU, TopK; JumpReLU with θ'/s)
    x̂(x)    = W_dec·c(x) + b_dec'/s           = x̂'(s·x) / s

bit for bit when both are evaluated as a ``Dictionary``. Shape legend: M dictionaries, N tokens,
D d_in, F features, K active per token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from othello_tui.dictionary.jumprelu import jumprelu
from othello_tui.dictionary.sae import Dictionary, DictionaryConfig

ALL = slice(None)
BATCH_SPAN = 4  # BatchTopK: candidates per token, in multiples of k
#: JumpReLU thresholds start at e^-1 ≈ 0.37, in training units (inputs scaled to E‖x‖² ≈ d_in)
INITIAL_LOG_THRESHOLD = -1.0


def _sparse(indices_MNK: Tensor | None, values_MNK: Tensor | None) -> tuple[Tensor, Tensor]:
    """The top-k ``(indices, values)`` of sparse codes (those without dense codes)."""
    if indices_MNK is None or values_MNK is None:
        raise ValueError("codes without dense activations need top-k indices and values")
    return indices_MNK, values_MNK


class StackedDictionaries(nn.Module):
    # buffers, registered in __init__ (k_M for topk only)
    k_M: Tensor
    scale: Tensor

    def __init__(
        self,
        configs: list[DictionaryConfig],
        generator: torch.Generator | None = None,
        batch_k: list[int] | None = None,
    ):
        """``batch_k`` trains JumpReLU-form dictionaries by BatchTopK (Bussmann et al. 2024): about the
        ``k·N`` largest activations of a batch of N tokens are kept, whichever tokens they fall on;
        the saved dictionary applies one threshold per dictionary, the running estimate of the
        smallest kept activation, held in ``log_threshold`` (not trained)."""
        super().__init__()
        shapes = {(c.architecture, c.d_in, c.d_sae) for c in configs}
        if len(shapes) != 1:
            raise ValueError(f"stacked dictionaries must share architecture, d_in and d_sae, got {shapes}")
        self.configs = list(configs)
        self.architecture, D, F = shapes.pop()
        M = len(configs)
        if self.architecture == "topk":  # k may differ per dictionary: top-(max k), the excess masked
            self.register_buffer("k_M", torch.tensor([c.k for c in configs]))
        self.W_enc = nn.Parameter(torch.empty(M, D, F))
        self.b_enc = nn.Parameter(torch.zeros(M, F))
        self.W_dec = nn.Parameter(torch.empty(M, F, D))
        self.b_dec = nn.Parameter(torch.zeros(M, D))
        # JumpReLU thresholds are learnt in log space (positive by construction)
        self.log_threshold = nn.Parameter(
            torch.full((M, F), INITIAL_LOG_THRESHOLD), requires_grad=self.architecture == "jumprelu"
        )
        self.register_buffer("scale", torch.ones(M))  # powers of two, see the module docstring
        self.batch_k = batch_k
        if batch_k is not None:
            if self.architecture != "jumprelu" or len(batch_k) != M:
                raise ValueError("BatchTopK trains JumpReLU-form dictionaries, one k per dictionary")
            self.log_threshold.requires_grad_(False)
        with torch.no_grad():
            self.W_dec.normal_(generator=generator)
            self.normalise_decoder()
            self.W_enc.copy_(self.W_dec.transpose(1, 2))

    @property
    def names(self) -> list[str]:
        """Module names, in stack order."""
        return [c.module for c in self.configs]

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp(min=1e-8))

    @torch.no_grad()
    def remove_radial_gradient(self) -> None:
        """Project out the part of each decoder row's gradient along the row, so a step followed
        by :meth:`normalise_decoder` moves along the unit sphere (Bricken et al. 2023)."""
        if self.W_dec.grad is not None:
            radial_MF1 = (self.W_dec.grad * self.W_dec).sum(-1, keepdim=True)
            self.W_dec.grad -= radial_MF1 * self.W_dec

    def pre_acts(self, x_MND: Tensor, group: slice = ALL) -> Tensor:
        """``h = W_enc·(x − b_dec) + b_enc`` for the dictionaries ``group``: [M, N, F], computed as
        ``W_enc·x + (b_enc − W_enc·b_dec)`` so that the gradient of ``b_dec`` costs a [F]×[F, D]
        product instead of a second [N, F]×[F, D] one (same value up to rounding)."""
        W_enc_MDF = self.W_enc[group]
        bias_M1F = (self.b_enc[group] - torch.einsum("md,mdf->mf", self.b_dec[group], W_enc_MDF))[:, None, :]
        return torch.baddbmm(bias_M1F, x_MND, W_enc_MDF)

    def decode_sparse(self, indices_MNK: Tensor, values_MNK: Tensor, group: slice = ALL) -> Tensor:
        """``Σ_k values·W_dec[indices]`` per dictionary (no bias): [M, N, D], touching only K rows
        per token (``embedding_bag`` over the stacked decoders, indices offset by ``m·F``)."""
        M, N, K = indices_MNK.shape
        W_dec_MFD = self.W_dec[group]
        F_, D = W_dec_MFD.shape[1:]
        offset_M11 = (torch.arange(M, device=indices_MNK.device) * F_)[:, None, None]
        out = F.embedding_bag(
            (indices_MNK + offset_M11).reshape(M * N, K),
            W_dec_MFD.reshape(M * F_, D),
            per_sample_weights=values_MNK.reshape(M * N, K),
            mode="sum",
        )
        return out.reshape(M, N, D)

    def decode_prefix(
        self,
        dense_MNF: Tensor | None,
        indices_MNK: Tensor | None,
        values_MNK: Tensor | None,
        width: int,
        group: slice = ALL,
    ) -> Tensor:
        """The reconstruction from the first ``width`` features only (Matryoshka prefixes)."""
        b_dec_M1D = self.b_dec[group, None, :]
        if dense_MNF is not None:
            return torch.baddbmm(b_dec_M1D, dense_MNF[..., :width], self.W_dec[group, :width])
        indices_MNK, values_MNK = _sparse(indices_MNK, values_MNK)
        kept_MNK = values_MNK * (indices_MNK < width)
        return self.decode_sparse(indices_MNK, kept_MNK, group) + b_dec_M1D

    def encode(self, h_MNF: Tensor, group: slice = ALL) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """The activation rule: ``(dense codes or None, top-k indices or None, top-k values or None)``."""
        if self.architecture == "topk":
            # top-k of h, then ReLU of the k values: equal to top-k of ReLU(h) without a dense ReLU
            k_M = self.k_M[group]
            k_max, uniform = int(k_M.max()), bool((k_M == k_M[0]).all())
            values_MNK, indices_MNK = h_MNF.topk(k_max, dim=-1, sorted=not uniform)
            if not uniform:  # sorted, so rank ≥ k of dictionary m is beyond its k
                values_MNK = values_MNK * (torch.arange(k_max, device=h_MNF.device) < k_M[:, None, None])
            return None, indices_MNK, torch.relu(values_MNK)
        if self.batch_k is not None:
            return self._batch_top_k(h_MNF, group)
        if self.architecture == "jumprelu":
            return jumprelu(h_MNF, self.log_threshold[group].exp()[:, None, :]), None, None
        return torch.relu(h_MNF), None, None

    def _batch_top_k(self, h_MNF: Tensor, group: slice) -> tuple[None, Tensor, Tensor]:
        """Sparse codes keeping about each dictionary's ``k·N`` largest positive activations in the
        batch (ties at the cut are all kept).
        They are chosen among each token's ``BATCH_SPAN·k`` largest (a token holding more than
        that share of the batch's largest activations is vanishingly rare), which keeps the step
        as cheap as TopK's instead of a selection over all N·F activations."""
        assert self.batch_k is not None  # encode calls this only for BatchTopK
        k_M = torch.tensor(self.batch_k[group], device=h_MNF.device)
        M, N, F_ = h_MNF.shape
        values_MNK, indices_MNK = h_MNF.topk(min(BATCH_SPAN * int(k_M.max()), F_), dim=-1, sorted=False)
        values_MNK = torch.relu(values_MNK)
        flat_MX = values_MNK.detach().reshape(M, -1)
        cut_M = torch.stack(
            [
                row.topk(min(int(k) * N, row.numel()), sorted=False).values.min()
                for row, k in zip(flat_MX, k_M, strict=True)
            ]
        )
        kept_MNK = (values_MNK >= cut_M[:, None, None]) & (values_MNK > 0)
        return None, indices_MNK, values_MNK * kept_MNK

    def forward(
        self, x_MND: Tensor, group: slice = ALL
    ) -> tuple[Tensor, Tensor, tuple[Tensor | None, Tensor | None, Tensor | None]]:
        """``(x̂ [M,N,D], pre-activations h [M,N,F], codes)`` for the dictionaries ``group`` (all by
        default), ``codes`` as :meth:`encode` gives."""
        h_MNF = self.pre_acts(x_MND, group)
        codes = self.encode(h_MNF, group)
        dense_MNF, indices_MNK, values_MNK = codes
        if dense_MNF is None:
            x_hat_MND = (
                self.decode_sparse(*_sparse(indices_MNK, values_MNK), group) + self.b_dec[group, None, :]
            )
        else:
            x_hat_MND = torch.baddbmm(self.b_dec[group, None, :], dense_MNF, self.W_dec[group])
        return x_hat_MND, h_MNF, codes

    @torch.no_grad()
    def to_dictionaries(self) -> dict[str, Dictionary]:
        """One :class:`Dictionary` per module, working on raw (unscaled) activations."""
        out = {}
        for m, cfg in enumerate(self.configs):
            s = self.scale[m].item()
            dictionary = Dictionary(cfg, init=False)
            dictionary.W_enc.copy_(self.W_enc[m])
            dictionary.b_enc.copy_(self.b_enc[m] / s)
            dictionary.W_dec.copy_(self.W_dec[m])
            dictionary.b_dec.copy_(self.b_dec[m] / s)
            if cfg.architecture == "jumprelu":
                dictionary.threshold.copy_(self.log_threshold[m].exp() / s)
            out[cfg.module] = dictionary.eval()
        return out


def power_of_two_scale(mean_squared_norm: Tensor, d_in: int) -> Tensor:
    """The power of two ``s`` nearest (in log) to ``sqrt(d_in / E‖x‖²)``, so ``E‖s·x‖² ≈ d_in``."""
    return torch.exp2(torch.round(0.5 * torch.log2(d_in / mean_squared_norm.clamp(min=1e-12))))
