"""``othello-tui board``: the true board next to what the mine/theirs probe believes."""

from __future__ import annotations

import json

import click

from othello_tui.cli import output
from othello_tui.cli.circuits import POS_HELP, position_in
from othello_tui.cli.game_args import chosen_game, game_options
from othello_tui.cli.groups import main
from othello_tui.cli.loading import WEIGHTS_HELP, load_model_or_fail, load_probes_or_fail, weights_option

CLASSES = ("mine", "theirs", "empty")
LAYER_HELP = "Probe site: embed, or the residual stream after block L (0…5, or L0…L5). [default: L3]"


def _cells(classes, probs, mover: int) -> list[str]:
    """A board row's cells as rich markup: disc in real colour (mine = the mover's), doubtful
    readings with their probability."""
    from othello_tui.game.rules import BLACK

    cells = []
    for c, p in zip(classes, probs, strict=True):
        if c == 2:
            text = "·"
        else:
            colour = mover if c == 0 else -mover
            text = "●" if colour == BLACK else "○"
        cells.append(text if p is None or p >= 0.95 else f"{text}{round(100 * p)}")
    return cells


@main.command("board")
@game_options()
@click.option("--pos", "position", type=int, default=None, help=POS_HELP)
@click.option("--layer", default="L3", show_default=False, help=LAYER_HELP)
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON: per square the truth and the probabilities."
)
@weights_option(WEIGHTS_HELP)
def board_command(moves, game_index, seed, position, layer, as_json, weights, config_file) -> None:
    """The board after a move, and what the mine/theirs probe reads from the residual stream there.

    Mine is the colour of the player who just moved. Believed discs are drawn in real colours;
    a reading below 95% shows its probability, and a wrong one is marked with ! (in red).
    """
    import torch
    from rich.table import Table

    from othello_tui.game.squares import ROWS, SQUARE_TO_TOKEN, square_name
    from othello_tui.probes.beliefs import read_beliefs
    from othello_tui.probes.families import mine_theirs_classes, parse_site, site_label

    game = chosen_game(moves, game_index, seed)
    position_in(game, position)  # a bad --pos fails before the model loads
    model = load_model_or_fail(weights, config=config_file)
    position = position_in(game, position, model.cfg.n_ctx)
    probes = load_probes_or_fail(weights, model)
    try:
        site = parse_site(layer, len(probes.sites))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--layer") from None
    tokens_T = torch.as_tensor(SQUARE_TO_TOKEN[game.squares[: position + 1]].astype("int64"))
    probs_QC = read_beliefs(model, probes, tokens_T)[position, site].cpu().numpy()
    move = game.moves[position]
    truth_Q = mine_theirs_classes(move.board, move.player)
    belief_Q, p_Q = probs_QC.argmax(-1), probs_QC.max(-1)
    wrong_Q = belief_Q != truth_Q
    where = site_label(probes.sites[site])
    if as_json:
        squares = [
            {"square": square_name(q), "truth": CLASSES[truth_Q[q]], "belief": CLASSES[belief_Q[q]],
             "probs": dict(zip(CLASSES, map(float, probs_QC[q]), strict=True))}
            for q in range(64)
        ]  # fmt: skip
        click.echo(
            json.dumps({"position": position, "site": where, "wrong": int(wrong_Q.sum()), "squares": squares})
        )
        return
    table = Table(box=None, pad_edge=False, title_justify="left")
    table.add_column("")
    for col in range(8):
        table.add_column(str(col), justify="center")
    table.add_column("  ")
    for col in range(8):
        table.add_column(str(col), justify="center")
    for row in range(8):
        rows = slice(8 * row, 8 * row + 8)
        true = _cells(truth_Q[rows], [None] * 8, move.player)
        believed = [
            f"[bold red]{cell}![/]" if wrong else cell
            for cell, wrong in zip(_cells(belief_Q[rows], p_Q[rows], move.player), wrong_Q[rows], strict=True)
        ]
        table.add_row(ROWS[row], *true, f"  {ROWS[row]}", *believed)
    console = output.console(highlight=False)
    mover = "●" if move.player == 1 else "○"
    console.print(
        f"Move {position + 1} ({square_name(move.square)} by {mover}; mine = {mover}): the board, and the probe {where}"
    )
    console.print(table)
    wrong = ", ".join(square_name(q) for q in wrong_Q.nonzero()[0]) or "none"
    console.print(f"{int(wrong_Q.sum())} wrong: {wrong}")
