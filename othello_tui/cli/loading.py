"""Loading weights for a command: a clear message (naming the command that makes them) instead
of a traceback when they are missing or do not fit."""

from __future__ import annotations

from pathlib import Path

import click


def load_model_or_fail(weights: Path, device: str = "auto"):
    """The model in ``weights`` on ``device`` (auto, cpu or cuda)."""
    from othello_tui.model.device import resolve_device
    from othello_tui.model.weights import WeightsError, load_model

    try:
        model, _ = load_model(weights, resolve_device(device))
    except (WeightsError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    return model


def load_model_and_dictionaries_or_fail(weights: Path, device: str = "auto"):
    """(model, dictionaries): the model in ``weights`` and the dictionaries in ``weights/dictionaries``."""
    from othello_tui.dictionary.io import load_dictionaries
    from othello_tui.model.weights import WeightsError

    model = load_model_or_fail(weights, device)
    try:
        dictionaries = load_dictionaries(weights / "dictionaries", model)
    except WeightsError as error:
        raise click.ClickException(str(error)) from None
    return model, {module: d.to(model.device) for module, d in dictionaries.items()}
