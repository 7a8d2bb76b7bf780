"""A sparse dictionary (sparse autoencoder) over one module's output (DESIGN.md §5).

``h = W_enc·(x − b_dec) + b_enc`` is the linear pre-activation shared by every architecture, so
the circuit analysis (DESIGN.md §3.4) is the same for all of them; only the activation rule
differs:

- ``standard``: ``c = ReLU(h)``, trained with an L1 penalty (the write-up's form);
- ``topk``: the ``k`` largest ``ReLU(h)`` per token, the rest zero (Gao et al. 2024);
- ``jumprelu``: ``c = h·[h > threshold]`` with a per-feature threshold (Rajamanoharan et al. 2024).

Decoder rows are kept at unit norm, so a feature's activation is the length of what it writes.

A SAELens dictionary may normalise its input per token (``normalize_activations``, sae-lens's
``run_time_activation_norm_fn_in``/``_out``): the encoder reads ``s·x`` and the decoder writes
``x̂ = o·(W_dec·c + b_dec) + μ``, where s, o and μ are functions of the token's x (:class:`TokenNorm`).
Frozen at their values on the real x, like LayerNorm's σ (DESIGN.md §3.2), they leave
``h = W_enc·(s·x − b_dec) + b_enc`` linear in x. Ours are trained without one ("none").

Shape legend: N tokens (any leading shape), D d_in, F features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

ARCHITECTURES = ("standard", "topk", "jumprelu")
NORMALISATIONS = ("none", "constant_norm_rescale", "layer_norm")
LAYER_NORM_EPS = 1e-5  # sae-lens's run_time_activation_ln_in


@dataclass(frozen=True)
class DictionaryConfig:
    """SAELens-style config fields (plus the module name of this project)."""

    module: str  # "L0A" … "L5M", or a residual dictionary "L0R" … "L5R"
    hook_name: str  # TransformerLens hook, e.g. "blocks.0.hook_attn_out"
    architecture: str = "topk"
    d_in: int = 128
    d_sae: int = 1024
    k: int | None = 32  # topk only
    l1_coefficient: float | None = None  # standard only
    #: sae-lens's per-token input normalisation (:class:`TokenNorm`); for "layer_norm" the
    #: centring x − mean(x) is folded into W_enc (columns summing to zero) when the folder is read
    normalize_activations: str = "none"

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {self.architecture!r} (one of {', '.join(ARCHITECTURES)})"
            )
        if self.normalize_activations not in NORMALISATIONS:
            raise ValueError(
                f"unknown normalize_activations {self.normalize_activations!r} "
                f"(one of {', '.join(NORMALISATIONS)})"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DictionaryConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class TokenNorm:
    """A dictionary's input normalisation at N tokens, frozen at their inputs x: the encoder reads
    ``s·x`` (``in_scale_N``), the decoder writes ``o·(W_dec·c + b_dec) + μ`` (``out_scale_N``,
    ``mean_N``). As sae-lens 6.x computes them (``SAE._setup_activation_normalization``):

    - "none": s = o = 1, μ = 0;
    - "constant_norm_rescale": ``s = sqrt(d_in)/‖x‖``, ``o = 1/s``, μ = 0;
    - "layer_norm": ``s = 1/(std + eps)``, ``o = std`` (sae-lens leaves eps out here), ``μ = mean(x)``,
      with std the unbiased standard deviation of ``x − μ``; the encoder's centring is in W_enc.
    """

    in_scale_N: Tensor
    out_scale_N: Tensor
    mean_N: Tensor


@dataclass(frozen=True)
class ActiveEntries:
    """The nonzero activations of N tokens as E entries: token ``position_E[e]`` (0…N−1), feature
    ``feature_E[e]``, activation ``value_E[e]`` > 0, in no particular order."""

    position_E: Tensor
    feature_E: Tensor
    value_E: Tensor
    n_tokens: int

    @classmethod
    def of(cls, acts_NC: Tensor, feature_NC: Tensor | None = None) -> ActiveEntries:
        """The positive entries of ``acts_NC``: a dense [N, F] matrix, or with ``feature_NC`` a
        row's selected features and their values (TopK's [N, k]). Flat index arithmetic: several
        times faster than boolean masks or ``nonzero(as_tuple=True)``."""
        flat_X = acts_NC.reshape(-1)
        keep_E = (flat_X > 0).nonzero().squeeze(1)
        position_E = torch.div(keep_E, acts_NC.shape[1], rounding_mode="floor")
        if feature_NC is None:
            feature_E = keep_E - position_E * acts_NC.shape[1]
        else:
            feature_E = feature_NC.reshape(-1).index_select(0, keep_E)
        return cls(position_E, feature_E, flat_X.index_select(0, keep_E), len(acts_NC))


def module_names(n_layers: int = 6) -> list[str]:
    """Modules bottom to top: ``L0A, L0M, L1A, …`` (attention output, then MLP output, per layer)."""
    return [f"L{layer}{kind}" for layer in range(n_layers) for kind in "AM"]


MODULES = module_names(6)


def residual_names(n_layers: int = 6) -> list[str]:
    """Residual-stream dictionaries bottom to top: ``L0R … L5R``, one per block's ``hook_resid_post``
    (DESIGN.md §2). They are readouts, not nodes: the module-output decomposition never uses them."""
    return [f"L{layer}R" for layer in range(n_layers)]


def is_residual(module: str) -> bool:
    """``"L3R"`` (a residual-stream dictionary) rather than ``"L3A"``/``"L3M"`` (a module output)."""
    return module.endswith("R")


def hook_name_of(module: str) -> str:
    """``"L3M" -> "blocks.3.hook_mlp_out"``, ``"L3R" -> "blocks.3.hook_resid_post"``."""
    layer, kind = int(module[1:-1]), module[-1]
    if kind == "R":
        return f"blocks.{layer}.hook_resid_post"
    return f"blocks.{layer}.hook_{'attn' if kind == 'A' else 'mlp'}_out"


class Dictionary(nn.Module):
    threshold: Tensor  # a buffer, registered in __init__

    def __init__(self, cfg: DictionaryConfig, init: bool = True):
        """``init=False`` leaves the weights uninitialised, for weights copied in next (a random
        start of a large dictionary costs more than reading it from disk)."""
        super().__init__()
        self.cfg = cfg
        D, F = cfg.d_in, cfg.d_sae
        self.W_enc = nn.Parameter(torch.empty(D, F))
        self.b_enc = nn.Parameter(torch.zeros(F))
        self.W_dec = nn.Parameter(torch.empty(F, D))
        self.b_dec = nn.Parameter(torch.zeros(D))
        # jumprelu only; kept for every architecture so all files share one set of keys
        self.register_buffer("threshold", torch.zeros(F))
        if init:
            self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Unit-norm random decoder rows and the encoder as their transpose (a common, good start)."""
        with torch.no_grad():
            self.W_dec.normal_(generator=generator)
            self.normalise_decoder()
            self.W_enc.copy_(self.W_dec.T)
            self.b_enc.zero_()
            self.b_dec.zero_()

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp(min=1e-8))

    def token_norm(self, x_ND: Tensor) -> TokenNorm:
        """The input normalisation of the tokens ``x_ND`` (:class:`TokenNorm`, [N] each)."""
        kind = self.cfg.normalize_activations
        if kind == "constant_norm_rescale":
            in_scale_N = self.cfg.d_in**0.5 / x_ND.norm(dim=-1)
            return TokenNorm(in_scale_N, 1 / in_scale_N, torch.zeros_like(in_scale_N))
        if kind == "layer_norm":
            mean_N = x_ND.mean(-1)
            std_N = (x_ND - mean_N[..., None]).std(-1)
            return TokenNorm(1 / (std_N + LAYER_NORM_EPS), std_N, mean_N)
        ones_N = x_ND.new_ones(x_ND.shape[:-1])
        return TokenNorm(ones_N, ones_N, torch.zeros_like(ones_N))

    def pre_acts(self, x_ND: Tensor) -> Tensor:
        """``h = W_enc·(s·x − b_dec) + b_enc`` with the token's input scale s (1 unless the
        dictionary normalises its input): exactly linear in x once s is frozen (the attribution
        target)."""
        scaled_ND = x_ND * self.token_norm(x_ND).in_scale_N[..., None]
        flat_ND = (scaled_ND - self.b_dec).reshape(-1, x_ND.shape[-1])
        # addmm: the bias added inside the product, not in another pass over [N, F]
        return torch.addmm(self.b_enc, flat_ND, self.W_enc).view(*x_ND.shape[:-1], -1)

    def activate(self, h_NF: Tensor) -> Tensor:
        """The architecture's activation rule applied to pre-activations."""
        if self.cfg.architecture == "topk":
            values_NK, index_NK = self._top_k(h_NF)
            return torch.zeros_like(h_NF).scatter(-1, index_NK, values_NK)
        if self.cfg.architecture == "jumprelu":
            return h_NF * (h_NF > self.threshold)
        return torch.relu(h_NF)

    def _top_k(self, h_NF: Tensor) -> tuple[Tensor, Tensor]:
        # unsorted: the order is of no use here and sorting costs ~10% of the whole encode
        if self.cfg.k is None:
            raise ValueError(f"{self.cfg.module}: a topk dictionary needs k")
        return torch.relu(h_NF).topk(self.cfg.k, dim=-1, sorted=False)

    def encode(self, x_ND: Tensor) -> Tensor:
        return self.activate(self.pre_acts(x_ND))

    def encode_entries(self, x_ND: Tensor) -> ActiveEntries:
        """The active features of ``encode(x)`` [N, D] as entries, without the dense [N, F]
        matrix for TopK (building and scanning it costs more than the encoding itself)."""
        h_NF = self.pre_acts(x_ND)
        if self.cfg.architecture != "topk":
            return ActiveEntries.of(self.activate(h_NF))
        return ActiveEntries.of(*self._top_k(h_NF))

    def decode(self, c_NF: Tensor, norm: TokenNorm | None = None) -> Tensor:
        """``x̂ = o·(W_dec·c + b_dec) + μ`` with ``norm`` the inputs' :class:`TokenNorm` (the
        :meth:`token_norm` of the x that ``c_NF`` encodes), which only a dictionary that normalises
        its input needs."""
        x_hat_ND = c_NF @ self.W_dec + self.b_dec
        if norm is None:
            if self.cfg.normalize_activations != "none":
                raise ValueError(
                    f"{self.cfg.module} normalises its input ({self.cfg.normalize_activations}): "
                    "decoding needs the inputs' token_norm"
                )
            return x_hat_ND
        return x_hat_ND * norm.out_scale_N[..., None] + norm.mean_N[..., None]

    def forward(self, x_ND: Tensor) -> tuple[Tensor, Tensor]:
        """(reconstruction, activations)."""
        c_NF = self.encode(x_ND)
        return self.decode(c_NF, self.token_norm(x_ND)), c_NF
