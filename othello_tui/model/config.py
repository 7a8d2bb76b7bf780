"""Model configuration with TransformerLens ``HookedTransformerConfig`` field names."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

#: LayerNorm with weights, or TransformerLens's ``LNPre`` (weights folded into the next layer):
#: the model always has LayerNorm parameters, an LNPre checkpoint loads with γ = 1 and β = 0
NORMALIZATIONS = ("LN", "LNPre")


@dataclass(frozen=True)
class ModelConfig:
    n_layers: int = 6
    d_model: int = 128
    n_heads: int = 8
    d_head: int = 16
    d_mlp: int = 512
    d_vocab: int = 61
    d_vocab_out: int = 61
    n_ctx: int = 60
    act_fn: str = "gelu"  # exact (erf) GELU; TransformerLens calls the tanh approximation "gelu_new"
    normalization_type: str = "LN"  # or "LNPre" (a TransformerLens checkpoint: γ = 1, β = 0)
    positional_embedding_type: str = "standard"
    eps: float = 1e-5
    attn_only: bool = False
    final_rms: bool = False
    original_architecture: str = "OthelloGPT"
    model_name: str = "othello-tui-gpt"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Build from a dict that may hold other TransformerLens fields (ignored)."""
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in data.items() if k in known})
        if config.act_fn != "gelu" or config.normalization_type not in NORMALIZATIONS:
            raise ValueError(
                f"unsupported model: act_fn={config.act_fn!r}, "
                f"normalization_type={config.normalization_type!r} (expected 'gelu', 'LN' or 'LNPre')"
            )
        return config


#: a few-second model for tests and quick experiments
TINY = ModelConfig(n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=64, model_name="tiny")
