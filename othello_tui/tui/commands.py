"""The command palette (ctrl+p): the screens' actions, plus three typed commands: a move list
(``f-4 f-5 c-3`` loads it), ``move 23`` and ``game 17`` (or ``go to move 23``). The feature
commands are in ``feature_commands.py``."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from othello_tui.game.rules import Game, IllegalMoveError
from othello_tui.game.squares import SquareError, parse_square, split_move_list
from othello_tui.tui.host import host
from othello_tui.tui.screens.prompt import parse_game_index
from othello_tui.tui.screens.tree import TreeScreen

_NUMBERED = re.compile(r"^\s*(?:go\s+to\s+)?(move|game)\s+(\d+)\s*$", re.IGNORECASE)


class OthelloCommands(Provider):
    def _actions(self) -> list[tuple[str, str, Callable[[], object]]]:
        main = host(self.app).main_screen
        tree = self.screen if isinstance(self.screen, TreeScreen) else None
        no_tree = partial(main.say, "Open a contributor tree first (t): then e, or this command, exports it.")
        return [
            ("Paste a move list", "load a game from moves like f-4 f-5 c-3", main.action_paste_moves),
            ("Open a game by index", "game k of the dataset's seed", main.action_open_game),
            ("New game", "the next game of the dataset", main.action_new_game),
            ("Play mode on/off", "place discs with the cursor", main.action_toggle_play),
            ("Model move", "the model plays its most probable legal move", main.action_model_move),
            ("Undo", "back to before the last move, game or branch", main.action_undo),
            (
                "Probability overlay on/off",
                "the model's next-move probabilities on the board",
                main.action_toggle_overlay,
            ),
            ("First move", "the start of the game", partial(main.action_jump, 0)),
            ("Last move", "the end of the game", partial(main.action_jump, -1)),
            ("Contributor tree", "why a feature or a logit has its value (t)", main.action_trace),
            (
                "Attention view",
                "every head's attention at this move, and its QK pairs (w)",
                main.action_attention,
            ),
            ("Clear interventions", "drop every ablation and scaling (c)", (tree or main).action_clear_edits),
            (
                "Export the contributor tree",
                "JSON, attribution graph, DOT and an SVG screenshot, into a folder (e in the tree)",
                tree.action_export if tree else no_tree,
            ),
            ("Help", "every key", host(self.app).action_help),
        ]

    async def discover(self) -> Hits:
        for name, help_text, command in self._actions():
            yield DiscoveryHit(name, command, help=help_text)

    async def search(self, query: str) -> Hits:
        for hit in self._typed(query):
            yield hit
        matcher = self.matcher(query)
        for name, help_text, command in self._actions():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), command, help=help_text)

    def _typed(self, query: str) -> list[Hit]:
        """Hits for a typed move list, ``move N`` or ``game N``."""
        main = host(self.app).main_screen
        numbered = _NUMBERED.match(query)
        if numbered:
            kind, number = numbered[1].lower(), int(numbered[2])
            if kind == "move":
                last = len(main.shown.game.moves)
                if number > last:
                    return [
                        Hit(
                            1.0,
                            f"Go to move {last}: the game has {last} moves",
                            partial(main.action_jump, last),
                        )
                    ]
                return [Hit(1.0, f"Go to move {number}", partial(main.action_jump, number))]
            try:
                parse_game_index(str(number))  # the bound the "g" prompt applies
            except ValueError as error:
                return [
                    Hit(1.0, f"No game {number}: {error}", partial(main.say, str(error), "No such game: "))
                ]
            return [Hit(1.0, f"Open game {number}", partial(main.open_index, number))]
        words = split_move_list(query)
        try:
            parse_square(words[0]) if words else None
        except SquareError:
            return []
        if not words:
            return []
        try:
            game = Game.from_text(query)
        except IllegalMoveError as error:
            return [
                Hit(
                    1.0,
                    f"Not a playable move list: {error}",
                    partial(main.say, str(error), "Bad move list: "),
                )
            ]
        return [Hit(1.0, f"Load {len(game.moves)} moves: {query.strip()}", partial(main.open_moves, game))]
