"""Command-palette commands for features (ctrl+p): ``feature L2A428`` or just ``L2A428`` opens
the feature's page (an unknown id says which ids exist); ``label flipped=c-4`` or
``search flipped=c-4`` lists the features whose own label or notes by the user (marked ✎), then
whose automatic label, hold every word typed (best F1 first), each opening its page. "Go to
feature…" and "Search labels…" open a palette of their own for the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial

from rich.text import Text
from textual.command import CommandPalette, DiscoveryHit, Hit, Hits, Provider

from othello_tui.tui.host import host
from othello_tui.tui.messages import OpenFeature

_FEATURE = re.compile(r"^\s*(?:go\s+to\s+)?feature\s+(.*?)\s*$", re.IGNORECASE)
_BARE_ID = re.compile(r"^\s*(L\d+[A-Z]\d+)\s*$", re.IGNORECASE)  # any module letter: a wrong one is explained
_SEARCH = re.compile(r"^\s*(?:label|labels|search)(?:\s+(.*?))?\s*$", re.IGNORECASE)
MAX_HITS = 40


class _FeatureHits(Provider):
    """What the three palettes share: hits that open a feature page, or explain why not."""

    def _open(self, feature_id: str) -> None:
        self.app.post_message(OpenFeature(feature_id))

    def _explain(self, title: str, text: str) -> Hit:
        """A hit that, chosen, shows ``text`` as a notification."""
        notify = partial(self.app.notify, text, title=title, severity="warning", timeout=8)
        return Hit(1.0, Text(f"{title}: {text}", style="italic"), notify)

    def feature_hits(self, text: str) -> list[Hit]:
        if not text.strip():
            return [self._explain("Go to feature", "type its id after it, e.g. feature L2A428")]
        try:
            feature_id = host(self.app).main_screen.session.library.parse(text)
        except ValueError as error:
            return [self._explain("Not a feature", str(error))]
        return [Hit(1.0, f"Go to feature {feature_id}", partial(self._open, feature_id), help="its page")]

    def label_hits(self, query: str) -> list[Hit]:
        """The user's notes holding every word typed, then the automatic labels, best F1 first."""
        session = host(self.app).main_screen.session
        library = session.library
        if not query:
            return [self._explain("Search labels", "type part of a label after it, e.g. label flipped=c-4")]
        mine = session.notes.search(query) if session.notes is not None else []
        hits = [
            Hit(
                1.0,
                f"{feature_id}  {note.shown()}",
                partial(self._open, feature_id),
                help=note.notes or "your label",
            )
            for feature_id, note in mine
        ]
        if library.cache is None:
            return hits or [self._explain("No labels", library.state().note or "no feature cache")]
        found = library.search(query, MAX_HITS)
        if not found and not hits:
            return [self._explain("No label matches", f"no feature's label or note holds {query!r}")]
        return hits + [
            Hit(
                0.99 - rank / 1000,  # keep the F1 order, after the user's own
                f"{feature_id}  {label.text}",
                partial(self._open, feature_id),
                help=f"P {label.precision:.2f} · R {label.recall:.2f} · F1 {label.f1:.2f}",
            )
            for rank, (feature_id, label) in enumerate(found)
        ]


class FeatureIdCommands(_FeatureHits):
    """The "Go to feature…" palette: what is typed is a feature id."""

    async def search(self, query: str) -> Hits:
        if query.strip():
            for hit in self.feature_hits(query):
                yield hit


class LabelSearchCommands(_FeatureHits):
    """The "Search labels…" palette: what is typed is searched for in the labels."""

    async def search(self, query: str) -> Hits:
        for hit in self.label_hits(query.strip()):
            yield hit


class FeatureCommands(_FeatureHits):
    """In the app's palette: the typed forms, and the two palettes above."""

    def _palettes(self) -> list[tuple[str, str, Callable[[], None]]]:
        return [
            ("Go to feature…", "its page, by id: e.g. L2A428 (or type: feature L2A428)",
             partial(self._palette, FeatureIdCommands, "Feature id, e.g. L2A428")),
            ("Search labels…", "features by your labels and notes, and automatic labels (or type: label flipped=c-4)",
             partial(self._palette, LabelSearchCommands, "Part of a label, e.g. flipped=c-4")),
        ]  # fmt: skip

    def _palette(self, provider: type[Provider], placeholder: str) -> None:
        self.app.push_screen(CommandPalette(providers=[provider], placeholder=placeholder))

    async def discover(self) -> Hits:
        for name, help_text, command in self._palettes():
            yield DiscoveryHit(name, command, help=help_text)

    async def search(self, query: str) -> Hits:
        typed = _FEATURE.match(query) or _BARE_ID.match(query)
        searched = _SEARCH.match(query)
        hits = (
            self.feature_hits(typed[1]) if typed else self.label_hits(searched[1] or "") if searched else []
        )
        for hit in hits:
            yield hit
        matcher = self.matcher(query)
        for name, help_text, command in self._palettes():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), command, help=help_text)
