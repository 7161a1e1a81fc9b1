"""Whole scenes as windows: the grid of windows over a scene, and the dataset that reads them.

The scene's rows are read in blocks (a tile row of its finest file, see :mod:`.raster_rows`), each block
by one process and DataLoader worker: the blocks of all scenes are dealt out in contiguous runs, first
among the processes (``rank`` of ``world_size``), then among each process's workers. A block is read
once and cut into every window that starts in it; batches of windows leave the worker ready-made.
"""

import itertools
import math
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from eurosat_finetune.data.predict_batches import SCENE_WINDOWS
from eurosat_finetune.data.scenes.sources import SceneSource

MIN_VALID = 0.5  # a window with less than this fraction of pixels holding data is a no-data cell of the map

# Lightning warns that an IterableDataset's length may be wrong with several workers; this one deals its
# blocks to the workers itself, so its length (the batches of this process) is exact.
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")
# and its batches come ready-made (batch_size=None), so Lightning cannot infer their size, which it needs
# only to log metrics (predict logs none)
warnings.filterwarnings("ignore", message="Couldn't infer the batch indices fetched")


def window_origin(index: int, stride: int, tile_size: int, extent: int) -> int:
    """Where window ``index`` starts along a side of ``extent`` px: every ``stride`` px, the last one
    aligned to the edge, so that the windows cover the whole side."""
    return min(index * stride, extent - tile_size)


def windows_along(extent: int, stride: int, tile_size: int) -> int:
    """How many windows cover a side of ``extent`` px (the last aligned to the edge)."""
    return -(-(extent - tile_size) // stride) + 1


@dataclass(frozen=True)
class Scene:
    """A scene to map and its windows' grid."""

    source: SceneSource
    rows: int  # window origins down (every ``stride`` pixels, the last aligned to the bottom edge)
    cols: int  # window origins across (the last aligned to the right edge)

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def height(self) -> int:
        return self.source.height

    @property
    def width(self) -> int:
        return self.source.width

    @property
    def windows(self) -> int:
        return self.rows * self.cols


@dataclass(frozen=True)
class Block:
    """Window rows ``first..last`` (exclusive) of scene ``scene``, read together, within a ``group`` of
    blocks under one tile row of the scene's coarser files."""

    scene: int
    first: int
    last: int
    group: int = 0


class SceneWindows(IterableDataset):
    """Every window of every scene, in batches of ``batch_size`` windows of one block, as ``{"kind":
    "scene_windows", "images": (B, C, t, t) tensor, "scene", "row", "col", "valid"}`` (see
    :mod:`.predict_batches`): pixels in the model's units (uint8 RGB, or multispectral reflectance x
    10,000 as int32); ``valid`` is false for a window less than half of which holds data. This process
    reads the blocks of its ``rank`` only; each of its DataLoader workers a contiguous part of them."""

    def __init__(
        self, scenes: list[Scene], tile_size: int, stride: int, batch_size: int, rank: int = 0, world_size: int = 1
    ) -> None:
        self.scenes, self.tile_size, self.stride, self.batch_size = scenes, tile_size, stride, batch_size
        blocks = [block for i, scene in enumerate(scenes) for block in self.blocks_of(i, scene)]
        self.blocks = split_for(blocks, world_size)
        self.own = dealt(self.blocks, self.block_windows, rank, world_size)

    def blocks_of(self, index: int, scene: Scene) -> list[Block]:
        """The scene's window rows grouped by the block of grid rows their windows start in."""
        rows, deal = max(self.stride, scene.source.block_rows()), max(self.stride, scene.source.deal_rows())
        tops = [window_origin(r, self.stride, self.tile_size, scene.height) for r in range(scene.rows)]
        edges = [r for r in range(scene.rows) if r == 0 or tops[r] // rows != tops[r - 1] // rows] + [scene.rows]
        return [Block(index, first, last, tops[first] // deal) for first, last in itertools.pairwise(edges)]

    def block_windows(self, block: Block) -> int:
        return (block.last - block.first) * self.scenes[block.scene].cols

    def block_batches(self, block: Block) -> int:
        return math.ceil(self.block_windows(block) / self.batch_size)

    def __len__(self) -> int:
        """The batches this process yields (all its workers together). A process with none (fewer window
        rows than processes) has no length, so Lightning does not refuse it as empty."""
        batches = sum(self.block_batches(block) for block in self.own)
        if not batches:
            raise TypeError("this process reads no windows")
        return batches

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = get_worker_info()
        mine = self.own if worker is None else dealt(self.own, self.block_windows, worker.id, worker.num_workers)
        try:
            for i, block in enumerate(mine):
                yield from self.batches(block)
                if i + 1 == len(mine) or mine[i + 1].scene != block.scene:  # done with this scene: let it go
                    self.scenes[block.scene].source.close()
        finally:
            for scene in self.scenes:
                scene.source.close()

    def batches(self, block: Block) -> Iterator[dict[str, Any]]:
        """Read the block's rows once; cut them into its windows, ``batch_size`` at a time."""
        scene, t = self.scenes[block.scene], self.tile_size
        tops = [window_origin(r, self.stride, t, scene.height) for r in range(block.first, block.last)]
        pixels, valid = scene.source.read_rows(tops[0], tops[-1] + t)
        rgb, in_worker = pixels.dtype == np.uint8, get_worker_info() is not None
        places = [(r, c) for r in range(block.first, block.last) for c in range(scene.cols)]
        for start in range(0, len(places), self.batch_size):
            batch = places[start : start + self.batch_size]
            ys = [tops[r - block.first] - tops[0] for r, _ in batch]
            xs = [window_origin(c, self.stride, t, scene.width) for _, c in batch]
            # uint16 reflectance travels as int32, which every tensor op knows
            images = torch.empty((len(batch), len(pixels), t, t), dtype=torch.uint8 if rgb else torch.int32)
            if in_worker:  # cut straight into shared memory: the DataLoader then passes it on without a copy
                images.share_memory_()
            cut = images.numpy()
            for i, (y, x) in enumerate(zip(ys, xs, strict=True)):
                cut[i] = pixels[:, y : y + t, x : x + t]
            covered = np.array([valid[y : y + t, x : x + t].mean() for y, x in zip(ys, xs, strict=True)])
            yield {
                "kind": SCENE_WINDOWS,
                "images": images,
                "scene": torch.full((len(batch),), block.scene),
                "row": torch.tensor([r for r, _ in batch]),
                "col": torch.tensor([c for _, c in batch]),
                "valid": torch.from_numpy(covered >= MIN_VALID),
            }


def dealt(blocks: list[Block], weight: Any, part: int, parts: int) -> list[Block]:
    """Part ``part`` of ``parts`` contiguous runs of ``blocks`` holding about as many windows each. Where
    a group holds several blocks (a tile row of coarser files), runs are cut inside it: the two readers
    then share that tile row, while a cut between groups would have each decode the other's for the
    resampling's margin. Elsewhere (one block a group, or a new scene) any cut will do."""
    if parts == 1:
        return list(blocks)
    before = np.concatenate([[0], np.cumsum([weight(block) for block in blocks])])  # windows before each block
    sizes = Counter((block.scene, block.group) for block in blocks)
    pairs = enumerate(itertools.pairwise(blocks), 1)
    cuts = [
        0,
        *(
            i
            for i, (a, b) in pairs
            if a.scene != b.scene or a.group == b.group or sizes[(a.scene, a.group)] == sizes[(b.scene, b.group)] == 1
        ),
    ]

    def cut(k: int) -> int:
        if k == parts:
            return len(blocks)
        return min(cuts, key=lambda i: abs(before[i] - before[-1] * k / parts))

    return blocks[cut(part) : cut(part + 1)]


def split_for(blocks: list[Block], readers: int) -> list[Block]:
    """``blocks``, the largest split by window rows until there are at least ``readers`` of them (where
    they can be): every process then has windows to read (a small scene on many devices)."""
    blocks = list(blocks)
    while len(blocks) < readers:
        i = max(range(len(blocks)), key=lambda j: blocks[j].last - blocks[j].first, default=None)
        if i is None or blocks[i].last - blocks[i].first < 2:
            break
        block = blocks[i]
        middle = (block.first + block.last) // 2
        blocks[i : i + 1] = [replace(block, last=middle), replace(block, first=middle)]
    return blocks
