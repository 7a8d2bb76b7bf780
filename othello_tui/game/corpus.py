"""The game corpus in HDF5: a public contract (see ``othello-tui games --help``).

The file is written under a temporary name and renamed once complete, so an interrupted run
never leaves a half file behind.

Every dataset is stored in chunks of ``CHUNK_GAMES`` games with HDF5's standard deflate (gzip)
filter, so any HDF5 reader opens it. The chunks are compressed here rather than by HDF5: by
ISA-L's deflate (``isal``, four times faster than zlib at a better ratio on these labels), in
worker threads that release the GIL while the next games are generated, and handed to HDF5 as
ready chunks (``write_direct_chunk``, https://docs.h5py.org/en/stable/high/dataset.html).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
from isal import isal_zlib
from rich.progress import Progress

from othello_tui.game.generator import N_MOVES, GameBatch, iter_games

FORMAT_VERSION = 1
DATASETS: dict[str, tuple[type, tuple[int, ...], Callable[[GameBatch], np.ndarray]]] = {
    # name: (dtype, per-move trailing shape, the labels of a batch of games)
    "tokens": (np.uint8, (), lambda games: games.tokens),
    "squares": (np.int8, (), lambda games: games.squares),
    "player": (np.int8, (), lambda games: games.player),
    "board": (np.int8, (64,), GameBatch.board),
    "flipped": (bool, (64,), GameBatch.flipped_mask),
    "legal": (bool, (64,), GameBatch.legal_mask),
}
CHUNK_GAMES = 1024  # games per HDF5 chunk (at most): 3.75 MiB of a [N, 60, 64] dataset
DEFLATE_LEVEL = 1
_WORKERS = 2
_BATCHES_IN_FLIGHT = 2  # bounds the memory held by labels waiting to be compressed


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it to ``path`` only if the block succeeds."""
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def deflate_chunks(labels: np.ndarray, chunk_rows: int) -> list[bytes]:
    """``labels`` cut into chunks of ``chunk_rows`` along axis 0, each compressed as HDF5's deflate
    filter would store it (a zlib stream). A short last chunk is padded with zeros to the full
    chunk shape, as HDF5 stores edge chunks; readers never see the padding."""
    chunks = []
    for start in range(0, len(labels), chunk_rows):
        chunk = labels[start : start + chunk_rows]
        if len(chunk) < chunk_rows:
            chunk = np.concatenate(
                [chunk, np.zeros((chunk_rows - len(chunk), *chunk.shape[1:]), chunk.dtype)]
            )
        chunks.append(isal_zlib.compress(np.ascontiguousarray(chunk), DEFLATE_LEVEL))
    return chunks


def _deflated_labels(
    labels: Callable[[GameBatch], np.ndarray], games: GameBatch, chunk_rows: int
) -> list[bytes]:
    return deflate_chunks(labels(games), chunk_rows)


def write_corpus(path: Path, n_games: int, seed: int, show_progress: bool = True) -> None:
    chunk_rows = min(n_games, CHUNK_GAMES)  # a chunk may not be longer than its dataset
    with (
        atomic_path(Path(path)) as tmp,
        h5py.File(tmp, "w") as f,
        Progress(disable=not show_progress) as bar,
        ThreadPoolExecutor(_WORKERS) as pool,
    ):
        f.attrs.update(seed=seed, n_games=n_games, format_version=FORMAT_VERSION)
        datasets = {
            name: f.create_dataset(
                name,
                (n_games, N_MOVES, *shape),
                dtype=dtype,
                chunks=(chunk_rows, N_MOVES, *shape),
                compression="gzip",
                compression_opts=DEFLATE_LEVEL,
            )
            for name, (dtype, shape, _) in DATASETS.items()
        }
        task = bar.add_task("games", total=n_games)
        pending: deque[tuple[int, int, dict[str, Future[list[bytes]]]]] = deque()

        def write_oldest() -> None:
            start, count, futures = pending.popleft()
            for name, future in futures.items():
                trailing = (0,) * (datasets[name].ndim - 1)
                for k, chunk in enumerate(future.result()):
                    datasets[name].id.write_direct_chunk((start + k * chunk_rows, *trailing), chunk)
            bar.update(task, completed=start + count)

        start = 0  # a multiple of chunk_rows: generator batches hold whole chunks
        for games in iter_games(n_games, seed):
            futures = {
                name: pool.submit(_deflated_labels, labels, games, chunk_rows)
                for name, (_, _, labels) in DATASETS.items()
            }
            pending.append((start, len(games), futures))
            start += len(games)
            if len(pending) > _BATCHES_IN_FLIGHT:
                write_oldest()
        while pending:
            write_oldest()


def read_corpus(path: Path) -> dict[str, np.ndarray]:
    """Every dataset as an array, plus ``attrs``."""
    with h5py.File(path, "r") as f:
        data = {name: f[name][()] for name in DATASETS}
        data["attrs"] = dict(f.attrs)
    return data
