"""``othello-tui trace``, ``othello-tui intervene`` and ``othello-tui eval circuits``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click

from othello_tui.circuits.edits import MARGIN  # plain data: --help stays free of torch
from othello_tui.circuits.pruning import EDGE_THRESHOLD, MAX_FEATURES, NODE_THRESHOLD, GraphSettings
from othello_tui.cli import output
from othello_tui.cli.game_args import chosen_game, game_options
from othello_tui.cli.groups import DEFAULT_CACHE_DIR, evaluate, main
from othello_tui.cli.loading import (
    F,
    WeightsDigests,
    cache_option,
    dictionaries_option,
    find_feature_cache,
    load_model_and_dictionaries_or_fail,
    load_probes_or_fail,
    user_notes,
    weights_option,
)

POS_HELP = (
    "Position, 0-based: position i holds move i+1 and predicts move i+2; negative counts from the end."
    " [default: the last move]"
)
_WEIGHTS = weights_option()
SHOWN_CHANGE = 5e-4  # the smallest probability change ``intervene`` lists


def position_in(game, position: int | None, n_ctx: int | None = None) -> int:
    """The position a command names in ``game``: the last move by default (the last the model
    reads, given its context of ``n_ctx`` moves), counted from the end when negative."""
    if not game.moves:
        raise click.ClickException("--moves is empty: give at least one move, e.g. --moves f-4")
    n = len(game.moves)
    read = n if n_ctx is None else min(n, n_ctx)
    given = read - 1 if position is None else position
    position = given + n if given < 0 else given  # negative counts from the end: -1 is the last move
    if not 0 <= position < n:
        raise click.ClickException(
            f"--pos {given} is outside the game: {n} moves, positions 0…{n - 1} (or −{n}…−1 from the end)"
        )
    if n_ctx is not None and position >= n_ctx:
        raise click.ClickException(
            f"--pos {given}: the model reads {n_ctx} moves (n_ctx), positions 0…{n_ctx - 1}"
        )
    return position


def _open_trace(
    game,
    position: int | None,
    weights: Path,
    dictionaries: Path | None,
    probes: bool = False,
    config: Path | None = None,
):
    """(trace, position) for a game, up to the moves the model reads; the position defaults to
    the last of them. With ``probes``, the trace also reads the probes beside the model (for
    probe targets)."""
    import torch

    from othello_tui.circuits.nodes import CircuitError
    from othello_tui.circuits.trace import GameTrace
    from othello_tui.game.squares import SQUARE_TO_TOKEN

    # one game is too small to share between threads: a second one waits on any other busy
    # process (as in the app, ``othello_tui.tui.engine``)
    torch.set_num_threads(1)
    if not game.moves:
        position_in(game, position)  # the clear error, before the model loads
    model, loaded = load_model_and_dictionaries_or_fail(
        weights, dictionaries=dictionaries, config=config, required=False
    )
    position = position_in(game, position, model.cfg.n_ctx)
    found = load_probes_or_fail(weights, model) if probes else None
    try:
        tokens = [int(SQUARE_TO_TOKEN[s]) for s in game.squares[: model.cfg.n_ctx]]
        return GameTrace(model, loaded, tokens, found), position
    except CircuitError as error:
        raise click.ClickException(str(error)) from None


def rich_tree(expansion, label_of=None):
    """An indented rich tree: node id, contribution, label; expanded features show their value."""
    from rich.text import Text
    from rich.tree import Tree

    from othello_tui.circuits.export import node_label

    target = expansion.target
    root = Tree(
        Text.assemble(
            (target.spec, "bold"),
            f" at P{target.position} (move {target.position + 1}) = {expansion.value:.4f}",
            (f"   sum of contributions {expansion.total:.4f}", "dim"),
        )
    )

    def add(tree, level) -> None:
        for branch in level.branches:
            text = Text.assemble(
                (branch.node.id, "bold"),
                "  ",
                (f"{branch.contribution:+.4f}", "green" if branch.contribution >= 0 else "red"),
            )
            if (label := node_label(branch.node, label_of)) is not None:
                text.append(f"  {label}", "cyan")
            if branch.expansion is not None:
                text.append(f"  (value {branch.expansion.value:.4f})", "dim")
            child = tree.add(text)
            if branch.expansion is not None:
                add(child, branch.expansion)
        if level.branches and level.rest != 0:
            tree.add(Text(f"… others  {level.rest:+.4f}", "dim"))

    add(root, expansion)
    return root


def _share_option(name: str, default: float, what: str) -> Callable[[F], F]:
    """A pruning threshold of ``--graph`` (circuit-tracer's ``prune_graph``)."""
    return click.option(
        name,
        type=click.FloatRange(0, 1),
        default=default,
        show_default=True,
        help=f"With --graph: keep the most influential {what} up to this cumulative share of influence.",
    )


def _graph_settings(as_graph: bool, graph_nodes: int, node_threshold: float, edge_threshold: float):
    """The graph options as settings; a usage error when one is given without ``--graph``."""
    context = click.get_current_context()
    names = ("graph_nodes", "node_threshold", "edge_threshold")
    given = [
        name for name in names if context.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    ]
    if given and not as_graph:
        options = ", ".join(f"--{name.replace('_', '-')}" for name in given)
        raise click.UsageError(f"{options} go with --graph")
    return GraphSettings(graph_nodes, node_threshold, edge_threshold)


@main.command("trace")
@game_options()
@click.option("--pos", "position", type=int, default=None, help=POS_HELP)
@click.option(
    "--target",
    "target_text",
    required=True,
    help="logit:e-1, feature:L2A428, score:L3H2:14 (key position 14), probe:L3:e-4:mine-theirs "
    "(the mine/theirs probe's mine-minus-theirs logit at e-4 after block 3; embed for the embeddings) "
    "or feature:L3R512 (a residual-stream feature's pre-activation, active or not).",
)
@click.option(
    "--depth", type=click.IntRange(1, 12), default=1, show_default=True, help="Levels of features to expand."
)
@click.option(
    "--top", type=click.IntRange(min=1), default=10, show_default=True, help="Contributors shown per level."
)
@click.option(
    "--threshold",
    type=click.FloatRange(min=0),
    default=None,
    help="Show only contributions with |value| ≥ this.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (target, contributions, sum).")
@click.option("--dot", "as_dot", is_flag=True, help="Print a Graphviz digraph.")
@click.option(
    "--graph",
    "as_graph",
    is_flag=True,
    help="Print the attribution graph, in the JSON of Neuronpedia's graph viewer and circuit-tracer: "
    "the exact direct contributions among the target, the --graph-nodes features most influential on "
    "it (expanded as circuit-tracer does, most influential first) and every other contributor of "
    "theirs (the features not expanded: one remainder node per expanded node), each node once, "
    "pruned at --node-threshold and --edge-threshold (circuit-tracer's prune_graph). --depth, --top "
    "and --threshold shape trees, not graphs. For a score target: its tree's graph, with the "
    "(query, key) pairs in Neuronpedia's qk_tracing_results form.",
)
@click.option(
    "--graph-nodes",
    "graph_nodes",
    type=click.IntRange(min=0),
    default=MAX_FEATURES,
    show_default=True,
    help="With --graph: how many features to expand.",
)
@_share_option("--node-threshold", NODE_THRESHOLD, "nodes")
@_share_option("--edge-threshold", EDGE_THRESHOLD, "links (edges)")
@_WEIGHTS
@dictionaries_option
@cache_option("Feature cache for the labels")
def trace_command(
    moves,
    game_index,
    seed,
    position,
    target_text,
    depth,
    top,
    threshold,
    as_json,
    as_dot,
    as_graph,
    graph_nodes,
    node_threshold,
    edge_threshold,
    weights,
    config_file,
    dictionaries_dir,
    cache_file,
) -> None:
    """Explain a logit, a feature or an attention score as an exact sum of node contributions.

    Nodes: P7L1M379 (feature 379 of L1M at position 7), P6pos, P2embed, P7L1M.error, P7L1M.bias,
    and bias parameters such as P7blocks.1.ln2.b. A probe target reads the residual stream itself:
    its contributors are the nodes at that position below the probe, exactly (no LayerNorm); so
    does a residual-stream feature (feature:L3R512, from WEIGHTS/residual), with its encoder
    constant as the bias node P7L3R.b_enc.
    Attention features are explained from nodes at
    every earlier position (OV); MLP features with the gate frozen (ADC: a lower feature that
    suppresses neurons is not seen, since a suppressed neuron's gate is already near 0).
    """

    from othello_tui.circuits.export import expansion_to_dict, expansion_to_dot
    from othello_tui.circuits.graph import build_graph
    from othello_tui.circuits.graph_json import trace_attribution_graph, trace_graph
    from othello_tui.circuits.nodes import CircuitError, parse_target
    from othello_tui.circuits.provenance import Provenance
    from othello_tui.dictionary.sae import is_residual
    from othello_tui.notes import any_notes

    if as_json + as_dot + as_graph > 1:
        raise click.UsageError("--json, --dot and --graph exclude each other")
    settings = _graph_settings(as_graph, graph_nodes, node_threshold, edge_threshold)
    game = chosen_game(moves, game_index, seed)
    trace, position = _open_trace(
        game, position, weights, dictionaries_dir, target_text.strip().startswith("probe:"), config_file
    )
    try:
        target = parse_target(target_text, position)
        if target.kind == "feature" and not is_residual(target.feature_key[0]):
            trace.feature_node(position, target.module, target.feature)  # inactive: a clear error
        if as_graph and target.kind != "score":  # a score's contributors are pairs: its tree's graph
            graph = build_graph(trace, target, settings.max_features)
        else:
            expansion = trace.expand(target, depth, top, threshold)
    except CircuitError as error:
        raise click.ClickException(str(error)) from None
    digests = WeightsDigests(trace.model, trace.all_dictionaries)
    cache, _ = find_feature_cache(cache_file, digests)
    label_of = cache.label if cache else None
    with_notes = bool(trace.all_dictionaries) and any_notes(DEFAULT_CACHE_DIR)
    notes = user_notes(digests.dictionaries, DEFAULT_CACHE_DIR) if with_notes else None
    note_of = notes.note_of if notes is not None else None
    label_of = notes.labels(label_of) if notes is not None else label_of  # the user's label first, ✎
    if as_graph and target.kind != "score":
        provenance = Provenance.of_graph(
            game.text, position, target.spec, settings, digests.model, digests.dictionaries,
            seed if game_index is not None else None, game_index,
        )  # fmt: skip
        click.echo(
            json.dumps(trace_attribution_graph(trace, graph, provenance, settings, label_of), indent=2)
        )
    elif as_json or as_dot or as_graph:
        provenance = Provenance(
            game.text, position, target.spec, top, threshold, depth, digests.model, digests.dictionaries,
            seed=seed if game_index is not None else None, game_index=game_index,
        )  # fmt: skip
        if as_json:
            click.echo(json.dumps(expansion_to_dict(expansion, label_of, provenance, note_of), indent=2))
        elif as_graph:
            click.echo(json.dumps(trace_graph(trace, expansion, provenance, label_of, top), indent=2))
        else:
            click.echo(expansion_to_dot(expansion, label_of, provenance), nl=False)
    else:
        output.console(highlight=False).print(rich_tree(expansion, label_of))


def _board_table(delta_V, title: str):
    """Δlogit of each square on the 8×8 board, rows a–h and columns 0–7; centre squares blank."""
    from rich.table import Table

    from othello_tui.game.squares import CENTRE_SQUARES, ROWS, SQUARE_TO_TOKEN

    table = Table(title=title, show_lines=False, box=None, pad_edge=False)
    table.add_column("")
    for col in range(8):
        table.add_column(str(col), justify="right")
    for row in range(8):
        cells = []
        for square in range(8 * row, 8 * row + 8):
            if square in CENTRE_SQUARES:
                cells.append("·")
                continue
            value = float(delta_V[int(SQUARE_TO_TOKEN[square])])
            style = "green" if value > 0 else "red" if value < 0 else "dim"
            cells.append(f"[{style}]{value:+.2f}[/]")
        table.add_row(ROWS[row], *cells)
    return table


@main.command("intervene")
@game_options()
@click.option("--pos", "position", type=int, default=None, help=POS_HELP + " Logit changes are shown here.")
@click.option(
    "--set",
    "edits_text",
    multiple=True,
    help="P7L1M379=0 (set; 0 ablates) or P7L1M379*2 (scale); repeatable.",
)
@click.option(
    "--believe",
    "beliefs_text",
    multiple=True,
    help="L3:e-4=theirs: at --pos, push the residual stream after block 3 along the mine/theirs "
    "probe until it reads e-4 as theirs (embed: the embeddings; classes mine, theirs, empty); "
    "L3:e-4=theirs@L3R512 pushes along that residual feature's decoder row instead; repeatable.",
)
@click.option(
    "--margin",
    type=click.FloatRange(min=0),
    default=MARGIN,
    show_default=True,
    help="With --believe: the logit lead the new class gets over every other.",
)
@click.option(
    "--watch",
    multiple=True,
    help="A downstream feature at a position, e.g. P9L2A12, to report before/after; repeatable.",
)
@_WEIGHTS
@dictionaries_option
def intervene_command(
    moves,
    game_index,
    seed,
    position,
    edits_text,
    beliefs_text,
    margin,
    watch,
    weights,
    config_file,
    dictionaries_dir,
) -> None:
    """Set features to new values, or edit what the probes read, rerun the model and show how the
    logits change.

    A belief edit (Li et al. 2023) flips one square's believed colour at --pos and reports whether
    the predicted legal moves (p > 0.01) then follow the edited board rather than the real one.
    """
    import torch

    from othello_tui.circuits.edits import parse_belief
    from othello_tui.circuits.intervention import intervene, parse_edit
    from othello_tui.circuits.nodes import CircuitError
    from othello_tui.game.squares import TOKEN_TO_SQUARE, square_name

    if not edits_text and not beliefs_text:
        raise click.UsageError("give at least one --set or --believe")
    game = chosen_game(moves, game_index, seed)
    trace, position = _open_trace(game, position, weights, dictionaries_dir, bool(beliefs_text), config_file)
    console = output.console(highlight=False)
    try:
        beliefs = [parse_belief(text, position, margin) for text in beliefs_text]
        edits = [parse_edit(text) for text in edits_text]
        changes = []  # printed once every edit and --watch is known to be good
        for edit in edits:
            old = trace.activation(edit.position, edit.module, edit.feature)
            if edit.position > position:
                raise CircuitError(
                    f"{edit.node_id} is after --pos {position}; it cannot change that position"
                )
            if edit.scale is not None or edit.value == 0:  # changes nothing unless the feature is active
                trace.feature_node(edit.position, edit.module, edit.feature)
            changes.append(f"{edit.node_id}: {old:.4f} → {edit.new_activation(old):.4f}")
        sites = [trace.check_probe_site(belief.site) for belief in beliefs]
        for belief in beliefs:
            _check_flips(trace, belief)
        result = intervene(trace, [*edits, *beliefs], watch, keep=sites)
    except CircuitError as error:
        raise click.ClickException(str(error)) from None
    for change in changes:
        console.print(change)
    for belief in beliefs:
        console.print(_belief_report(trace, result, belief))
    delta_V = result.delta_TV[position]
    console.print(_board_table(delta_V, f"Logit change at P{position} (predicting move {position + 2})"))
    before_V, after_V = (
        torch.softmax(x[position], -1) for x in (result.logits_before_TV, result.logits_after_TV)
    )
    largest = (after_V - before_V)[1:].abs().topk(5)  # what moves the prediction
    shown = largest.indices[largest.values >= SHOWN_CHANGE] + 1
    console.print(
        "Largest probability changes:"
        if len(shown)
        else f"No next-move probability at P{position} changes by {100 * SHOWN_CHANGE:g} points or more."
    )
    for token in shown:
        square = square_name(int(TOKEN_TO_SQUARE[token]))
        console.print(
            f"  {square}  Δlogit {float(delta_V[token]):+.3f}  p {float(before_V[token]):.1%} → {float(after_V[token]):.1%}"
        )
    for name, (before, after) in result.features.items():
        console.print(f"{name}: {before:.4f} → {after:.4f}")


def _probe_reading(trace, edit, residual_TD):
    """The mine/theirs probe's class probabilities [C] at the edit's site, square and position."""
    return trace.probes.square_logits(
        "mine_theirs", edit.site, edit.square, residual_TD[edit.position]
    ).softmax(-1)


def _check_flips(trace, edit) -> None:
    """A belief edit flips a reading: refuse one whose class the probe reads already."""
    from othello_tui.circuits.nodes import PROBE_CLASSES, CircuitError
    from othello_tui.game.squares import square_name

    p_C = _probe_reading(trace, edit, trace.cache[trace.probes.sites[edit.site]]).detach()
    if int(p_C.argmax()) == edit.to:
        raise CircuitError(
            f"{edit.text}: the probe reads {square_name(edit.square)} as {PROBE_CLASSES[edit.to]} already "
            f"({float(p_C.max()):.0%}); a belief edit flips what it reads"
        )


def _belief_report(trace, result, edit) -> str:
    """The probe's reading before → after a belief edit, the push's size, and Li et al.'s
    criterion: are the predicted legal moves closer to the edited board's or the real board's?
    Predictions on occupied squares say the push broke the prediction rather than moved a belief."""
    import torch

    from othello_tui.circuits.belief_edit import predicted_legal
    from othello_tui.circuits.nodes import PROBE_CLASSES
    from othello_tui.game.rules import Game, next_turn
    from othello_tui.game.squares import TOKEN_TO_SQUARE, square_name
    from othello_tui.probes.families import with_belief

    site, i = trace.probes.sites[edit.site], edit.position
    with torch.no_grad():
        before_C, after_C = (
            _probe_reading(trace, edit, r_TD) for r_TD in (trace.cache[site], result.kept[site])
        )
        push = float((result.kept[site][i] - trace.cache[site][i]).norm() / trace.cache[site][i].norm())
    game = Game.from_squares([int(TOKEN_TO_SQUARE[t]) for t in trace.tokens_T[: i + 1]])
    move = game.moves[i]
    original = set(next_turn(move.board, move.player)[1])
    edited = set(next_turn(with_belief(move.board, move.player, edit.square, edit.to), move.player)[1])
    predicted = predicted_legal(result.logits_after_TV[i].softmax(-1))
    occupied = {q for q in predicted if move.board.flat[q] != 0}

    def reading(p_C) -> str:
        return f"{PROBE_CLASSES[int(p_C.argmax())]} ({float(p_C.max()):.0%})"

    def names(squares) -> str:
        return " ".join(square_name(s) for s in sorted(squares)) or "none"

    if original == edited:
        verdict = "the legal moves of both boards are the same: nothing to tell apart"
    else:
        to_edited, to_real = len(predicted ^ edited), len(predicted ^ original)
        closer = "edited" if to_edited < to_real else "real" if to_real < to_edited else "neither"
        verdict = (
            f"{to_edited} squares differ from the edited board's legal moves, {to_real} from the real "
            f"board's: closer to the {closer} board"
        )
    warning = (
        f"\n  warning: {names(occupied)} {'is' if len(occupied) == 1 else 'are'} occupied: at this push the "
        "model's predictions break down rather than follow a board"
        if occupied
        else ""
    )
    return (
        f"{edit.text}: the probe read {reading(before_C)} → {reading(after_C)}; push {push:.2f} × |residual|\n"
        f"  legal on the real board: {names(original)}\n  legal on the edited board: {names(edited)}\n"
        f"  predicted (p > 1%) after the edit: {names(predicted)}: {verdict}{warning}"
    )


@main.command("ablate")
@click.option("--feature", "feature_id", required=True, help="The feature to scale, e.g. L2A428.")
@click.option("--scale", type=float, default=0.0, show_default=True, help="Factor (0 ablates).")
@click.option(
    "--positions", default="all", show_default=True, help="all, or one position P (0-based) to edit at."
)
@click.option("--games", "n_games", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the games.")
@click.option(
    "--top", type=click.IntRange(min=1), default=8, show_default=True, help="Logits and features listed."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_WEIGHTS
@dictionaries_option
def ablate_command(
    feature_id, scale, positions, n_games, seed, top, as_json, weights, config_file, dictionaries_dir
) -> None:
    """Scale a feature wherever it fires over many dataset games and measure the effect: top-1
    legality before and after, the mean KL of the next-move distribution (over the positions at or
    after a game's first edit), the logits that move most where it fired, and the downstream
    features whose activations change most."""
    import math

    from rich.progress import Progress

    from othello_tui.circuits.ablation import ablate_feature
    from othello_tui.circuits.edits import MAX_EDIT_NUMBER
    from othello_tui.circuits.nodes import CircuitError, parse_feature

    if not abs(scale) <= MAX_EDIT_NUMBER or not math.isfinite(scale):
        raise click.BadParameter(f"a factor within ±{MAX_EDIT_NUMBER:,.0f}", param_hint="--scale")
    if positions == "all":
        position = None
    elif positions.isdigit() and int(positions) < 59:
        position = int(positions)
    else:
        raise click.BadParameter(f"{positions!r}: all, or a position 0…58", param_hint="--positions")
    try:
        module, index = parse_feature(feature_id)
    except CircuitError as error:
        raise click.ClickException(str(error)) from None
    model, dictionaries = load_model_and_dictionaries_or_fail(
        weights, dictionaries=dictionaries_dir, config=config_file
    )
    if module not in dictionaries or index >= dictionaries[module].cfg.d_sae:
        sizes = ", ".join(f"{m} 0…{d.cfg.d_sae - 1}" for m, d in dictionaries.items())
        raise click.ClickException(f"no feature {module}{index} in the dictionaries ({sizes})")
    with Progress(transient=True, disable=as_json) as bar:
        task = bar.add_task(f"ablating {module}{index}", total=n_games)
        report = ablate_feature(
            model, dictionaries, module, index, scale, position, n_games, seed, top,
            lambda done, total: bar.update(task, completed=done),
        )  # fmt: skip
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    for line in report.lines(seed):
        click.echo(line)


@evaluate.command("circuits")
@click.option(
    "--games", "n_games", type=click.IntRange(min=1), default=20, show_default=True, help="Held-out games."
)
@click.option(
    "--positions", type=click.IntRange(min=1), default=5, show_default=True, help="Random positions per game."
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Feature contributors ablated per logit.",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=None, help="Game seed [default: the evaluation seed]."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_WEIGHTS
@dictionaries_option
def eval_circuits_command(
    n_games, positions, top, seed, as_json, weights, config_file, dictionaries_dir
) -> None:
    """Faithfulness: each top contributor's DLA against the logit drop when ablating it.

    Drops are measured with every downstream module and LayerNorm scale frozen (should equal the
    DLA), with only the LayerNorm scales frozen, and unfrozen (the total effect).
    """
    from othello_tui.circuits.faithfulness import faithfulness
    from othello_tui.model.evaluate import EVAL_SEED

    model, dictionaries = load_model_and_dictionaries_or_fail(
        weights, dictionaries=dictionaries_dir, config=config_file
    )
    report = faithfulness(model, dictionaries, n_games, positions, top, EVAL_SEED if seed is None else seed)
    summary = report.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(
        f"{summary['ablations']} ablations of the top {top} features of {summary['targets']} predicted-move logits"
    )
    click.echo(f"{'downstream':<12} {'Spearman ρ':>11} {'max |drop − DLA|':>17}")
    for mode in summary["spearman"]:
        click.echo(
            f"{mode:<12} {summary['spearman'][mode]:>11.4f} {summary['max_abs_difference'][mode]:>17.4g}"
        )
