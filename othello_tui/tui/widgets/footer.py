"""Textual's ``Footer`` without its leak (Textualize/textual#6666, open in Textual 8.2).

Each recompose (every screen switch, every change of bindings) builds new ``FooterKey`` widgets
bound to the footer's ``compact`` reactive. The binding is a watcher stored on the footer, and
Textual prunes watchers only when the watched value changes, which ``compact`` never does. So the
old keys, their styles and caches stayed alive for good: ~2,000 objects per screen switch, and
the garbage collector's full passes grew until opening a feature page took 250 ms at p95.
"""

from __future__ import annotations

from textual.widgets import Footer as TextualFooter


class Footer(TextualFooter):
    async def recompose(self) -> None:
        await super().recompose()
        # Watchers live in the attribute "__watchers" (textual/reactive.py, ``_watch``).
        for watchers in getattr(self, "__watchers", {}).values():
            watchers[:] = [(node, callback) for node, callback in watchers if node.is_attached]
