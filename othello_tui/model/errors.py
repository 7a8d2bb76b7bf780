"""The error every weights reader raises: its message is the one line a command shows."""

from __future__ import annotations


class WeightsError(RuntimeError):
    """Weights that are missing, truncated or do not match the model they claim to be."""
