"""The feature half of the session: feature pages from the feature cache, feature ids, label
search, the cache's own games, and the background build of a missing cache.

No Textual, and no torch at import time (like the session that owns it): the cache arrives with
the engine, which opens it while loading, or after :meth:`FeatureLibrary.build`.

- fast (the event loop): :meth:`FeatureLibrary.state`, :meth:`~FeatureLibrary.parse`,
  :meth:`~FeatureLibrary.search`, :meth:`~FeatureLibrary.cached`,
  :meth:`~FeatureLibrary.labels_note`, :attr:`~FeatureLibrary.build_wanted`;
- slow (a worker): :meth:`~FeatureLibrary.stats` (one small HDF5 read, then memory),
  :meth:`~FeatureLibrary.example_game`, :meth:`~FeatureLibrary.build` (minutes).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from othello_tui.game.rules import Game
from othello_tui.game.squares import TOKEN_TO_SQUARE
from othello_tui.tui.cache_build import BuildStatus, CacheBuild, running_build

if TYPE_CHECKING:
    from othello_tui.features import FeatureCache, FeatureStats, Label
    from othello_tui.tui.analysis import Engine

BUILD_COMMAND = "`othello-tui cache build`"


@dataclass(frozen=True)
class CacheState:
    """Whether feature statistics can be read now."""

    ready: bool
    waiting: bool  # not yet, but they may come (the model loads, the cache builds): ask again
    note: str | None  # why not, and what to do about it


class FeatureLibrary:
    """Owned by the session: ``engine()`` is its engine once loaded (None before),
    ``model_error()`` why the model could not load; ``auto_build`` builds a missing cache."""

    def __init__(
        self,
        engine: Callable[[], Engine | None],
        model_error: Callable[[], str | None],
        auto_build: bool = True,
        max_pages: int = 64,
    ):
        self._engine = engine
        self._model_error = model_error
        self.auto_build = auto_build
        self._max_pages = max_pages
        self._pages: OrderedDict[tuple[str, str], FeatureStats] = OrderedDict()
        self._lock = threading.Lock()  # guards the pages and the build
        self._build: CacheBuild | None = None
        self._closed = False
        self.build_status: BuildStatus | None = None

    @property
    def cache(self) -> FeatureCache | None:
        engine = self._engine()
        return engine.feature_cache if engine is not None else None

    # -- fast calls -------------------------------------------------------------------------

    def state(self) -> CacheState:
        engine, status = self._engine(), self.build_status
        if engine is None:
            error = self._model_error()
            return CacheState(
                False, error is None, error or "Loading the model; the feature cache opens with it…"
            )
        if engine.feature_cache is not None:
            return CacheState(True, False, None)
        if not engine.modules:
            reason = engine.features_note or "No dictionaries loaded."
            return CacheState(
                False, False, f"{reason} Without dictionaries there are no features to describe."
            )
        if self.build_wanted or (status is not None and status.running):
            progress = status.describe() if status is not None else "starting"
            return CacheState(
                False,
                True,
                f"Building the feature cache in the background: {progress}. This page fills in when it"
                " is ready; quitting leaves the build running, and the next start takes it up.",
            )
        if status is not None and status.state == "failed":
            return CacheState(False, False, self.labels_note())
        reason = engine.labels_note or "No feature cache was given."
        return CacheState(False, False, f"{reason} Feature pages read their statistics from that cache.")

    @property
    def build_wanted(self) -> bool:
        """A cache is missing, may be built, and no build has started."""
        engine = self._engine()
        requests = engine.cache_requests if engine is not None else ()
        return self.auto_build and bool(requests) and self._build is None and not self._closed

    def labels_note(self) -> str | None:
        """Why there are no labels while a build runs or after it failed (None: ask the engine)."""
        status = self.build_status
        if status is None or status.state in ("done", "detached"):
            return None
        if status.running and self.cache is not None:  # a first cache's labels, while the full one builds
            return f"Labels over the first {self.cache.settings.n_games:,} games; {status.describe()}."
        if status.running:
            return f"No labels yet: building the feature cache in the background, {status.describe()}."
        return f"No labels: building the feature cache failed ({status.error}); try {BUILD_COMMAND}."

    def parse(self, text: str) -> str:
        """The canonical id of a typed feature ("l2m845" -> "L2M845"); ValueError saying which
        ids exist (those of the cache, else of the loaded dictionaries)."""
        engine = self._engine()
        if engine is None:
            raise ValueError(self._model_error() or "the model is still loading; try again in a moment")
        from othello_tui.features.cache import parse_feature_id

        cache = engine.feature_cache
        if cache is None and not engine.n_features:
            raise ValueError(engine.features_note or "no dictionaries are loaded: there are no features")
        if cache is not None:
            module, index = parse_feature_id(text, cache.n_features, "the feature cache")
        else:
            module, index = parse_feature_id(text, engine.n_features, "the loaded dictionaries")
        return f"{module}{index}"

    def search(self, query: str, limit: int = 40) -> list[tuple[str, Label]]:
        """(feature id, label) of the features whose label holds every word of ``query``
        (case-insensitive, e.g. ``flipped=c-4``), best F1 first, at most ``limit``."""
        cache, words = self.cache, query.lower().split()
        if cache is None or not words:
            return []
        found = [
            (f"{module}{index}", label)
            for module in cache.modules
            for index, label in enumerate(cache.labels(module))
            if label is not None and all(word in label.text.lower() for word in words)
        ]
        return sorted(found, key=lambda hit: -hit[1].f1)[:limit]

    def cached(self, feature_id: str) -> FeatureStats | None:
        """A feature's statistics if they were read before (no file access)."""
        cache = self.cache
        with self._lock:
            return self._pages.get((cache.cache_id, feature_id)) if cache is not None else None

    # -- slow calls -------------------------------------------------------------------------

    def stats(self, feature_id: str) -> FeatureStats:
        """A feature's statistics (``FeatureCache.feature``), kept in memory for the next time.
        Raises ``FeatureIdError`` or ``CacheError``; ``RuntimeError`` while there is no cache."""
        cache = self.cache
        if cache is None:
            raise RuntimeError(self.state().note)
        found = self.cached(feature_id)
        if found is None:
            found = cache.feature(feature_id)
            with self._lock:
                self._pages[(cache.cache_id, feature_id)] = found
                while len(self._pages) > self._max_pages:
                    self._pages.popitem(last=False)
        return found

    def example_game(self, game: int) -> tuple[Game, int]:
        """Game ``game`` of the cache's games (stored in the cache), and the seed it is from."""
        cache = self.cache
        if cache is None:
            raise RuntimeError(self.state().note)
        tokens = cache.game_tokens(game)
        squares = TOKEN_TO_SQUARE[tokens[tokens > 0]]
        return Game.from_squares([int(s) for s in squares]), cache.settings.seed

    def build(self, report: Callable[[BuildStatus], object]) -> BuildStatus:
        """Build the missing caches in a niced child process, one after the other (a first one
        over a few games, then the full one; minutes; blocks), calling ``report`` on their
        progress, and take each as it is written: labels and pages come from the newest."""
        from othello_tui.features import CacheError

        engine = self._engine()
        with self._lock:
            if engine is None or not self.build_wanted:
                return self.build_status or BuildStatus("detached")
            requests = engine.cache_requests
        status = BuildStatus("detached")
        for step, request in enumerate(requests, 1):
            last = step == len(requests)
            with self._lock:
                if self._closed:
                    return status
                build = self._build = CacheBuild(request)

            def progress(status: BuildStatus, stage: str = request.stage, last: bool = last) -> None:
                self.build_status = replace(status, stage=stage, final=last)
                report(self.build_status)

            status = replace(build.run(progress), stage=request.stage, final=last)
            if status.state == "detached":
                return status  # the app is closing: build_status keeps the last progress seen
            if status.state == "done":
                try:
                    engine.use_cache(request.out)
                except CacheError as error:
                    status = BuildStatus("failed", error=str(error))
            self.build_status = status
            if status.state != "done":
                return status
            if not last:
                report(status)  # the first labels are in
        return status

    def close(self) -> None:
        """Stop watching a running build, which goes on without the app; none starts after."""
        with self._lock:
            self._closed = True
            build = self._build
        if build is not None:
            build.detach()

    def left_running(self) -> str | None:
        """What to tell the user after the app closed with a build still running (None: none)."""
        status, build = self.build_status, self._build
        if build is None or status is None or not status.running or running_build(build.request) is None:
            return None
        return (
            f"The feature cache build goes on in the background ({status.describe()}; progress in"
            f" {build.request.log}). The next `othello-tui play` shows its progress and takes the cache."
        )
