"""The main screen's own keys (stepping, playing, games, the overlay and the believed board);
the circuit keys are in ``circuit_keys.py``. The help screen lists them from here."""

from __future__ import annotations

from textual.binding import Binding

MAIN_KEYS = [
    Binding("left,comma", "step(-1)", "back", key_display="←", tooltip="one move back", id="step.back"),
    Binding("right,full_stop", "step(1)", "next", key_display="→", tooltip="one move on", id="step.next"),
    Binding("home", "jump(0)", "first move", show=False, tooltip="the start position", id="step.first"),
    Binding("end", "jump(-1)", "last move", show=False, tooltip="the end of the game", id="step.last"),
    Binding("p", "toggle_play", "play", tooltip="play mode on/off: place discs", id="play.toggle"),
    Binding("m", "model_move", "model", tooltip="the model plays its best legal move", id="play.model"),
    Binding("u", "undo", "undo", show=False, tooltip="undo a move, a game or a branch", id="play.undo"),
    Binding("escape", "leave_play", "leave play mode", show=False, id="play.leave"),
    Binding(
        "backspace",
        "back",
        "back",
        show=False,
        tooltip="back to the feature page or tree the game was opened from",
        id="nav.back",
    ),  # fmt: skip
    Binding("n", "new_game", "new", tooltip="the next game of the dataset", id="game.new"),
    Binding("g", "open_game", "game by index", show=False, tooltip="game k of the dataset", id="game.index"),
    Binding("colon", "paste_moves", "paste moves", show=False, tooltip="load a move list", id="game.paste"),
    Binding("y", "copy_moves", "copy moves", show=False, tooltip="copy the moves up to here", id="game.copy"),
    Binding("o", "toggle_overlay", "overlay", show=False, tooltip="probabilities on/off", id="board.overlay"),
    Binding(
        "b",
        "toggle_beliefs",
        "belief",
        show=False,
        tooltip="the probe's believed board on/off",
        id="beliefs.toggle",
    ),
    *(
        Binding(
            f"{side}_square_bracket",
            f"site({delta})",
            f"layer {way}",
            key_display=shown,
            show=False,
            tooltip=f"believed board: the probe one layer {way}",
            id=f"beliefs.layer_{way}",
        )
        for side, delta, way, shown in (("left", -1, "down", "["), ("right", 1, "up", "]"))
    ),  # fmt: skip
]
