"""Training checkpoints: one safetensors file holding model, optimiser state and a JSON header
(step, games, elapsed time, RNG state, settings), so a checkpoint is written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from othello_tui.model.weights import WeightsError, atomic_save_tensors, read_tensors


def save_checkpoint(
    path: Path, model: torch.nn.Module, optimizers: list[torch.optim.Optimizer], header: dict
) -> None:
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in model.named_parameters()}
    names = {id(p): k for k, p in model.named_parameters()}
    for optimizer in optimizers:
        for p, state in optimizer.state.items():
            for key, value in state.items():
                tensors[f"optim.{names[id(p)]}.{key}"] = torch.as_tensor(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_tensors(path, tensors, metadata={"header": json.dumps(header)})


def load_checkpoint(path: Path, model: torch.nn.Module, optimizers: list[torch.optim.Optimizer]) -> dict:
    """Restore model and optimiser state in place; return the header."""
    tensors = read_tensors(path)
    with safe_open(path, "pt") as f:
        header = json.loads(f.metadata()["header"])
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, p in params.items():
            if f"model.{name}" not in tensors or tensors[f"model.{name}"].shape != p.shape:
                raise WeightsError(f"checkpoint {path} was written for another model configuration")
            p.copy_(tensors[f"model.{name}"])
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            for p in group["params"]:
                name = next(k for k, v in params.items() if v is p)
                prefix = f"optim.{name}."
                optimizer.state[p] = {
                    k[len(prefix) :]: v.clone() for k, v in tensors.items() if k.startswith(prefix)
                }
    return header
