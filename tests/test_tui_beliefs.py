"""Pilot tests of the believed board (issue 15): ``b`` shows it, ``[``/``]`` change the layer, it
follows stepping, and the header counts the wrong squares, on the stub engine's hand-set beliefs."""

from __future__ import annotations

import numpy as np
from test_tui_app import run, settle, shows
from test_tui_snapshots import stub_app, stub_beliefs

from othello_tui.game.rules import Game
from othello_tui.probes.families import mine_theirs_classes
from othello_tui.tui.widgets.belief_board import BeliefBoard

MOVES = "e-5 d-5 c-3 d-2 e-1 f-5 f-6 e-2 g-5 c-4 d-6 c-5"


def expected_wrong(n_moves: int, site: int) -> int:
    game = Game.from_text(MOVES)
    move = game.moves[n_moves - 1]
    reading = stub_beliefs(game)[n_moves - 1, site].argmax(-1)
    return int((reading != mine_theirs_classes(move.board, move.player)).sum())


def test_b_shows_the_believed_board_and_layer_keys_step_through_the_sites():
    async def scenario(pilot):
        app = pilot.app
        screen = app.main_screen
        board = screen.query_one(BeliefBoard)
        assert not board.display or not screen.has_class("-beliefs")
        await pilot.press("b")
        await pilot.pause()
        assert screen.has_class("-beliefs") and board.has_focus
        title = screen.query_one("#beliefs-title")
        text = shows(app, title)
        assert "Belief L3: after block 3" in text and f"\n{expected_wrong(12, 4)} wrong" in text
        await pilot.press("right_square_bracket", "right_square_bracket", "right_square_bracket")
        assert board.site == 6 and "Belief L5" in shows(app, title)  # stops at the top
        for _ in range(8):
            await pilot.press("left_square_bracket")
        assert board.site == 0 and "Belief embed: embeddings" in shows(app, title)
        assert f"{expected_wrong(12, 0)} wrong" in shows(app, title)
        await pilot.press("comma")  # stepping back: the board follows
        await pilot.pause()
        assert f"{expected_wrong(11, 0)} wrong" in shows(app, title)
        wrong_cells = shows(app, board).count("!")
        assert wrong_cells == expected_wrong(11, 0)
        await pilot.press("b")
        await pilot.pause()
        assert not screen.has_class("-beliefs")
        await pilot.press("right_square_bracket")
        assert "Press b first" in shows(app, screen.query_one("#message"))

    run(stub_app(), scenario)


def test_the_cursor_moves_only_on_the_focused_believed_board():
    async def scenario(pilot):
        screen = pilot.app.main_screen
        board = screen.query_one(BeliefBoard)
        await pilot.press("b")
        await pilot.pause()
        start = board.cursor
        await pilot.press("j", "l")
        assert board.cursor == start + 9
        assert "›" in shows(pilot.app, board)
        n_moves = screen.shown.n_moves
        await pilot.press("left")  # the arrows still step the game
        assert screen.shown.n_moves == n_moves - 1

    run(stub_app(), scenario)


def test_an_engine_without_probes_says_why():
    async def scenario(pilot):
        app = pilot.app
        await pilot.press("b")
        await pilot.pause()
        assert "No probes here" in shows(app, app.main_screen.query_one("#beliefs-title"))

    app = stub_app()
    engine = app.main_screen.session._load_engine
    app.main_screen.session._load_engine = lambda: _without_probes(engine())
    run(app, scenario)


def _without_probes(engine):
    analyse = engine.analyse

    def no_beliefs(squares, reuse=None):  # keeps no keys and values: never given any
        analysis = analyse(squares)
        return type(analysis)(analysis.probs_TV, analysis.acts)

    engine.analyse = no_beliefs
    engine.probes_note = "No probes here"
    return engine


def real_app(tiny_model, tiny_dictionaries):
    """The tiny model, its dictionaries and random probes: (app, probes)."""
    from test_beliefs import random_probes

    from othello_tui.tui.app import make_app
    from othello_tui.tui.engine import ModelEngine
    from othello_tui.tui.session import Session

    probes = random_probes(tiny_model)
    engine = ModelEngine(tiny_model, tiny_dictionaries, probes=probes)
    return make_app(Session(lambda: engine), Game.from_text(MOVES)), probes


def test_f_edits_the_belief_under_the_cursor_and_the_board_follows(tiny_model, tiny_dictionaries):
    from othello_tui.circuits.edits import BeliefEdit

    app, _ = real_app(tiny_model, tiny_dictionaries)

    async def scenario(pilot):
        await settle(app, pilot)
        await pilot.press("b")
        await pilot.pause()
        board, screen = app.main_screen.query_one(BeliefBoard), app.main_screen
        reading = screen.current_view.beliefs.reading(board.site)[0]
        square = int(np.flatnonzero(reading < 2)[0])  # a believed disc
        board.cursor = square
        await pilot.press("f")
        await settle(app, pilot)
        (edit,) = app.main_screen.session.circuits.edits(screen.shown.game.squares)
        assert edit == BeliefEdit(11, board.site, square, 1 - int(reading[square]))
        assert "P11:" in shows(app, screen.query_one("#message"))
        assert "INTERVENED ×1" in shows(app, screen.query_one("#title"))
        assert screen.current_view.beliefs.reading(board.site)[0][square] == edit.to
        board.cursor = int(np.flatnonzero(screen.current_view.beliefs.reading(board.site)[0] == 2)[0])
        await pilot.press("f")
        assert "reads" in shows(app, screen.query_one("#message"))  # an empty reading is not flipped

    run(app, scenario)


def test_F_flips_along_the_best_aligned_residual_feature(tiny_model, tiny_dictionaries, tiny_residual):
    """``F`` pushes along the residual feature ``flip_features`` picks; the predictions are the
    intervention's; a square no multiple of that row flips is refused and leaves the stack as it was."""
    from othello_tui.circuits.belief_edit import belief_push
    from othello_tui.circuits.edits import BeliefEdit
    from othello_tui.circuits.intervention import intervene_batch
    from othello_tui.circuits.nodes import CircuitError
    from othello_tui.circuits.trace import GameTrace
    from othello_tui.game.squares import TOKEN_TO_SQUARE, tokens_of
    from othello_tui.probes.alignment import flip_features

    dictionaries = {**tiny_dictionaries, **tiny_residual}
    app, probes = real_app(tiny_model, dictionaries)
    trace = GameTrace(tiny_model, dictionaries, tokens_of(Game.from_text(MOVES).squares), probes)
    flips = flip_features(probes, "L1R", tiny_residual["L1R"])

    def edit_of(square, reading):
        to = 1 - int(reading[square])
        return BeliefEdit(11, 2, square, to, along=flips.feature(square, to)[0])

    def feasible(edit):
        try:
            belief_push(trace, edit)
        except CircuitError:
            return False
        return True

    async def scenario(pilot):
        await settle(app, pilot)
        await pilot.press("b")
        await pilot.pause()
        board, screen = app.main_screen.query_one(BeliefBoard), app.main_screen
        assert board.site == 2  # after block 1 of the tiny model: L1R reads it
        reading = screen.current_view.beliefs.reading(board.site)[0]
        discs = [int(q) for q in np.flatnonzero(reading < 2)]
        good = next(q for q in discs if feasible(edit_of(q, reading)))
        bad = next(q for q in discs if not feasible(edit_of(q, reading)))
        board.cursor = bad
        await pilot.press("F")
        await settle(app, pilot)
        assert screen.session.circuits.edits(screen.shown.game.squares) == ()  # taken off again
        assert "refused: no push along" in shows(app, screen.query_one("#message"))
        board.cursor = good
        await pilot.press("F")
        await settle(app, pilot)
        (edit,) = screen.session.circuits.edits(screen.shown.game.squares)
        assert edit == edit_of(good, reading)
        cosine = flips.feature(good, edit.to)[1]
        assert f"@{edit.along} (its decoder row has cosine {cosine:.2f}" in shows(
            app, screen.query_one("#message")
        )
        logits_BTV, _ = intervene_batch(trace, [[edit]])  # the app shows the intervention's predictions
        expected = logits_BTV[0, 11].softmax(-1)
        shown = screen.current_view.probs[TOKEN_TO_SQUARE[1:]]
        assert np.allclose(shown, expected[1:].numpy(), atol=1e-5)

    run(app, scenario)


def test_t_on_a_believed_square_opens_its_probe_tree(tiny_model, tiny_dictionaries):
    from othello_tui.circuits.trace import GameTrace
    from othello_tui.game.squares import tokens_of
    from othello_tui.tui.screens.tree import TreeScreen

    app, probes = real_app(tiny_model, tiny_dictionaries)
    game = app.main_screen.shown.game

    async def scenario(pilot):
        app = pilot.app
        await settle(app, pilot)
        await pilot.press("b", "right_square_bracket")  # the tiny model has 3 sites: it stays on the top one
        await pilot.pause()
        board = app.main_screen.query_one(BeliefBoard)
        assert board.site == 2
        await pilot.press("j", "l", "t")  # d-4 from the start cursor c-3
        await settle(app, pilot)
        assert isinstance(app.screen, TreeScreen)
        target = app.screen.contributors.expansion.target
        reading = app.main_screen.current_view.beliefs.probs_SQC[2, board.cursor]
        assert target.kind == "probe" and target.square == board.cursor == 28 and target.site == 2
        assert target.classes == tuple(int(c) for c in reading.argsort()[::-1][:2])
        trace = GameTrace(tiny_model, tiny_dictionaries, tokens_of(game.squares), probes)
        assert app.screen.contributors.expansion.value == trace.target_value(target)

    run(app, scenario)
