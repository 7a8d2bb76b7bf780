"""The attribution-graph JSON (Neuronpedia's viewer, circuit-tracer): the schema's required fields
and types, links that are the tree's exact contributions and sum to each expanded node's value,
QK pairs in ``qk_tracing_results`` form; a graph pruned as circuit-tracer prunes, its links the
exact contributions; and ``trace --graph``."""

from __future__ import annotations

import json
import math
import shutil
from collections import defaultdict

import pytest
from click.testing import CliRunner

from othello_tui.circuits.graph import build_graph
from othello_tui.circuits.graph_json import trace_attribution_graph, trace_graph
from othello_tui.circuits.nodes import Target, parse_target
from othello_tui.circuits.provenance import Provenance
from othello_tui.circuits.pruning import GraphSettings, prune
from othello_tui.circuits.trace import GameTrace
from othello_tui.cli import main
from othello_tui.dictionary.io import save_dictionary
from othello_tui.game.generator import generate_games
from othello_tui.game.squares import SQUARE_TO_TOKEN, square_name
from othello_tui.model.weights import model_fingerprint

SQUARES = [int(s) for s in generate_games(1, 5).squares[0][:16]]
MOVES = [square_name(s) for s in SQUARES]

# graph-schema.json (Neuronpedia, apps/webapp/app/api/graph/): required fields and their JSON types
REQUIRED_TOP = {"metadata": dict, "qParams": dict, "nodes": list, "links": list}
REQUIRED_METADATA = {"slug": str, "scan": str, "prompt_tokens": list, "prompt": str}
REQUIRED_NODE = {
    "node_id": str,
    "feature": (int, type(None)),
    "layer": (str, int),
    "ctx_idx": int,
    "feature_type": str,
    "jsNodeId": str,
    "clerp": str,
}
OPTIONAL_NODE = {"influence": (float, int, type(None)), "activation": (float, int, type(None))}
REQUIRED_LINK = {"source": str, "target": str, "weight": (float, int)}


def has_fields(item: dict, fields: dict, required: bool = True) -> bool:
    present = all(key in item for key in fields) if required else True
    typed = all(
        isinstance(item[key], kind) and not isinstance(item[key], bool)
        for key, kind in fields.items()
        if key in item
    )
    return present and typed


def check_schema(graph: dict) -> None:
    """Every field graph-schema.json requires, with its type; links name existing nodes."""
    assert has_fields(graph, REQUIRED_TOP)
    assert has_fields(graph["metadata"], REQUIRED_METADATA)
    assert all(isinstance(token, str) for token in graph["metadata"]["prompt_tokens"])
    qparams = graph["qParams"]
    assert all(isinstance(qparams[key], list) for key in ("pinnedIds", "supernodes") if key in qparams)
    assert all(isinstance(qparams[key], str) for key in ("linkType", "clickedId", "sg_pos") if key in qparams)
    for node in graph["nodes"]:
        assert has_fields(node, REQUIRED_NODE) and has_fields(node, OPTIONAL_NODE, required=False), node
        assert node["layer"] == "E" or isinstance(node["layer"], int), node
    ids = [node["node_id"] for node in graph["nodes"]]
    assert len(set(ids)) == len(ids)
    for link in graph["links"]:
        assert has_fields(link, REQUIRED_LINK) and {link["source"], link["target"]} <= set(ids), link


@pytest.fixture(scope="module")
def trace(tiny_model, tiny_dictionaries):
    return GameTrace(tiny_model, tiny_dictionaries, [int(SQUARE_TO_TOKEN[s]) for s in SQUARES])


def provenance_for(trace, target: Target, top: int, depth: int) -> Provenance:
    return Provenance(
        " ".join(MOVES),
        target.position,
        target.spec,
        top,
        None,
        depth,
        model_fingerprint(trace.model),
        "d" * 16,
    )


def graph_of(trace, text: str, position: int, top: int, depth: int, label_of=None) -> tuple[dict, object]:
    target = parse_target(text, position)
    expansion = trace.expand(target, depth, top)
    return trace_graph(trace, expansion, provenance_for(trace, target, top, depth), label_of, top), expansion


def tree_links(expansion) -> dict[tuple[str, str], float]:
    """(contributor, parent) -> contribution over the whole tree, computed from the tree alone."""
    links = {}

    def walk(parent: str, level) -> None:
        for branch in level.branches:
            links[(branch.node.id, parent)] = branch.contribution
            if branch.expansion is not None:
                walk(branch.node.id, branch.expansion)

    walk(expansion.target.id, expansion)
    return links


def test_a_logit_graph_has_the_schemas_fields_and_the_trees_exact_links(trace):
    graph, expansion = graph_of(trace, "logit:c-4", 12, top=6, depth=3, label_of=lambda f: f"label {f}")
    check_schema(graph)
    metadata = graph["metadata"]
    assert metadata["prompt_tokens"] == MOVES[:13] and metadata["prompt"] == " ".join(MOVES[:13])
    assert metadata["provenance"]["moves"] == " ".join(MOVES)
    assert (
        metadata["slug"] == provenance_for(trace, expansion.target, 6, 3).file_stem("P12logit:c-4") + ".graph"
    )
    assert model_fingerprint(trace.model) in metadata["scan"] and "d" * 16 in metadata["info"]["description"]
    links = {(link["source"], link["target"]): link["weight"] for link in graph["links"]}
    assert links == tree_links(expansion) and len(graph["links"]) == len(links)  # merged, no duplicates
    nodes = {node["node_id"]: node for node in graph["nodes"]}
    root = nodes["P12logit:c-4"]
    probability = float(trace.logits_TV[12].softmax(-1)[parse_target("logit:c-4", 12).token])
    assert (
        root["feature_type"] == "logit"
        and root["is_target_logit"]
        and root["layer"] == trace.model.cfg.n_layers
    )
    assert root["token_prob"] == pytest.approx(probability) and f"(p={probability:.3f})" in root["clerp"]
    assert root["activation"] == pytest.approx(trace.target_value(parse_target("logit:c-4", 12)))
    for node_id, node in nodes.items():
        if node["feature_type"] in ("lorsa", "cross layer transcoder"):
            feature = trace.node(node_id)
            assert node["activation"] == trace.activation(feature.position, feature.module, feature.feature)
            assert node["feature"] == feature.feature and node["layer"] == int(feature.module[1])
            assert node["clerp"] == f"{feature.feature_id}: label {feature.feature_id}"
            assert node["feature_type"] == (
                "lorsa" if feature.module.endswith("A") else "cross layer transcoder"
            )
        elif node_id != root["node_id"]:
            assert node["activation"] is None and node["feature"] is None
    assert {nodes[f"P{p}embed"]["layer"] for p in range(13) if f"P{p}embed" in nodes} <= {"E"}
    shares = [node["influence"] for node in graph["nodes"][1:]]
    assert root["influence"] is None and max(shares) == 1.0 and all(0 < s <= 1 for s in shares)


def test_links_into_every_expanded_node_sum_to_its_value(trace):
    graph, _ = graph_of(trace, "logit:c-4", 12, top=5, depth=3)
    into = defaultdict(list)
    for link in graph["links"]:
        into[link["target"]].append(link["weight"])
    expanded = [node for node in graph["nodes"] if "sum" in node]
    assert len(expanded) > 2
    for node in expanded:
        assert math.fsum(into[node["node_id"]]) + node["others"] == pytest.approx(
            node["sum"], rel=1e-6, abs=1e-6
        )
        assert node["sum"] == pytest.approx(node["activation"], rel=1e-4, abs=1e-4)
    assert all(node["node_id"] not in into for node in graph["nodes"] if "sum" not in node)


def test_with_every_contributor_shown_the_links_alone_sum_to_the_value(trace):
    feature, _ = trace.active_features(6, "L1M")[0]
    graph, _ = graph_of(trace, f"feature:L1M{feature}", 6, top=100_000, depth=1)
    check_schema(graph)
    root = graph["nodes"][0]
    assert root["others"] == pytest.approx(0, abs=1e-6) and len(graph["links"]) == len(graph["nodes"]) - 1
    assert root["feature_type"] == "feature pre-activation" and root["layer"] == 1
    assert math.fsum(link["weight"] for link in graph["links"]) == pytest.approx(root["activation"], rel=1e-5)
    nodes = {node["node_id"]: node for node in graph["nodes"]}
    for bias, layer in (("P6L1M.b_enc", 1), ("P6blocks.1.ln2.b", 1), ("P6L0A.bias", 0), ("P6L1A.bias", 1)):
        assert nodes[bias]["feature_type"] == "bias" and nodes[bias]["layer"] == layer
    assert nodes["P6L0A.error"]["feature_type"] == "lorsa error" and nodes["P6L0A.error"]["layer"] == 0
    assert nodes["P6L0M.error"]["feature_type"] == "mlp reconstruction error"
    assert nodes["P6embed"]["feature_type"] == "embedding" and nodes["P6embed"]["layer"] == "E"
    assert nodes["P6pos"]["feature_type"] == "positional embedding" and nodes["P6pos"]["layer"] == "E"
    assert {"lorsa", "cross layer transcoder"} <= {node["feature_type"] for node in graph["nodes"]}


def test_a_score_graph_carries_the_qk_pairs_in_neuronpedias_form(trace):
    graph, expansion = graph_of(trace, "score:L1H2:4", 9, top=4, depth=1)
    check_schema(graph)
    root = graph["nodes"][0]
    results = root["qk_tracing_results"]
    pairs = results["pair_wise_contributors"]
    assert [[b.node.parts[0].id, b.node.parts[1].id, b.contribution] for b in expansion.branches] == pairs
    assert math.fsum(weight for _, _, weight in pairs) + root["others"] == pytest.approx(
        root["sum"], abs=1e-6
    )
    every = trace.contributions(parse_target("score:L1H2:4", 9)).top(None)
    for side, index in (("top_q_marginal_contributors", 0), ("top_k_marginal_contributors", 1)):
        marginal = defaultdict(float)
        for node, value in every:
            marginal[node.parts[index].id] += value
        assert len(results[side]) == 4
        for node_id, value in results[side]:
            assert value == pytest.approx(marginal[node_id], abs=1e-5)
    named = {node_id for q, k, _ in pairs for node_id in (q, k)}
    named |= {
        node_id
        for side in ("top_q_marginal_contributors", "top_k_marginal_contributors")
        for node_id, _ in results[side]
    }
    assert named == set(graph["qk_only_nodes"]) and all(q.startswith("P9") for q, _, _ in pairs)
    for node_id, node in graph["qk_only_nodes"].items():
        assert has_fields(node, REQUIRED_NODE) and node["node_id"] == node_id
        if node["feature"] is not None:
            feature = trace.node(node_id)
            assert node["activation"] == trace.activation(feature.position, feature.module, feature.feature)


@pytest.fixture(scope="module")
def weights_folder(tmp_path_factory, tiny_weights, tiny_model, tiny_dictionaries):
    folder = tmp_path_factory.mktemp("graph_weights")
    for name in ("othello_gpt.safetensors", "othello_gpt.json"):
        shutil.copy(tiny_weights / name, folder / name)
    for dictionary in tiny_dictionaries.values():
        save_dictionary(
            dictionary, folder / "dictionaries", {"model_fingerprint": model_fingerprint(tiny_model)}
        )
    return folder


def full_graph(trace, text: str, position: int, settings: GraphSettings) -> tuple[dict, object]:
    target = parse_target(text, position)
    built = build_graph(trace, target, settings.max_features)
    provenance = Provenance.of_graph(
        " ".join(MOVES), position, target.spec, settings, model_fingerprint(trace.model), "d" * 16
    )
    return trace_attribution_graph(trace, built, provenance, settings), built


def test_a_pruned_graph_keeps_circuit_tracers_nodes_and_links_with_their_exact_weights(trace):
    settings = GraphSettings(30, 0.7, 0.9)
    graph, built = full_graph(trace, "logit:c-4", 12, settings)
    check_schema(graph)
    metadata = graph["metadata"]
    assert metadata["node_threshold"] == 0.7
    assert metadata["pruning_settings"] == {"node_threshold": 0.7, "edge_threshold": 0.9}
    assert metadata["generation_settings"] == {"max_feature_nodes": 30, "expanded_features": 30}
    assert metadata["slug"].startswith("graph-moves16-") and metadata["slug"].endswith("P12logit-c-4")
    assert metadata["provenance"]["commands"] == [
        f"othello-tui trace --moves '{' '.join(MOVES)}' --pos 12 --target logit:c-4 --graph --graph-nodes 30 "
        "--node-threshold 0.7 --edge-threshold 0.9"
    ]
    pruned = prune(built.category_N, built.edges, 0, 0.7, 0.9)
    index = {node.id: n for n, node in enumerate(built.nodes)}
    weights = {
        (built.nodes[s].id, built.nodes[t].id): w
        for t, s, w in zip(built.edges.target_E, built.edges.source_E, built.edges.weight_E, strict=True)
    }
    kept = {key for e, key in enumerate(weights) if pruned.edge_mask_E[e]}
    written = {(link["source"], link["target"]): link["weight"] for link in graph["links"]}
    assert written == {key: weights[key] for key in kept} and 0 < len(kept) < len(weights)
    touched = {node_id for link in kept for node_id in link} | {built.target.id}
    nodes = {node["node_id"]: node for node in graph["nodes"]}
    assert set(nodes) == {node_id for node_id in touched if pruned.node_mask_N[index[node_id]]}
    assert nodes[built.target.id]["influence"] is None
    for node_id, node in nodes.items():
        if node_id != built.target.id:
            assert node["influence"] == pytest.approx(pruned.shares_N[index[node_id]])
        if index[node_id] in built.expanded:
            shown = math.fsum(w for (_, t), w in written.items() if t == node_id)
            assert shown + node["others"] == pytest.approx(node["sum"], rel=1e-9, abs=1e-9)
            assert node["sum"] == pytest.approx(node["activation"], rel=1e-5, abs=1e-5)
        if node_id.endswith(".rest"):
            assert (
                node["feature_type"] == "unexpanded features"
                and "features outside the graph" in node["clerp"]
            )


def test_with_thresholds_of_1_the_graph_keeps_every_link(trace):
    graph, built = full_graph(trace, "logit:c-4", 12, GraphSettings(20, 1.0, 1.0))
    assert len(graph["links"]) == len(built.edges.weight_E)
    assert all(node["others"] == pytest.approx(0, abs=1e-9) for node in graph["nodes"] if "others" in node)


def test_trace_graph_prints_the_attribution_graph(weights_folder, trace):
    args = ["trace", "--moves", " ".join(MOVES), "--pos", "12", "--target", "logit:c-4"]
    args += ["--weights", str(weights_folder)]
    result = CliRunner().invoke(main, [*args, "--graph", "--graph-nodes", "12", "--edge-threshold", "0.9"])
    assert result.exit_code == 0, result.output
    graph = json.loads(result.output)
    check_schema(graph)
    expected, _ = full_graph(trace, "logit:c-4", 12, GraphSettings(12, 0.8, 0.9))
    assert {(link["source"], link["target"]): link["weight"] for link in graph["links"]} == pytest.approx(
        {(link["source"], link["target"]): link["weight"] for link in expected["links"]}
    )
    assert graph["metadata"]["provenance"]["commands"] == expected["metadata"]["provenance"]["commands"]
    alone = CliRunner().invoke(main, [*args, "--node-threshold", "0.5"])
    assert alone.exit_code == 2 and "--node-threshold go with --graph" in alone.output
    both = CliRunner().invoke(main, [*args, "--graph", "--json"])
    assert both.exit_code == 2 and "exclude each other" in both.output and "Traceback" not in both.output


def test_trace_graph_of_a_score_is_its_trees_graph_with_the_qk_pairs(weights_folder, trace):
    args = ["trace", "--moves", " ".join(MOVES), "--pos", "9", "--target", "score:L1H2:4", "--top", "4"]
    result = CliRunner().invoke(main, [*args, "--weights", str(weights_folder), "--graph"])
    assert result.exit_code == 0, result.output
    graph = json.loads(result.output)
    check_schema(graph)
    expected, _ = graph_of(trace, "score:L1H2:4", 9, top=4, depth=1)
    assert graph["nodes"][0]["qk_tracing_results"] == pytest.approx(
        expected["nodes"][0]["qk_tracing_results"]
    )


def test_influence_is_circuit_tracers_cumulative_share():
    """A hand-made tree: P3logit:c-4 ← a (+3), b (−1); a ← c (+2). Normalised |weights|: a 0.75,
    b 0.25 into the root, c 1 into a; influence w·(A + A² + …): 0.75, 0.75 (c through a), 0.25,
    and the root's own 0 (circuit-tracer writes none for its logits)."""
    from othello_tui.circuits.graph_json import expansion_to_graph
    from othello_tui.circuits.nodes import Node
    from othello_tui.circuits.tree import Branch, Expansion

    root = parse_target("logit:c-4", 3)
    a, b, c = (Node(f"P3L1M{n}", 3, "feature", "L1M", n) for n in (1, 2, 3))
    below_a = Expansion(a.as_target(), 2.0, 2.0, [Branch(c, 2.0)], 0.0)
    expansion = Expansion(root, 2.0, 2.0, [Branch(a, 3.0, below_a), Branch(b, -1.0)], 0.0)
    provenance = Provenance("f-4 f-3 e-2 c-4", 3, root.spec, 2, None, 2, "m" * 16, "d" * 16)
    graph = expansion_to_graph(expansion, provenance, 6, {a.id: 2.0, b.id: 1.0, c.id: 2.0}, 0.5)
    check_schema(graph)
    shares = {node["node_id"]: node["influence"] for node in graph["nodes"]}
    assert shares.pop(root.id) is None
    assert shares == pytest.approx({a.id: 0.75 / 1.75, c.id: 1.5 / 1.75, b.id: 1.0})
    assert graph["metadata"]["prompt_tokens"] == ["f-4", "f-3", "e-2", "c-4"]
    assert graph["nodes"][0]["clerp"] == 'Output "c-4" (p=0.500)'
