"""The feature page, going back through screens, the palette's feature commands and the
background build of the feature cache, through Textual's Pilot on the tiny model and its cache.

Expected values come from the cache read directly (``open_cache``), the dataset generator, and
the engine's own analysis of the game an example opens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from test_tui_app import MOVES, run, settle, shows
from test_tui_snapshots import StubEngine
from test_tui_snapshots import settle as snap_settle

from othello_tui.features import BuildSettings, Example, FeatureStats, Label, open_cache
from othello_tui.features.accumulate import HISTOGRAM_EDGES
from othello_tui.game.generator import generate_games
from othello_tui.game.rules import Game
from othello_tui.tui.app import OthelloApp, make_app
from othello_tui.tui.cache_build import CacheBuild, CacheRequest, running_build
from othello_tui.tui.engine import ModelEngine
from othello_tui.tui.feature_library import FeatureLibrary
from othello_tui.tui.screens.feature import FeatureScreen
from othello_tui.tui.session import Session
from othello_tui.tui.widgets.examples import HEADER
from othello_tui.tui.widgets.features import FeatureList


@pytest.fixture(scope="module")
def cache(tiny_cache):
    return open_cache(tiny_cache)


@pytest.fixture(scope="module")
def engine(tiny_model, tiny_dictionaries, cache):
    return ModelEngine(tiny_model, tiny_dictionaries, feature_cache=cache)


def app_on(engine) -> OthelloApp:
    return make_app(Session(lambda: engine), Game.from_text(MOVES))


async def page_loaded(app: OthelloApp, pilot) -> FeatureScreen:
    """The feature page on top, once its statistics are in."""
    for _ in range(200):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if isinstance(app.screen, FeatureScreen) and app.screen.stats is not None:
            return app.screen
    raise AssertionError(f"no feature page loaded; the screen is {app.screen}")


async def palette(pilot, text: str) -> None:
    """Type ``text`` into the command palette and give it time to search."""
    await pilot.press("ctrl+p", *text)
    await pilot.pause(0.4)


def test_importing_the_app_does_not_import_torch():
    code = "import sys, othello_tui.tui.app\nprint('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    )


def test_enter_on_a_feature_opens_its_page_with_the_cache_statistics(engine, cache):
    app = app_on(engine)

    async def scenario(pilot):
        await pilot.press("enter", "down")  # expand L0A; its first (most active) feature
        feature = app.main_screen.query_one(FeatureList).current.feature
        await pilot.press("enter")
        page = await page_loaded(app, pilot)
        stats = cache.feature(feature.feature_id)
        shown = shows(app, page)
        assert f"{feature.feature_id} · feature {feature.index} of L0A" in shown
        label = stats.label.text if stats.label else "unlabelled"
        assert f"label: {label}" in shown
        assert f"fires on {stats.frequency:.3%} of {stats.n_tokens:,} tokens" in shown
        assert f"here: {feature.activation:.3g} at move 12 (P11) of pasted moves" in shown
        for title in ("move played (%)", "legal next moves (%)", "board: +mine / −theirs", "flipped (%)",
                      "empty (%)", "logit effect W_dec·W_U"):  # fmt: skip
            assert title in shown
        move_panel = shows(app, page.query_one("#panel-move")).splitlines()
        assert move_panel[1].split("│")[1].split() == list("01234567")
        assert [line.split()[1] for line in move_panel[2:10]] == list("abcdefgh")
        listed = shows(app, page.query_one("#examples-pane")).splitlines()
        assert f"top {stats.n_examples} examples" in listed[0] and listed[1].split() == HEADER.split()
        for line, example in zip(listed[2:], stats.examples, strict=False):
            game, move, square, activation = line.split()[:4]  # then the scroll bar
            assert (int(game), int(move), square) == (example.game, example.position + 1, example.move)
            assert float(activation) == pytest.approx(example.activation, rel=1e-3)
        await pilot.press("escape")
        assert app.screen is app.main_screen

    run(app, scenario)


def test_t_on_a_feature_page_opens_the_feature_s_tree_at_the_main_screen_s_move(engine):
    from othello_tui.tui.screens.tree import TreeScreen

    app = app_on(engine)

    async def scenario(pilot):
        await pilot.press("enter", "down")  # L0A's most active feature at move 12
        feature = app.main_screen.query_one(FeatureList).current.feature
        await pilot.press("enter")
        await page_loaded(app, pilot)
        await pilot.press("t")
        await settle(app, pilot)
        assert isinstance(app.screen, TreeScreen)
        target = app.screen.target
        assert (target.kind, target.position, target.module, target.feature) == (
            "feature",
            11,
            "L0A",
            feature.index,
        )
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, FeatureScreen)
        # a feature that does not fire here: t says so and stays
        app.screen.summary = type(app.screen.summary)(feature.feature_id, 11, (), 12)
        await pilot.press("t")
        await pilot.pause()
        assert isinstance(app.screen, FeatureScreen)
        assert "is not active at move 12" in str(app.screen.query_one("#feature-note").render())

    run(app, scenario)


@pytest.mark.parametrize("session_seed", [0, 5])  # the cache's games are of seed 0 either way
def test_enter_on_a_top_example_opens_its_game_and_backspace_comes_back(engine, cache, session_seed):
    app = make_app(Session(lambda: engine, seed=session_seed), Game.from_text(MOVES))

    async def scenario(pilot):
        await pilot.press("enter", "down", "enter")
        page = await page_loaded(app, pilot)
        example = page.stats.examples[2]
        await pilot.press("down", "down", "enter")
        await settle(app, pilot)
        main = app.main_screen
        assert app.screen is main
        expected = generate_games(example.game + 1, 0).squares[example.game]
        assert main.shown.game.squares == [int(s) for s in expected if s >= 0]
        title = shows(app, main.query_one("#title"))
        source = (
            f"game {example.game} (seed 0)"
            if session_seed == 0
            else f"game {example.game} of the feature cache (seed 0)"
        )
        assert f"{source} · move {example.position + 1} of" in title
        assert main.shown.index == (
            example.game if session_seed == 0 else None
        )  # n counts the session's games
        # the feature is active there, as strongly as the cache says (batching may round)
        active = {f.feature_id: f.activation for m in main.current_view.features for f in m.features()}
        assert active[page.feature_id] == pytest.approx(example.activation, rel=1e-4, abs=1e-5)
        await pilot.press("backspace")
        back = await page_loaded(app, pilot)
        assert back.feature_id == page.feature_id and back.query_one("#examples").cursor == 2
        await pilot.press("escape")
        assert app.screen is main and main.shown.game.squares == Game.from_text(MOVES).squares
        await pilot.press("backspace")
        assert "Nothing to go back to" in shows(app, main.query_one("#message"))

    run(app, scenario)


def test_the_palette_opens_a_feature_by_id_and_explains_unknown_ids(engine):
    app = app_on(engine)

    async def scenario(pilot):
        await palette(pilot, "go to move 5")
        await pilot.press("enter")
        assert "move 5 of 12" in shows(app, app.main_screen.query_one("#title"))
        await palette(pilot, "l0m3")
        await pilot.press("enter")
        page = await page_loaded(app, pilot)
        assert page.feature_id == "L0M3" and "at move 5 (P4) of pasted moves" in shows(app, page)
        await palette(pilot, "feature L1A5")  # from a page: the new page goes on top of it
        await pilot.press("enter")
        assert (await page_loaded(app, pilot)).feature_id == "L1A5"
        await pilot.press("escape")
        assert app.screen is page
        for typed, message in (("L9M3", "no module L9M (modules L0A, L0M, L1A, L1M; indices 0…63)"),
                               ("feature L0A99", "L0A has features 0…63, not 99")):  # fmt: skip
            await palette(pilot, typed)
            assert message in shows(app, app.screen)
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is page  # nothing opened; a notification says why
            assert any(message in n.message for n in app._notifications)

    run(app, scenario)


def test_search_labels_lists_the_matching_features_best_first(engine, cache):
    app = app_on(engine)
    labelled = [(f"{m}{i}", label) for m in cache.modules for i, label in enumerate(cache.labels(m)) if label]
    query = labelled[0][1].text.split(" & ")[0]  # e.g. "empty=g-4"
    matching = sorted((hit for hit in labelled if query in hit[1].text), key=lambda hit: -hit[1].f1)

    async def scenario(pilot):
        await palette(pilot, f"label {query}")
        listed = shows(app, app.screen)
        for feature_id, label in matching[:5]:
            assert f"{feature_id}  {label.text}" in listed
        await pilot.press("enter")
        assert (await page_loaded(app, pilot)).feature_id == matching[0][0]

    run(app, scenario)


# -- the background build ---------------------------------------------------------------------


def flat(text: str) -> str:
    """``text`` with its line breaks and runs of spaces made single spaces (undoes wrapping)."""
    return " ".join(text.split())


def cache_files(directory) -> list[str]:
    """Every file in ``directory``, hidden partial files included."""
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


async def until(pilot, condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await pilot.pause(0.05)


def building_app(weights_dir, cache_dir, settings: BuildSettings) -> OthelloApp:
    """The app on the tiny weights with no feature cache in ``cache_dir``: it builds one there."""
    session = Session.from_weights(weights_dir, device="cpu", cache_dir=cache_dir, build_settings=settings)
    return make_app(session, Game.from_text(MOVES))


def test_a_missing_cache_is_built_off_the_event_loop_and_labels_appear(weights_dir, tmp_path, monkeypatch):
    gate = threading.Event()  # holds the build's worker at its first progress report

    class GatedBuild(CacheBuild):
        def run(self, report):
            return super().run(lambda status: (report(status), gate.wait(120)))

    monkeypatch.setattr("othello_tui.tui.feature_library.CacheBuild", GatedBuild)
    cache_dir = tmp_path / "cache"
    app = building_app(weights_dir, cache_dir, BuildSettings(40, 0, 8))
    library = app.main_screen.session.library

    async def scenario(pilot):
        main = app.main_screen

        def note() -> str:
            return flat(shows(app, main.query_one("#features-note")))

        await until(
            pilot,
            lambda: (
                "No labels yet: building the feature cache in the background, pass 1 of 2, the model"
                in note()
            ),
        )
        assert library.build_status.running and library.cache is None
        await until(pilot, lambda: main.current_view.features)  # the game is analysed
        await pilot.press("left")  # keys are served while the build's worker is held
        assert "move 11 of 12" in shows(app, main.query_one("#title")) and not gate.is_set()
        await pilot.press("enter", "down", "enter")  # a page opened meanwhile waits for the cache
        page = app.screen
        assert isinstance(page, FeatureScreen) and page.stats is None and library.build_status.running
        assert "Building the feature cache in the background: pass 1 of 2" in flat(shows(app, page))
        assert "quitting leaves the build running" in flat(shows(app, page))
        gate.set()
        await until(pilot, lambda: library.build_status.state == "done")
        (built,) = cache_dir.iterdir()
        expected = open_cache(built)
        assert built.name.startswith("features-") and expected.settings == BuildSettings(40, 0, 8)
        assert (await page_loaded(app, pilot)) is page  # the waiting page filled in
        assert page.stats.n_tokens == expected.n_tokens and "Building" not in shows(app, page)
        await pilot.press("escape")
        await until(pilot, lambda: "No labels" not in note())
        for module in main.current_view.features:
            for feature in module.features():
                assert feature.label == expected.label(feature.feature_id)

    run(app, scenario, wait=False)


def test_a_first_small_cache_gives_labels_at_once_and_the_full_one_follows(
    weights_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr("othello_tui.tui.engine.FIRST_CACHE_GAMES", 24)
    cache_dir = tmp_path / "cache"
    settings = BuildSettings(80, 0, 8)
    app = building_app(weights_dir, cache_dir, settings)
    library = app.main_screen.session.library
    notes, seen = [], []

    async def scenario(pilot):
        main = app.main_screen

        def watch() -> bool:
            notes.append(flat(shows(app, main.query_one("#features-note"))))
            if library.cache is not None:
                seen.append(library.cache.settings.n_games)
            return (
                library.build_status is not None
                and library.build_status.state == "done"
                and not library.build_status.running
                and library.build_status.final
            )

        await until(pilot, watch)
        await pilot.pause()
        assert library.cache.settings == settings  # the full cache is in use at the end
        assert 24 in seen and seen[-1] == 80  # the first one's labels came first
        assert any(
            "No labels yet: building the feature cache in the background, a first cache over 24 games" in n
            for n in notes
        )
        assert any("Labels over the first 24 games; the full cache over 80 games" in n for n in notes)
        for module in main.current_view.features:
            for feature in module.features():
                assert feature.label == library.cache.label(feature.feature_id)

    run(app, scenario, wait=False)
    assert sorted(open_cache(p).settings.n_games for p in cache_dir.glob("features-*.h5")) == [24, 80]
    again = Session.from_weights(weights_dir, device="cpu", cache_dir=cache_dir, build_settings=settings)
    again.load()
    assert again.library.cache.settings == settings and not again.library.build_wanted  # the full one


def test_a_session_with_only_the_first_cache_uses_it_and_builds_the_full_one(
    weights_dir, tmp_path, monkeypatch
):
    from othello_tui.tui.engine import load_engine

    monkeypatch.setattr("othello_tui.tui.engine.FIRST_CACHE_GAMES", 24)
    cache_dir = tmp_path / "cache"
    first = load_engine(weights_dir, "cpu", cache_dir=cache_dir, build_settings=BuildSettings(80, 0, 8))
    assert [r.n_games for r in first.cache_requests] == [24, 80] and first.feature_cache is None
    assert first.cache_requests[0].stage == "a first cache over 24 games"
    subprocess.run(first.cache_requests[0].argv(), check=True, capture_output=True)
    second = load_engine(weights_dir, "cpu", cache_dir=cache_dir, build_settings=BuildSettings(80, 0, 8))
    assert second.feature_cache.settings.n_games == 24
    assert [r.n_games for r in second.cache_requests] == [80]  # no second first cache
    small = load_engine(
        weights_dir, "cpu", cache_dir=tmp_path / "other", build_settings=BuildSettings(20, 0, 8)
    )
    assert [r.n_games for r in small.cache_requests] == [20]  # small enough to build at once


def test_a_failed_build_leaves_no_file_and_says_why(tiny_model, tiny_dictionaries, tmp_path):
    request = CacheRequest(tmp_path / "no-weights", tmp_path / "cache" / "features-x.h5", "cpu", 8, 0, 2)
    engine = ModelEngine(tiny_model, tiny_dictionaries, cache_requests=(request,))
    app = make_app(Session(lambda: engine), Game.from_text(MOVES))

    async def scenario(pilot):
        library = app.main_screen.session.library
        await until(pilot, lambda: library.build_status is not None and not library.build_status.running)
        await pilot.pause()
        assert (
            library.build_status.state == "failed" and "othello-tui train model" in library.build_status.error
        )
        note = flat(shows(app, app.main_screen.query_one("#features-note")))
        assert "building the feature cache failed" in note and "othello-tui cache build" in note
        assert cache_files(tmp_path / "cache") == []

    run(app, scenario, wait=False)


def test_quitting_during_a_build_leaves_it_running_and_the_next_start_takes_it_up(
    weights_dir, tmp_path, monkeypatch
):
    cache_dir = tmp_path / "cache"
    monkeypatch.setattr("othello_tui.tui.engine.FIRST_CACHE_GAMES", 100_000)  # the first build, too
    settings = BuildSettings(200_000, 0, 8)  # far too long to finish during the test
    first = building_app(weights_dir, cache_dir, settings)
    library = first.main_screen.session.library

    async def quit_during_the_build(pilot):
        await until(pilot, lambda: library.build_status is not None and library.build_status.done > 0)
        await pilot.press("q")

    # Started with SIGINT ignored, as a shell's background job is: the build must not depend on it.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run(first, quit_during_the_build, wait=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    request = first.main_screen.session._engine.cache_requests[0]
    pid = running_build(request)
    try:
        assert pid is not None and "goes on in the background" in library.left_running()
        seen = library.build_status.done
        second = building_app(weights_dir, cache_dir, settings)
        resumed = second.main_screen.session.library

        async def watch_it_again(pilot):
            await until(pilot, lambda: resumed.build_status is not None and resumed.build_status.done > seen)
            assert resumed.build_status.resumed and running_build(request) == pid  # no second build
            assert "started by an earlier session" in resumed.build_status.describe()

        run(second, watch_it_again, wait=False)
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGTERM)  # the build cleans up as on Ctrl-C
            for _ in range(600):
                if running_build(request) is None:
                    break
                time.sleep(0.1)
    assert not [name for name in cache_files(cache_dir) if name.endswith(".h5") or ".partial-" in name]


def test_a_build_left_running_is_taken_up_when_it_finishes(tmp_path, monkeypatch):
    out = tmp_path / "features-x.h5"
    script = (
        "import sys, time\n"
        "print('games 1 2', flush=True); time.sleep(1.5)\n"
        "print('games 2 2', flush=True); print('panels 2 2', flush=True); time.sleep(1.5)\n"
        f"open({str(out)!r}, 'w').write('cache')\n"
    )
    monkeypatch.setattr(CacheRequest, "argv", lambda self: [sys.executable, "-c", script, str(self.out)])
    request = CacheRequest(tmp_path, out, "cpu", 2, 0, 2)
    first, statuses = CacheBuild(request), []

    def report(status):
        statuses.append(status)
        first.detach()  # as the app does when it quits

    assert first.run(report).state == "detached" and running_build(request) is not None
    seen = []
    final = CacheBuild(request).run(seen.append)
    assert final.state == "done" and final.resumed and out.read_text() == "cache"
    assert [(s.phase, s.done) for s in seen if s.done] == [("games", 1), ("games", 2), ("panels", 2)]
    assert "scoring the labels" in seen[-1].describe()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features-x.h5"]  # no pid file, no log


# -- the snapshot ----------------------------------------------------------------------------


def stub_stats(feature_id: str) -> FeatureStats:
    """Hand-set statistics: every panel has a visible shape, and nothing depends on a training run."""
    rows, cols = np.mgrid[0:8, 0:8]
    logit = np.sin(rows + 0.5 * cols).astype(np.float32)
    logit[3:5, 3:5] = np.nan  # the centre squares are never moves
    histogram = np.exp(-0.5 * ((np.arange(60) - 28) / 5.0) ** 2) * 1000
    move_number = np.exp(-0.5 * ((np.arange(60) - 20) / 8.0) ** 2) * 40
    label = Label("flipped=c-4", 0.91, 0.84, 0.87)
    examples = [Example(3 * k, 10 + k, 18 + k, 2.5 - 0.1 * k) for k in range(20)]
    return FeatureStats(
        feature_id=feature_id, module=feature_id[:3], index=int(feature_id[3:]), fire_count=1234,
        n_tokens=100_000, activation_sum=1851.0, histogram=histogram.astype(np.int64),
        histogram_edges=HISTOGRAM_EDGES, examples=examples, player_black=12,
        move=np.where((rows == 2) & (cols > 2), 4, 0), legal=(rows * 8 + cols) % 5 * 5,
        board=np.clip((cols - rows) / 4, -1, 1), flipped=np.where(rows == cols, 3, 0),
        empty=np.where(rows + cols > 8, 20, 0), move_number=move_number.astype(np.int64),
        logit_effect=logit, label=label,
        candidates=[label, Label("move=c-3", 0.60, 0.52, 0.56), Label("legal=d-5 & mine=c-4", 0.5, 0.4, 0.44)],
    )  # fmt: skip


class StubCache:
    """Serves :func:`stub_stats` for any feature of the stub engine's modules."""

    cache_id = "stub"
    modules = StubEngine.modules
    n_features = StubEngine.n_features
    settings = BuildSettings(100, 0, 8)

    def feature(self, feature_id: str) -> FeatureStats:
        return stub_stats(feature_id)

    def labels(self, module: str) -> list[Label | None]:
        return [None] * self.n_features[module]


class PagedStubEngine(StubEngine):
    feature_cache = StubCache()


@pytest.mark.parametrize("no_color", [False, True])
def test_feature_page_snapshot(snap_compare, monkeypatch, no_color):
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")  # read when the app is made

    async def open_page(pilot):
        await snap_settle(pilot)
        await pilot.press("enter", "down", "enter")
        await page_loaded(pilot.app, pilot)

    app = make_app(Session(PagedStubEngine), Game.from_text(MOVES))
    assert snap_compare(app, terminal_size=(120, 40), run_before=open_page)


@pytest.mark.parametrize("flag, build", [((), True), (("--no-build",), False)])
def test_play_builds_a_missing_cache_unless_told_not_to(monkeypatch, tmp_path, flag, build):
    from click.testing import CliRunner

    from othello_tui.cli import main

    sessions = []
    monkeypatch.setattr(OthelloApp, "run", lambda app: sessions.append(app.main_screen.session))
    monkeypatch.setattr("othello_tui.cli.play.require_terminal", lambda: None)
    result = CliRunner().invoke(main, ["play", "--weights", str(tmp_path), *flag])
    assert result.exit_code == 0, result.output
    assert sessions[0].library.auto_build is build


def test_the_library_says_why_there_are_no_statistics_and_what_builds_them(tmp_path):
    def library(engine, model_error=None, auto_build=True) -> FeatureLibrary:
        return FeatureLibrary(lambda: engine, lambda: model_error, auto_build)

    no_dictionaries = SimpleNamespace(
        feature_cache=None, cache_requests=(), modules=(), n_features={}, labels_note=None,
        features_note="No dictionaries: none in w/dictionaries (`othello-tui train dictionaries`).",
    )  # fmt: skip
    no_cache = SimpleNamespace(
        feature_cache=None, cache_requests=(), modules=("L0A",), n_features={"L0A": 64}, features_note=None,
        labels_note="No labels: no feature cache for these weights (`othello-tui cache build`).",
    )  # fmt: skip
    missing = SimpleNamespace(
        **vars(no_cache) | {"cache_requests": (CacheRequest(tmp_path, tmp_path / "f.h5", "cpu", 8, 0, 2),)}
    )
    loading = library(None).state()
    assert loading.waiting and not loading.ready and "Loading the model" in loading.note
    failed = library(None, "no weights in w (`othello-tui train model`)").state()
    assert not failed.waiting and "othello-tui train model" in failed.note
    for engine, command in ((no_dictionaries, "train dictionaries"), (no_cache, "cache build")):
        state = library(engine).state()
        assert not (state.ready or state.waiting) and f"othello-tui {command}" in state.note
    with pytest.raises(ValueError, match="othello-tui train dictionaries"):
        library(no_dictionaries).parse("L0A1")
    assert library(no_cache).parse(" l0a7 ") == "L0A7"
    with pytest.raises(ValueError, match="L0A has features 0…63, not 64"):
        library(no_cache).parse("L0A64")
    assert library(missing).build_wanted and library(missing).state().waiting
    assert not library(missing, auto_build=False).build_wanted  # play --no-build
    assert not library(missing, auto_build=False).state().waiting
