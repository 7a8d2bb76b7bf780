"""The circuits half of the session: contributor trees, attention patterns, QK pairs and
interventions for the games on screen.

No Textual, and no torch at import time (like the session that owns it). Torch objects — one
:class:`~othello_tui.circuits.trace.GameTrace` per game, built by the engine — stay in here; the
screens get plain data: :class:`~othello_tui.circuits.tree.Expansion` trees of
:class:`~othello_tui.circuits.nodes.Node` (torch-free), numpy arrays and floats.

- fast (the event loop): :meth:`CircuitsBackend.edits`, :meth:`~CircuitsBackend.add_edit`,
  :meth:`~CircuitsBackend.clear_edits`, :meth:`~CircuitsBackend.outcome`;
- slow (a worker): :meth:`~CircuitsBackend.tree`, :meth:`~CircuitsBackend.children`,
  :meth:`~CircuitsBackend.graph`, :meth:`~CircuitsBackend.attention`, :meth:`~CircuitsBackend.qk`,
  :meth:`~CircuitsBackend.run_edits`, :meth:`~CircuitsBackend.identity`,
  :meth:`~CircuitsBackend.ablate`.

Interventions form one stack, bound to the game they were made on (its exact move list): going to
another game leaves them aside, coming back finds them again, and an edit made on another game
replaces the stack.

Shape legend: T position, V vocabulary (61 tokens), L layer, H head, S key position.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np

from othello_tui.circuits.edits import BeliefEdit, Edit
from othello_tui.circuits.export import LabelOf
from othello_tui.circuits.nodes import CircuitError, Node, Target, readout_note
from othello_tui.circuits.provenance import Provenance
from othello_tui.circuits.pruning import GraphSettings
from othello_tui.circuits.tree import Expansion
from othello_tui.tui.prefix_cache import PrefixCache

if TYPE_CHECKING:
    from torch import Tensor

    from othello_tui.circuits.graph import AttributionGraph
    from othello_tui.circuits.trace import GameTrace
    from othello_tui.dictionary.sae import Dictionary
    from othello_tui.model.transformer import OthelloGPT
    from othello_tui.probes.linear import LinearProbes
    from othello_tui.tui.analysis import Engine

Path = tuple[str, ...]  # node ids from the root's first level down to a node


class TracingEngine(Protocol):
    """What circuits need of an engine beyond :class:`~othello_tui.tui.analysis.Engine`: the
    model itself (``othello_tui.tui.engine.ModelEngine``; a test's stub may lack it)."""

    model: OthelloGPT
    dictionaries: dict[str, Dictionary]
    probes: LinearProbes | None

    @property
    def identity(self) -> tuple[str, str]: ...

    def trace(self, squares: Sequence[int]) -> GameTrace: ...

    def beliefs(self, residuals: dict[str, Tensor]) -> np.ndarray: ...


class CircuitsUnavailableError(RuntimeError):
    """No circuits for now (the model is loading or failed, or the engine cannot trace); says why."""


@dataclass(frozen=True, eq=False)
class Outcome:
    """A game rerun with an edit stack. Rows t of the [T, V] arrays belong to position t and
    predict move t+2, as in :class:`~othello_tui.tui.analysis.GameAnalysis`.

    probs_before_TV, probs_after_TV    float32 [T, 61]: softmax of the logits
    logits_before_TV, logits_after_TV  float32 [T, 61]
    features  watched feature node id -> (activation before, after)
    acts_after  module -> float32 [T, F]: every dictionary's activations after the edits
    """

    squares: tuple[int, ...]
    edits: tuple[Edit | BeliefEdit, ...]
    probs_before_TV: np.ndarray
    probs_after_TV: np.ndarray
    logits_before_TV: np.ndarray
    logits_after_TV: np.ndarray
    features: dict[str, tuple[float, float]] = field(default_factory=dict)
    beliefs_after_TSQC: np.ndarray | None = None  # the probes' readings after the edits
    acts_after: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def first_position(self) -> int:
        """The earliest edited position: the outputs before it are unchanged (the model is causal)."""
        return min(edit.position for edit in self.edits)


class CircuitsBackend:
    """Owned by the session: ``engine()`` is its engine once loaded (None before), ``lock`` the
    session's one-forward-pass-at-a-time lock (an intervention hooks the shared model)."""

    def __init__(self, engine: Callable[[], Engine | None], lock: threading.Lock, max_traces: int = 4):
        self._engine = engine
        self._model_lock = lock
        self._traces: PrefixCache[GameTrace] = PrefixCache(max_traces)
        self._state_lock = threading.Lock()  # guards the stack and the last outcome
        self._stack: tuple[tuple[int, ...], tuple[Edit | BeliefEdit, ...]] = ((), ())
        self._outcome: Outcome | None = None
        self._refused: str | None = None  # why run_edits took the newest edit off the stack
        self._graph: tuple[tuple, AttributionGraph] | None = None  # the last graph built, by its key

    # -- slow calls: from a worker ------------------------------------------------------------

    def trace(self, squares: Sequence[int], n_moves: int) -> GameTrace:
        """A trace covering ``squares[:n_moves]`` (built and cached on first use: one forward pass)."""
        trace = self._traces.find(squares, n_moves)
        if trace is not None:
            return trace
        engine = self._tracing_engine()
        with self._model_lock:
            trace = engine.trace(squares)
        self._traces.put(squares[: trace.n_positions], trace)  # the moves the model read
        return trace

    def tree(
        self,
        squares: Sequence[int],
        target: Target,
        top: int | None,
        threshold: float | None = None,
        open_paths: Collection[Path] = (),
    ) -> Expansion:
        """The target's contributors (the top ``top`` by |contribution|, those ≥ ``threshold``),
        and, again, those of every feature branch whose path is in ``open_paths``. A feature
        target must be active (:class:`CircuitError` says so otherwise), but for a residual-stream
        feature's pre-activation, which is a readout, not a node."""
        trace = self.trace(squares, target.position + 1)
        module, feature = target.feature_key if target.kind == "feature" else ("", 0)
        if target.kind == "feature" and readout_note(f"{module}{feature}") is None:
            trace.feature_node(target.position, module, feature)
        return _grow(trace, target, top, threshold, set(open_paths), ())

    def children(
        self, squares: Sequence[int], node: Node, top: int | None, threshold: float | None = None
    ) -> Expansion | None:
        """One level under a node: its own contributors (None for a leaf)."""
        return self.trace(squares, node.position + 1).children(node, top, threshold)

    def graph(
        self,
        squares: Sequence[int],
        target: Target,
        settings: GraphSettings,
        provenance: Provenance,
        label_of: LabelOf | None = None,
    ) -> dict:
        """The target's attribution graph (``circuits/graph.py``) with up to
        ``settings.max_features`` expanded features, pruned at the settings' thresholds, as graph
        JSON. The graph is built once per game, target and budget (a fraction of a second);
        other thresholds only prune it again. :class:`CircuitError` for a score target or an
        inactive feature."""
        from othello_tui.circuits.graph import build_graph  # torch: in since the model loaded
        from othello_tui.circuits.graph_json import trace_attribution_graph

        trace = self.trace(squares, target.position + 1)
        key = (tuple(squares[: trace.n_positions]), target, settings.max_features)
        with self._state_lock:
            last = self._graph
        if last is not None and last[0] == key:
            graph = last[1]
        else:
            graph = build_graph(trace, target, settings.max_features)
            with self._state_lock:
                self._graph = (key, graph)
        return trace_attribution_graph(trace, graph, provenance, settings, label_of)

    def identity(self) -> tuple[str, str]:
        """(model fingerprint, dictionaries hash) of the engine's weights."""
        return self._tracing_engine().identity

    def ablate(self, module: str, feature: int, n_games: int, seed: int, progress=None):
        """:func:`~othello_tui.circuits.ablation.ablate_feature` over ``n_games`` dataset games
        (seconds to minutes): an :class:`~othello_tui.circuits.ablation.AblationReport`."""
        engine = self._tracing_engine()
        from othello_tui.circuits.ablation import ablate_feature  # torch: in since the model loaded

        with self._model_lock:
            return ablate_feature(
                engine.model,
                engine.dictionaries,
                module,
                feature,
                0.0,
                None,
                n_games,
                seed,
                progress=progress,
            )

    def attention(self, squares: Sequence[int], position: int) -> np.ndarray:
        """float32 [L, H, S]: every head's attention from ``position`` to keys 0…position."""
        return self.trace(squares, position + 1).attention_pattern(position).float().cpu().numpy()

    def qk(
        self, squares: Sequence[int], position: int, layer: int, head: int, key: int, top: int | None
    ) -> Expansion:
        """The pre-softmax score of head ``layer``/``head`` from ``position`` to ``key`` as
        (query node, key node) pairs: the top ``top``, with the rest and the sum."""
        target = Target("score", position, layer=layer, head=head, key=key)
        return self.trace(squares, position + 1).expand(target, 1, top)

    def run_edits(self, squares: Sequence[int], watch: Sequence[str] = ()) -> Outcome | None:
        """Rerun the game with its edit stack (None without one) and remember the outcome;
        ``watch`` names features (``"P9L1A12"``) whose activations before and after it reports."""
        edits = self.edits(squares)
        if not edits:
            return None
        from othello_tui.circuits.intervention import activations_after, intervene  # torch: loaded by now
        from othello_tui.dictionary.sae import hook_name_of

        trace = self.trace(squares, len(squares))
        engine = self._tracing_engine()
        probes = getattr(engine, "probes", None)  # a test's stub engine may have no probes attribute
        sites = probes.sites if probes is not None else ()
        outputs = [hook_name_of(module) for module in trace.all_dictionaries]
        try:
            with self._model_lock:
                result = intervene(trace, edits, watch, keep=list(dict.fromkeys([*sites, *outputs])))
                acts = activations_after(trace, edits, result.kept, trace.all_dictionaries)
        except CircuitError as error:  # a belief edit along a feature that no push achieves
            with self._state_lock:
                self._stack, self._refused = (
                    (tuple(squares), edits[:-1]),
                    f"{edits[-1].text} refused: {error}",
                )
            return self.run_edits(squares, watch)
        T = len(squares)
        before_TV, after_TV = (x[:T].float().cpu() for x in (result.logits_before_TV, result.logits_after_TV))
        outcome = Outcome(
            tuple(squares),
            edits,
            before_TV.softmax(-1).numpy(),
            after_TV.softmax(-1).numpy(),
            before_TV.numpy(),
            after_TV.numpy(),
            result.features,
            engine.beliefs(result.kept) if sites else None,
            {module: acts_TF.float().cpu().numpy() for module, acts_TF in acts.items()},
        )
        with self._state_lock:
            self._outcome = outcome
        return outcome

    # -- fast calls: the edit stack ------------------------------------------------------------

    def unavailable(self) -> str | None:
        """Why circuits cannot be computed now (None: they can)."""
        engine = self._engine()
        if engine is None:
            return "The model is not loaded yet."
        if not hasattr(engine, "trace"):
            return "This engine cannot trace circuits (it has no model)."
        return None

    def _tracing_engine(self) -> TracingEngine:
        """The engine, when it can trace; :class:`CircuitsUnavailableError` saying why not."""
        if (why := self.unavailable()) is not None:
            raise CircuitsUnavailableError(why)
        return cast("TracingEngine", self._engine())  # unavailable() checked it has a trace method

    def edits(self, squares: Sequence[int]) -> tuple[Edit | BeliefEdit, ...]:
        """The interventions on this game (none when the stack belongs to another game)."""
        with self._state_lock:
            game, edits = self._stack
        return edits if game == tuple(squares) else ()

    def add_edit(self, squares: Sequence[int], edit: Edit | BeliefEdit) -> str | None:
        """Push ``edit`` (it replaces an earlier edit of the same feature at the same position).
        Returns a note when that dropped the interventions of another game."""
        if not 0 <= edit.position < len(squares):
            raise ValueError(f"{edit.node_id} is outside this game of {len(squares)} moves")
        with self._state_lock:
            game, edits = self._stack
            note = None
            if game != tuple(squares):
                note = f"Cleared {len(edits)} intervention(s) of another game." if edits else None
                edits = ()
            kept = tuple(e for e in edits if e.node_id != edit.node_id)
            self._stack = (tuple(squares), (*kept, edit))
        return note

    def take_refusal(self) -> str | None:
        """Why the newest edit was taken off the stack again, once (then None)."""
        with self._state_lock:
            refused, self._refused = self._refused, None
        return refused

    def clear_edits(self) -> int:
        """Drop every intervention; returns how many there were."""
        with self._state_lock:
            count = len(self._stack[1])
            self._stack, self._outcome = ((), ()), None
        return count

    def outcome(self, squares: Sequence[int]) -> Outcome | None:
        """The rerun of this game with its current edit stack, when it has been computed."""
        edits = self.edits(squares)
        with self._state_lock:
            outcome = self._outcome
        if not edits or outcome is None or outcome.squares != tuple(squares) or outcome.edits != edits:
            return None
        return outcome


def _grow(
    trace: GameTrace,
    target: Target,
    top: int | None,
    threshold: float | None,
    open_paths: set[Path],
    path: Path,
) -> Expansion:
    expansion = trace.expand(target, 1, top, threshold)
    for branch in expansion.branches:
        child, here = branch.node.as_target(), (*path, branch.node.id)
        if child is not None and here in open_paths:
            branch.expansion = _grow(trace, child, top, threshold, open_paths, here)
    return expansion
