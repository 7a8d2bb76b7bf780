"""Model configuration with TransformerLens ``HookedTransformerConfig`` field names."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


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
    normalization_type: str = "LN"
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
        if config.act_fn != "gelu" or config.normalization_type != "LN":
            raise ValueError(
                f"unsupported model: act_fn={config.act_fn!r}, "
                f"normalization_type={config.normalization_type!r} (expected 'gelu', 'LN')"
            )
        return config


#: a few-second model for tests and quick experiments
TINY = ModelConfig(n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=64, model_name="tiny")
