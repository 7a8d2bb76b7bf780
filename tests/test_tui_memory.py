"""The app's memory hygiene: the footer's leak is plugged, and full garbage collections wait for
the user to be idle (``tui/idle_gc.py``)."""

from __future__ import annotations

import gc

from test_tui_app import run
from test_tui_feature_screen import app_on, cache, engine, page_loaded  # noqa: F401 (fixtures)
from textual.widget import Widget

from othello_tui.tui import idle_gc
from othello_tui.tui.idle_gc import IdleCollector


def footer_keys() -> int:
    gc.collect()
    return sum(type(o).__name__ == "FooterKey" for o in gc.get_objects() if isinstance(o, Widget))


def test_screen_switches_leave_no_footer_keys_behind(engine):  # noqa: F811
    app = app_on(engine)
    counts = []

    async def scenario(pilot):
        for _ in range(3):
            for _ in range(4):
                await pilot.press("enter", "down", "enter")  # expand L0A, open its first feature
                await page_loaded(app, pilot)
                await pilot.press("escape", "enter")  # back, and collapse L0A again
                await pilot.pause()
            counts.append(footer_keys())

    run(app, scenario)
    # Textual 8.2's Footer keeps ~20 dead keys per switch (Textualize/textual#6666): 8 switches
    # between the counts would add 160
    assert counts[2] - counts[0] < 20, counts


def test_a_due_full_collection_waits_for_the_user_to_be_idle(monkeypatch):
    collector = IdleCollector()
    saved = gc.get_threshold()
    collector.start()
    try:
        assert gc.get_threshold()[2] == idle_gc.SAFETY_VALVE
        collected = []
        monkeypatch.setattr(idle_gc.gc, "collect", lambda: collected.append(True))
        monkeypatch.setattr(idle_gc.gc, "get_count", lambda: (0, 0, idle_gc.FULL_PASS_DUE))
        now = [100.0]
        monkeypatch.setattr(idle_gc.time, "monotonic", lambda: now[0])
        collector.touch()
        now[0] += idle_gc.IDLE_SECONDS / 2
        assert not collector.collect_if_idle() and not collected  # a key just now: wait
        now[0] += idle_gc.IDLE_SECONDS
        assert collector.collect_if_idle() and collected == [True]
        monkeypatch.setattr(idle_gc.gc, "get_count", lambda: (0, 0, idle_gc.FULL_PASS_DUE - 1))
        assert not collector.collect_if_idle()  # idle, but no full pass due yet
    finally:
        collector.stop()
    assert gc.get_threshold() == saved
