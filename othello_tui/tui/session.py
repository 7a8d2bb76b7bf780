"""The backend of ``othello-tui play``: everything the screen shows for a (game, position).

No Textual imports, and no torch at import time: the board must be on screen before torch has
even loaded (importing it takes seconds), so the model arrives through :meth:`Session.load`, which
the app calls from a thread worker.

The split between fast and slow calls is the contract with the app:

- fast (microseconds to a millisecond, safe on the event loop): :meth:`Session.view` and
  :meth:`Session.feature_summary` read the rules and whatever analysis is already cached; they
  never run the model;
- slow (call from a worker): :meth:`Session.load`, :meth:`Session.analyse`,
  :meth:`Session.dataset_game`, :meth:`Session.model_choice`.

The user's notes on features (``othello_tui/notes.py``) open with the model, and show in
:attr:`Session.labels` marked ✎; saving one is a small JSON write, fine on the event loop.

Feature pages, label search and the feature cache's background build live in
:attr:`Session.library` (:class:`~othello_tui.tui.feature_library.FeatureLibrary`), with the same
split.

Contributor trees, attention patterns and interventions live in :attr:`Session.circuits`
(:class:`~othello_tui.tui.circuits_backend.CircuitsBackend`), with the same split; a view shows
the next-move probabilities of the game as its interventions change them.

The model is causal, so one forward pass over a whole game gives every position of it, and of
every prefix of it: an analysis is cached per game and serves any game sharing the prefix (a game
branched at move 20 reuses its parent's first 20 positions, and its pass runs only the moves after
them, from the parent's keys and values).

Shape legend: T position, V vocabulary (61 tokens), F dictionary features.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from othello_tui.game.generator import CHUNK, iter_games
from othello_tui.game.rules import Game, disc_counts
from othello_tui.game.squares import TOKEN_TO_SQUARE
from othello_tui.notes import Note, NotesError, NoteStore
from othello_tui.probes.families import mine_theirs_classes
from othello_tui.tui.analysis import Engine, GameAnalysis, ModelUnavailableError
from othello_tui.tui.circuits_backend import CircuitsBackend
from othello_tui.tui.feature_library import FeatureLibrary
from othello_tui.tui.prefix_cache import PrefixCache
from othello_tui.tui.views import (
    Beliefs,
    FeatureSummary,
    Labels,
    ModuleFeatures,
    PositionView,
    Prediction,
)

if TYPE_CHECKING:
    from othello_tui.features import BuildSettings

TOP_PREDICTIONS = 8
NO_INPUT_NOTE = "The model predicts from move 2 on: it reads the moves, and none is played yet."
BEYOND_CONTEXT_NOTE = (
    "The model reads the first {n_ctx} moves (n_ctx {n_ctx}): nothing to show after move {n_ctx}."
)
LOADING_NOTE = "Loading the model…"


@dataclass(frozen=True, eq=False)
class _Entry:
    """A cached analysis plus the cumulative top-1 legality of its game."""

    analysis: GameAnalysis
    hits_T: np.ndarray  # int [T]: positions ≤ t whose argmax was a legal move
    scored_T: np.ndarray  # int [T]: positions ≤ t that had any legal move


class Session:
    """Owns the model (through an :class:`Engine`), the dataset of games and the analysis cache."""

    def __init__(
        self,
        load_engine: Callable[[], Engine],
        seed: int = 0,
        labels: Labels | None = None,  # overrides the engine's labels
        max_games: int = 64,
        auto_build: bool = True,  # build a missing feature cache in the background
        notes_dir: Path | None = None,  # where the user's notes are kept (None: no notes)
    ):
        self.seed = seed
        self._notes_dir = notes_dir
        self.notes: NoteStore | None = None  # the user's notes, once the model has loaded
        self.notes_error: str | None = None  # why the notes file could not be read
        self._load_engine = load_engine
        self._labels = labels
        self._engine: Engine | None = None
        self.model_error: str | None = None
        self._cache: PrefixCache[_Entry] = PrefixCache(max_games)
        self._engine_lock = threading.Lock()  # one forward pass at a time
        self.circuits = CircuitsBackend(lambda: self._engine, self._engine_lock)
        self.library = FeatureLibrary(lambda: self._engine, lambda: self.model_error, auto_build)
        self._chunks: list[np.ndarray] = []  # int8 [CHUNK, 60] squares of the seed's games
        self._chunk_iter: Iterator | None = None
        self._games_lock = threading.Lock()

    @classmethod
    def from_weights(
        cls,
        weights: Path,
        device: str = "auto",
        dictionaries: Path | None = None,
        cache: Path | None = None,
        cache_dir: Path | None = None,
        seed: int = 0,
        build: bool = True,
        build_settings: BuildSettings | None = None,
        notes_dir: Path | None = None,
        config: Path | None = None,
    ) -> Session:
        """A session that loads ``<weights>`` (a folder, or a checkpoint file with its ``config``
        JSON; and their ``dictionaries/``, and the feature cache ``cache`` or the newest one for
        these weights in ``cache_dir``) when asked. With
        ``build``, a missing cache is built in ``cache_dir`` in the background (with
        ``build_settings``, default those of ``othello-tui cache build``). The user's notes on
        features are kept in ``notes_dir`` (None: no notes)."""

        def load() -> Engine:
            from othello_tui.tui.engine import load_engine

            return load_engine(weights, device, dictionaries, cache, cache_dir, build_settings, config)

        return cls(load, seed=seed, auto_build=build, notes_dir=notes_dir)

    # -- slow calls: from a worker thread ---------------------------------------------------

    @property
    def model_ready(self) -> bool:
        return self._engine is not None

    @property
    def model_note(self) -> str | None:
        """What the app should say about the model once it has loaded (an inferred config)."""
        return getattr(self._engine, "model_note", None)

    def _read(self, n_moves: int) -> int:
        """Of the first ``n_moves`` moves, how many the model reads (its context: ``n_ctx``)."""
        n_ctx = getattr(self._engine, "n_ctx", None)
        return n_moves if n_ctx is None else min(n_moves, n_ctx)

    def flip_feature(self, site: int, square: int, to: int) -> tuple[str, float] | None:
        """The residual feature (and its cosine) whose decoder row best flips ``square``'s reading
        at probe site ``site`` towards ``to`` (``F`` on the believed board); None without a
        residual dictionary there."""
        flips = getattr(self._engine, "flip_features", {})
        return flips[site].feature(square, to) if site in flips else None

    def decoder_reading(self, module: str, index: int) -> np.ndarray | None:
        """float32 [64]: what feature ``index`` of residual dictionary ``module`` writes into the
        mine/theirs probe per unit of activation (positive: more mine); None for a module
        feature or without probes."""
        readings = getattr(self._engine, "decoder_readings", {})
        return readings[module][index] if module in readings and index < len(readings[module]) else None

    @property
    def n_features(self) -> dict[str, int]:
        """Features of each module's dictionary (none before the model loads)."""
        return dict(self._engine.n_features) if self._engine is not None else {}

    @property
    def labels(self) -> Labels | None:
        """Feature id -> the user's label (marked ✎), else the automatic one (None: no labels, or
        no model yet)."""
        automatic = self._labels or (self._engine.labels if self._engine is not None else None)
        return automatic if self.notes is None else self.notes.labels(automatic)

    def load(self) -> None:
        """Load the engine (imports torch: seconds). Raises :class:`ModelUnavailableError`."""
        try:
            self._engine = self._load_engine()
        except ModelUnavailableError as error:
            self.model_error = str(error)
            raise
        self._open_notes()
        # torch, the model and the dictionaries live as long as the app: keep the collector from
        # rescanning their hundreds of thousands of objects (full passes cost 100+ ms per screen)
        gc.collect()
        gc.freeze()

    def _open_notes(self) -> None:
        """The notes kept for the engine's dictionaries (hashing them: a worker's job)."""
        engine = self._engine
        if self._notes_dir is not None and engine is not None and engine.modules:
            try:
                self.notes = NoteStore.open(self._notes_dir, engine.identity[1])
            except NotesError as error:
                self.notes_error = str(error)

    def analyse(self, game: Game) -> None:
        """Run the model over ``game`` unless a cached analysis already covers all of it, and
        rerun it with its interventions (if any) unless that is cached too."""
        if self._engine is None or not game.moves:
            return
        if not self._cache.find(game.squares, self._read(len(game.moves))):
            reuse = self._reusable(game)
            with self._engine_lock:
                analysis = self._engine.analyse(game.squares, reuse)
            # keyed by the moves it covers: a model of n_ctx 59 reads 59 of a 60-move game
            self._cache.put(game.squares[: len(analysis.probs_TV)], _score(game, analysis))
        if self.circuits.edits(game.squares) and self.circuits.outcome(game.squares) is None:
            self.circuits.run_edits(game.squares)

    def _reusable(self, game: Game) -> GameAnalysis | None:
        """The cached analysis of the longest start of ``game`` analysed before, with the
        model's keys and values there: the engine runs only the moves after it (a move played
        runs one position). None: no analysed game starts like it."""
        found = self._cache.longest(game.squares)
        if found is None or found[0].analysis.kv is None:
            return None
        entry, shared = found
        return entry.analysis.truncated(shared)

    def dataset_game(self, index: int) -> Game:
        """Game ``index`` of this session's seed (``generate_games(index + 1, seed)[index]``)."""
        with self._games_lock:
            if self._chunk_iter is None:
                self._chunk_iter = iter_games(sys.maxsize, self.seed)
            while len(self._chunks) <= index // CHUNK:
                self._chunks.append(next(self._chunk_iter).squares)
            squares = self._chunks[index // CHUNK][index % CHUNK]
        return Game.from_squares([int(s) for s in squares if s >= 0])

    def model_choice(self, game: Game, n_moves: int) -> int | None:
        """The model's most probable legal move after ``n_moves`` moves (None: no model, no
        input yet, or no legal move)."""
        prefix = game.truncated(n_moves)
        if n_moves == 0 or prefix.over or self._engine is None or self._read(n_moves) < n_moves:
            return None
        self.analyse(prefix)
        probs = self.view(prefix, n_moves).probs
        assert probs is not None, "analyse() covers the prefix"
        legal = np.array(prefix.legal)
        return int(legal[np.argmax(probs[legal])])

    # -- fast calls: safe on the event loop -------------------------------------------------

    def note_of(self, feature_id: str) -> dict | None:
        """The user's note on a feature as plain data (``{"label", "notes"}``), for exports."""
        return self.notes.note_of(feature_id) if self.notes is not None else None

    def notes_unavailable(self) -> str | None:
        """Why the user's notes cannot be read or written now (None: they can)."""
        if self.notes is not None:
            return None
        why = self.notes_error or (
            "they open once the model has loaded" if self._engine is None
            else "no folder for notes was given" if self._notes_dir is None
            else "no dictionaries are loaded: there are no features to write notes on"
        )  # fmt: skip
        return f"No notes: {why}"

    def set_note(self, feature_id: str, note: Note) -> None:
        """Keep and save the user's note (a small JSON write: fine on the event loop). Raises
        ``RuntimeError`` without notes (:meth:`notes_unavailable`), ``OSError`` when the file
        cannot be written."""
        if self.notes is None:
            raise RuntimeError(self.notes_unavailable())
        self.notes.set(feature_id, note)

    def view(self, game: Game, n_moves: int) -> PositionView:
        """The position after ``n_moves`` moves, with predictions and features when cached."""
        prefix = game.truncated(n_moves)
        last = prefix.moves[-1] if prefix.moves else None
        black, white = disc_counts(prefix.board)
        entry = self._cache.find(game.squares, n_moves) if n_moves else None
        edits = self.circuits.edits(game.squares)
        outcome = self.circuits.outcome(game.squares) if edits else None
        probs, probs_before, top1, beliefs = None, None, None, None
        top: tuple[Prediction, ...] = ()
        features: tuple[ModuleFeatures, ...] = ()
        if entry is not None:
            t = n_moves - 1
            probs = _board_probs(entry.analysis.probs_TV[t])
            beliefs_TSQC = entry.analysis.beliefs_TSQC
            if outcome is not None and outcome.first_position <= t:
                probs_before = _board_probs(outcome.probs_before_TV[t])
                probs = _board_probs(outcome.probs_after_TV[t])
                beliefs_TSQC = outcome.beliefs_after_TSQC
            if beliefs_TSQC is not None:
                assert last is not None  # an analysed position (n_moves > 0) has a last move
                beliefs = Beliefs(
                    beliefs_TSQC[t], mine_theirs_classes(prefix.board, last.player), last.player
                )
            top1 = (int(entry.hits_T[t]), int(entry.scored_T[t]))
            if not prefix.over:
                top = _top_predictions(probs, set(prefix.legal))
            after = outcome.acts_after if outcome is not None and outcome.first_position <= t else None
            features = self._features_at(entry.analysis, t, after)
        missing = entry is None or (bool(edits) and outcome is None)
        pending = bool(n_moves) and missing and self._engine is not None and self._read(n_moves) == n_moves
        return PositionView(
            n_moves=n_moves,
            n_total=len(game.moves),
            board=prefix.board,
            last_move=last.square if last else None,
            flipped=last.flipped if last else (),
            to_move=prefix.to_move,
            legal=prefix.legal,
            passed=-last.player if last and last.passed else 0,
            black=black,
            white=white,
            probs=probs,
            top=top,
            top1_legal=top1,
            predictions_note=self._predictions_note(n_moves, entry is not None),
            features=features,
            features_note=self._features_note(n_moves, entry is not None),
            pending=pending,
            probs_before=probs_before,
            edits=edits,
            beliefs=beliefs,
            beliefs_note=self._beliefs_note(n_moves, entry is not None),
        )

    def feature_summary(self, game: Game, n_moves: int, module: str, index: int) -> FeatureSummary:
        """Where feature ``index`` of ``module`` fires in the analysed part of ``game`` (empty
        when not analysed). A cached analysis can belong to a longer game sharing the prefix:
        only the moves it shares with ``game`` count."""
        span = self._read(len(game.moves))
        entry = self._cache.find(game.squares, span) if span else None
        if entry is None and n_moves:
            span, entry = n_moves, self._cache.find(game.squares, n_moves)
        firing: tuple[tuple[int, float], ...] = ()
        analysed = 0
        if entry is not None and module in entry.analysis.acts:
            acts_T = entry.analysis.acts[module].column(index)[:span]
            analysed = len(acts_T)
            firing = tuple((int(t) + 1, float(acts_T[t])) for t in np.flatnonzero(acts_T > 0))
        return FeatureSummary(f"{module}{index}", n_moves - 1, firing, analysed)

    # -- helpers ----------------------------------------------------------------------------

    def _features_at(
        self, analysis: GameAnalysis, t: int, after: dict[str, np.ndarray] | None = None
    ) -> tuple[ModuleFeatures, ...]:
        """Every module's active features at position ``t``; with interventions (``after``: the
        activations they give), those active before or after, each with both values, ordered by
        the larger (an ablated feature keeps its row)."""
        out = []
        for module, acts in analysis.acts.items():
            acts_F = acts.row(t)
            after_F = acts_F if after is None else after[module][t]
            index_K = np.flatnonzero((acts_F > 0) | (after_F > 0))
            index_K = index_K[np.argsort(-np.maximum(acts_F, after_F)[index_K], kind="stable")]
            before_K = None if after is None else acts_F[index_K]
            out.append(ModuleFeatures(module, index_K, after_F[index_K], self.labels, before_K))
        return tuple(out)

    def _predictions_note(self, n_moves: int, analysed: bool) -> str | None:
        if n_moves == 0:
            return NO_INPUT_NOTE
        if self.model_error:
            return self.model_error
        if self._engine is None:
            return LOADING_NOTE
        if self._read(n_moves) < n_moves:
            return BEYOND_CONTEXT_NOTE.format(n_ctx=self._read(n_moves))
        return None if analysed else "Running the model…"

    def _beliefs_note(self, n_moves: int, analysed: bool) -> str | None:
        note = self._predictions_note(n_moves, analysed)
        if note is None and self._engine is not None:
            return getattr(self._engine, "probes_note", None)  # an engine without probes says why
        return note

    def _features_note(self, n_moves: int, analysed: bool) -> str | None:
        engine = self._engine
        if engine is not None and (engine.features_note or not engine.modules):
            return engine.features_note or "No dictionaries loaded."
        if n_moves == 0:
            return "Features exist from move 1 on."
        note = self._predictions_note(n_moves, analysed)
        if note or self._labels is not None or engine is None:
            return note
        return self.library.labels_note() or engine.labels_note


def _board_probs(probs_V: np.ndarray) -> np.ndarray:
    """float32 [64]: P(next move = square) from probabilities over the 61 tokens."""
    probs = np.zeros(64, np.float32)
    probs[TOKEN_TO_SQUARE[1:]] = probs_V[1:]
    return probs


def _top_predictions(probs: np.ndarray, legal: set[int], k: int = TOP_PREDICTIONS) -> tuple[Prediction, ...]:
    order = np.argsort(-probs, kind="stable")[:k]
    return tuple(Prediction(int(s), float(probs[s]), int(s) in legal) for s in order)


def _score(game: Game, analysis: GameAnalysis) -> _Entry:
    """Top-1 legality at each position: is the argmax over all 61 tokens a legal next move?"""
    argmax_T = analysis.probs_TV.argmax(-1)
    hits, scored = [], []
    for t, move in enumerate(game.moves[: len(argmax_T)]):
        token = int(argmax_T[t])
        scored.append(bool(move.legal_next))
        hits.append(token > 0 and int(TOKEN_TO_SQUARE[token]) in move.legal_next)
    return _Entry(analysis, np.cumsum(hits), np.cumsum(scored))
