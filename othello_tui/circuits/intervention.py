"""Interventions (DESIGN.md §3.8): set a feature's activation at a position to a new value and
rerun the model, the causal check of an attribution.

Setting ``c_{m,k,i}`` to ``a`` adds ``(a − c)·o_i·d_{m,k}`` to ``out_{m,i}`` (the module's output
hook; o_i the decoder's output scale at i, 1 unless the dictionary normalises its input, frozen at
its value in the real forward pass, as in the feature's node); everything downstream is
recomputed. Two frozen variants exist for the faithfulness evaluation: ``freeze_ln`` replaces
every LayerNorm scale by its value in the real forward pass; ``freeze_modules`` also replaces every
module output by its real value (plus the edits), leaving only the direct path, along which the
logit change is exactly −(the edited nodes' DLA) for an ablation with both frozen. A
:class:`BeliefEdit` instead adds a push along a probe direction to the residual stream at its site
(``belief_edit.py``, DESIGN.md §3.9). Edits are plain data (``edits.py``, no torch); they are
re-exported here.

Shape legend: B batch of edit sets, T position, D d_model, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from othello_tui.circuits.belief_edit import belief_push
from othello_tui.circuits.edits import BeliefEdit, Edit, parse_edit
from othello_tui.circuits.nodes import CircuitError, parse_feature_node
from othello_tui.circuits.trace import GameTrace
from othello_tui.dictionary.sae import hook_name_of

__all__ = ["BeliefEdit", "Edit", "InterventionResult", "intervene", "intervene_batch", "parse_edit"]


@dataclass
class InterventionResult:
    """Logits before and after, and the watched features' activations before and after."""

    logits_before_TV: Tensor
    logits_after_TV: Tensor
    features: dict[str, tuple[float, float]]
    kept: dict[str, Tensor] = field(default_factory=dict)  # hook name -> [T, D] after the edits

    @property
    def delta_TV(self) -> Tensor:
        return self.logits_after_TV - self.logits_before_TV


def _deltas(trace: GameTrace, edit_sets: Sequence[Sequence[Edit | BeliefEdit]]) -> dict[str, Tensor]:
    """Per hook, the [B, T, D] tensor that the edits add: ``Σ (a − c)·o_i·d`` on module outputs, the
    belief pushes (``belief_edit.py``) on the residual stream."""
    deltas: dict[str, Tensor] = {}
    T, D = trace.n_positions, trace.model.cfg.d_model

    def add(name: str, b: int, position: int, vector_D: Tensor) -> None:
        if name not in deltas:
            deltas[name] = torch.zeros(len(edit_sets), T, D, dtype=vector_D.dtype, device=vector_D.device)
        deltas[name][b, position] += vector_D

    for b, edits in enumerate(edit_sets):
        for edit in edits:
            if isinstance(edit, BeliefEdit):
                name, push_D = belief_push(trace, edit)
                add(name, b, edit.position, push_D)
                continue
            dictionary = trace.check_feature(edit.module, edit.feature)
            trace.check_position(edit.position)
            old = trace.activations[edit.module][edit.position, edit.feature]
            new = edit.new_activation(old)
            out_scale = trace.norms[edit.module].out_scale_N[edit.position]
            add(
                hook_name_of(edit.module),
                b,
                edit.position,
                (new - old) * out_scale * dictionary.W_dec[edit.feature],
            )
    return deltas


@torch.no_grad()
def intervene_batch(
    trace: GameTrace,
    edit_sets: Sequence[Sequence[Edit | BeliefEdit]],
    freeze_ln: bool = False,
    freeze_modules: bool = False,
    keep: Sequence[str] = (),
) -> tuple[Tensor, dict[str, Tensor]]:
    """Rerun the game once per edit set (a batch): logits [B, T, V] and the [B, T, D] values of
    the hooks named in ``keep`` (module outputs, residual-stream sites), after the edits."""
    B = len(edit_sets)
    deltas = _deltas(trace, edit_sets)
    kept: dict[str, Tensor] = {}

    modules = {hook_name_of(m) for m in trace.modules}

    def module_hook(name: str):
        def hook(out_BTD: Tensor) -> Tensor:
            if freeze_modules and name in modules:
                out_BTD = trace.cache[name].expand(B, -1, -1)
            if name in deltas:
                out_BTD = out_BTD + deltas[name]
            if name in keep:
                kept[name] = out_BTD
            return out_BTD

        return hook

    def frozen(name: str):
        return lambda _value: trace.cache[name][None, :, None].expand(B, -1, -1)

    names = (modules if freeze_modules else set(deltas)) | set(keep)
    hooks = [(name, module_hook(name)) for name in names]
    if freeze_ln:
        hooks += [(name, frozen(name)) for name in trace.cache if name.endswith("hook_scale")]
    with trace.model.hooks(hooks):
        logits_BTV = trace.model(trace.tokens_T.expand(B, -1))
    return logits_BTV, kept


@torch.no_grad()
def intervene(
    trace: GameTrace,
    edits: Sequence[Edit | BeliefEdit],
    watch: Sequence[str] = (),
    freeze_ln: bool = False,
    freeze_modules: bool = False,
    keep: Sequence[str] = (),
) -> InterventionResult:
    """Apply ``edits`` together and rerun the model; ``watch`` names features (``"P9L1A12"``)
    whose activations before and after are reported (as :func:`activations_after` gives them),
    ``keep`` hooks whose values after the edits are returned (e.g. the residual stream for the
    probes); :class:`CircuitError` when the edits make any logit non-finite. Identity: an edit
    that sets a feature to its own activation adds an exact zero, so nothing changes, bit for bit."""
    watched = [parse_feature_node(text) for text in watch]
    for position, module, feature in watched:
        trace.check_position(position)
        trace.check_feature(module, feature)
    hooks = sorted({hook_name_of(module) for _, module, _ in watched} | set(keep))
    logits_BTV, kept = intervene_batch(trace, [edits], freeze_ln, freeze_modules, hooks)
    if not torch.isfinite(logits_BTV).all():
        raise CircuitError(
            f"{', '.join(edit.text for edit in edits)} made the logits overflow (inf or nan):"
            " give smaller values or factors"
        )
    outputs = {name: value[0] for name, value in kept.items()}
    after = activations_after(trace, edits, outputs, {module for _, module, _ in watched})
    features = {
        text: (trace.activation(*node), float(after[node[1]][node[0], node[2]]))
        for text, node in zip(watch, watched, strict=True)
    }
    return InterventionResult(
        trace.logits_TV, logits_BTV[0], features, {name: outputs[name] for name in keep}
    )


@torch.no_grad()
def activations_after(
    trace: GameTrace, edits: Sequence[Edit | BeliefEdit], outputs: dict[str, Tensor], modules: Iterable[str]
) -> dict[str, Tensor]:
    """The activations [T, F] of ``modules``' dictionaries after ``edits``, from their outputs
    after them (``outputs``: hook name -> [T, D]). An edited feature has its new value, and the
    other features of an edited module output keep theirs: the edit is made in that dictionary's
    basis. (Re-encoding the edited output would move them a little, since the encoder is not the
    decoder's exact inverse.) Whole [T, D] outputs are encoded, as the trace did, so unchanged
    outputs give identical bits."""
    dictionaries = trace.all_dictionaries  # residual-stream readouts too: they read the rerun's resid_post
    after = {module: dictionaries[module].encode(outputs[hook_name_of(module)]) for module in modules}
    feature_edits = [edit for edit in edits if isinstance(edit, Edit) and edit.module in after]
    for edit in feature_edits:
        after[edit.module][edit.position] = trace.activations[edit.module][edit.position]
    for edit in feature_edits:
        c = trace.activations[edit.module][edit.position, edit.feature]
        after[edit.module][edit.position, edit.feature] = edit.new_activation(c)
    return after
