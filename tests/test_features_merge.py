"""Sharded feature caches: the merge of the shards of a build is the file one build writes, every
count, top example, panel and label; bad shard sets get a message."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from othello_tui.features import build_cache
from othello_tui.features.merge import MergeError, merge_caches
from othello_tui.features.shard import Shard
from othello_tui.features.topk import StreamingTopK

# 3 shards of 7 batches: shard boundaries fall inside the generator's chunks and on odd batches
GAMES, SEED, TOP_K, BATCH = 100, 5, 8, 16


def _build(model, dictionaries, path, shard=None):
    return build_cache(model, dictionaries, GAMES, SEED, TOP_K, path, batch_games=BATCH, shard=shard)


@pytest.fixture(scope="module")
def one_build(tiny_model, tiny_dictionaries, tmp_path_factory):
    return _build(tiny_model, tiny_dictionaries, tmp_path_factory.mktemp("one") / "features.h5")


@pytest.fixture(scope="module")
def shards(tiny_model, tiny_dictionaries, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    return [_build(tiny_model, tiny_dictionaries, folder / f"s{i}.h5", Shard(i, 3)) for i in range(3)]


def _contents(path) -> dict[str, np.ndarray]:
    """Every dataset, by name (record fields split out)."""
    out = {}
    with h5py.File(path, "r") as f:

        def visit(name, item):
            if isinstance(item, h5py.Dataset) and not name.startswith("merge"):
                data = item[()]
                for field in data.dtype.names or [None]:
                    out[f"{name}/{field}" if field else name] = data[field] if field else data

        f.visititems(visit)
    return out


def _assert_same(expected: dict, got: dict) -> None:
    assert sorted(expected) == sorted(got)
    for name, value in expected.items():
        if name.endswith("activation_sum"):  # float64 sums added in another order
            np.testing.assert_allclose(got[name], value, rtol=1e-12, err_msg=name)
        else:
            np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_merged_shards_equal_one_build(one_build, shards, tiny_model, tiny_dictionaries, tmp_path):
    merged = merge_caches(shards[::-1], tiny_model, tiny_dictionaries, tmp_path / "merged.h5")
    expected, got = _contents(one_build), _contents(merged)
    _assert_same(expected, got)
    with h5py.File(one_build) as a, h5py.File(merged) as b:
        skip = {"created"}
        assert {k: str(v) for k, v in a.attrs.items() if k not in skip} == {
            k: str(v) for k, v in b.attrs.items() if k not in skip
        }
    assert any((got[f"modules/{m}/summary/fire_count"] > 0).any() for m in tiny_dictionaries)


def test_shards_cover_the_games_once_and_some_anchors_needed_a_recount(shards):
    ranges = [Shard(i, 3).games(GAMES, BATCH) for i in range(3)]
    assert [(r.start, r.stop) for r in ranges] == [(0, 32), (32, 64), (64, 100)]
    with h5py.File(shards[0]) as a, h5py.File(shards[1]) as b:
        differ = sum(
            int(((a[f"merge/{m}/anchor"][:] != b[f"merge/{m}/anchor"][:]) & (b[f"modules/{m}/summary"]["fire_count"] > 0)).sum())
            for m in a["merge"] if m != "predicate_pairs"
        )  # fmt: skip
    assert differ > 0  # so the test above exercised the model recount


def test_topk_merge_is_associative():
    generator = torch.Generator().manual_seed(0)
    parts = []
    for _ in range(3):
        feature = torch.randint(0, 4, (200,), generator=generator)
        token = torch.randperm(10_000, generator=generator)[:200]
        value = torch.rand(200, generator=generator).round(decimals=1) + 0.1  # ties on value
        parts.append((feature, token, value))

    def topk(*chunks):
        top = StreamingTopK(4, 5)
        for chunk in chunks:
            top.update(*chunk)
        return top

    def entries(top):
        values, tokens = top.result()
        used = tokens >= 0
        return (torch.nonzero(used)[:, 0], tokens[used], values[used])

    a, b, c = parts
    left = topk(entries(topk(a, b)), c)
    right = topk(a, entries(topk(b, c)))
    whole = topk(a, b, c)
    assert torch.equal(left.keys_FK, right.keys_FK) and torch.equal(left.keys_FK, whole.keys_FK)


@pytest.mark.parametrize("text", ["3/3", "1", "a/b", "-1/2", "0/0"])
def test_bad_shard_text(text):
    with pytest.raises(ValueError, match="i/N|must be"):
        Shard.parse(text)


def test_more_shards_than_batches_is_refused():
    with pytest.raises(ValueError, match="40 games make 3 batches of 16: at most 3 shards"):
        Shard(0, 4).games(40, 16)


def test_incomplete_or_mixed_shards_are_refused(shards, tiny_model, tiny_dictionaries, tmp_path):
    with pytest.raises(MergeError, match=r"missing \[1\]"):
        merge_caches([shards[0], shards[2]], tiny_model, tiny_dictionaries, tmp_path / "m.h5")
    with pytest.raises(MergeError, match=r"repeated \[0\]"):
        merge_caches(
            [shards[0], shards[0], shards[1], shards[2]], tiny_model, tiny_dictionaries, tmp_path / "m.h5"
        )
    other = build_cache(
        tiny_model,
        tiny_dictionaries,
        GAMES,
        SEED + 1,
        TOP_K,
        tmp_path / "o.h5",
        batch_games=BATCH,
        shard=Shard(1, 3),
    )
    with pytest.raises(MergeError, match="different builds.*seed"):
        merge_caches([shards[0], other, shards[2]], tiny_model, tiny_dictionaries, tmp_path / "m.h5")
    with pytest.raises(MergeError, match="other dictionaries"):
        merge_caches(shards, tiny_model, dict(list(tiny_dictionaries.items())[:2]), tmp_path / "m.h5")
    assert not list(tmp_path.glob("m.h5*")) and not list(tmp_path.glob(".m.h5*"))


def _cli_build(weights_dir) -> list[str]:
    """`cache build` options of a small build (300 games: 2 batches) of the tiny weights."""
    return ["--games", "300", "--top-k", "4", "--seed", "2", "--weights", str(weights_dir), "--device", "cpu"]


def test_cli_shards_and_merge_equal_cli_build(weights_dir, tmp_path):
    from click.testing import CliRunner

    from othello_tui.cli import main

    common = _cli_build(weights_dir)
    run = CliRunner().invoke
    for i in range(2):
        result = run(
            main, ["cache", "build", *common, "--shard", f"{i}/2", "--out", str(tmp_path / f"s{i}.h5")]
        )
        assert result.exit_code == 0, result.output
    result = run(main, ["cache", "merge", str(tmp_path / "s1.h5"), str(tmp_path / "s0.h5"), "--weights", str(weights_dir), "--out", str(tmp_path / "m.h5")])  # fmt: skip
    assert result.exit_code == 0 and "from 2 shards" in result.output, result.output
    assert run(main, ["cache", "build", *common, "--out", str(tmp_path / "one.h5")]).exit_code == 0
    _assert_same(_contents(tmp_path / "one.h5"), _contents(tmp_path / "m.h5"))
    result = run(main, ["cache", "merge", str(tmp_path / "s0.h5"), "--weights", str(weights_dir), "--out", str(tmp_path / "x.h5")])  # fmt: skip
    assert result.exit_code != 0 and "missing [1]" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="needs torchrun (it comes with torch)")
def test_torchrun_cache_build_equals_one_build(weights_dir, tmp_path):
    from click.testing import CliRunner

    from othello_tui.cli import main

    common = ["cache", "build", *_cli_build(weights_dir)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = ["torchrun", "--nproc-per-node", "2", "--master-port", str(port), "-m", "othello_tui", *common]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [*command, "--out", str(tmp_path / "ranks.h5")], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("from 2 processes") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ranks.h5"]  # no shard left behind
    assert CliRunner().invoke(main, [*common, "--out", str(tmp_path / "one.h5")]).exit_code == 0
    _assert_same(_contents(tmp_path / "one.h5"), _contents(tmp_path / "ranks.h5"))
