"""Whole scenes as windows: the grid of windows (and of map cells) over a scene, and the dataset that reads them.

The scene's rows are read in blocks (a tile row of its finest file, see :mod:`.raster_rows`), each block
by one process and DataLoader worker: the blocks of all scenes are dealt out in contiguous runs, first
among the processes (``rank`` of ``world_size``), then among each process's workers. A block is read
once and cut into every window that starts in it; batches of windows leave the worker ready-made.
"""

import itertools
import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from rasterio.transform import Affine
from torch.utils.data import IterableDataset, get_worker_info

from eurosat_finetune.data.predict_batches import SCENE_WINDOWS
from eurosat_finetune.data.scenes.raster_rows import Grid
from eurosat_finetune.data.scenes.sources import SceneSource
from eurosat_finetune.errors import UnreadableImageError

MIN_VALID = 0.5  # a window with less than this fraction of pixels holding data is a no-data cell of the map

# Lightning warns that an IterableDataset's length may be wrong with several workers; this one deals its
# blocks to the workers itself, so its length (the batches of this process) is exact.
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")
# and its batches come ready-made (batch_size=None), so Lightning cannot infer their size, which it needs
# only to log metrics (predict logs none)
warnings.filterwarnings("ignore", message="Couldn't infer the batch indices fetched")


def window_origin(index: int, stride: int, window_size: int, extent: int) -> int:
    """Where window ``index`` starts along a side of ``extent`` px: every ``stride`` px, the last one
    aligned to the edge, so that the windows cover the whole side."""
    return min(index * stride, extent - window_size)


def windows_along(extent: int, stride: int, window_size: int) -> int:
    """How many windows cover a side of ``extent`` px (the last aligned to the edge)."""
    return -(-(extent - window_size) // stride) + 1


@dataclass(frozen=True)
class Scene:
    """A scene to map, and the grid laid over it: windows of ``window_size`` px every ``stride`` px (the
    last of each row and column aligned to the scene's edge, so that they cover it all), and the map's
    cells, one per stride step from the scene's origin (the last row and column may reach past its edge).
    What the map needs of the scene, its georeferencing, tags and preview, is asked of it here."""

    source: SceneSource
    window_size: int
    stride: int

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def rows(self) -> int:
        """Windows down."""
        return windows_along(self.source.height, self.stride, self.window_size)

    @property
    def cols(self) -> int:
        """Windows across."""
        return windows_along(self.source.width, self.stride, self.window_size)

    @property
    def window_count(self) -> int:
        return self.rows * self.cols

    def top(self, row: int) -> int:
        """The first pixel row of window row ``row``."""
        return window_origin(row, self.stride, self.window_size, self.source.height)

    def left(self, col: int) -> int:
        """The first pixel column of window column ``col``."""
        return window_origin(col, self.stride, self.window_size, self.source.width)

    @property
    def map_grid(self) -> Grid:
        """The map's grid: the scene's CRS, one cell per stride step."""
        grid, stride = self.source.grid, self.stride
        shape = (-(-grid.height // stride), -(-grid.width // stride))
        return Grid(grid.crs, grid.transform @ Affine.scale(stride), *shape)

    def cells(self, row: int, col: int) -> tuple[slice, slice]:
        """The map cells window ``(row, col)`` fills: those its pixels fall in, except that the last window
        of a row or column (aligned to the edge, so off the stride's steps) fills only the cells no other
        window covers; without overlap, every cell is then its own window's class."""
        return self._cells(row, self.rows, self.top), self._cells(col, self.cols, self.left)

    def _cells(self, index: int, count: int, origin: Callable[[int], int]) -> slice:
        start, stride = origin(index), self.stride
        first, end = start // stride, (start + self.window_size - 1) // stride + 1
        if index == count - 1 and index > 0 and start % stride:  # aligned to the edge
            first = max(first, (origin(index - 1) + self.window_size - 1) // stride + 1)
        return slice(first, end)

    def tags(self) -> dict[str, str]:
        """What the map records of where its pixels came from."""
        return self.source.tags()

    def preview(self, max_side: int) -> np.ndarray:
        """The scene as true colour, ``(3, h, w)`` at most ``max_side`` px a side (a whole fraction of its
        size): uint8 as the model sees it, or reflectance."""
        scale = max(1, math.ceil(max(self.source.width, self.source.height) / max_side))
        return self.source.preview(max(1, self.source.height // scale), max(1, self.source.width // scale))


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
    10,000 as int32); ``scene`` indexes :attr:`scenes`; ``valid`` is false for a window less than half of
    which holds data. This process reads the blocks of its ``rank`` only; each of its DataLoader workers
    a contiguous part of them. Each process holds every scene, so any of them can write any map."""

    def __init__(
        self,
        scenes: list[Scene],
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        left_out: list[str] | None = None,
    ) -> None:
        self.scenes, self.batch_size = scenes, batch_size
        self.left_out = list(left_out or [])  # scenes that could not be opened, each with why: said at the end
        blocks = [block for i, scene in enumerate(scenes) for block in self.blocks_of(i, scene)]
        self.blocks = split_for(blocks, world_size)
        self.own = dealt(self.blocks, self.window_count_in, rank, world_size)

    @staticmethod
    def blocks_of(index: int, scene: Scene) -> list[Block]:
        """The scene's window rows grouped by the block of grid rows their windows start in."""
        rows, deal = max(scene.stride, scene.source.block_rows()), max(scene.stride, scene.source.deal_rows())
        above = scene.source.rows_above  # blocks begin where the files' tile rows do
        tops = [above + scene.top(r) for r in range(scene.rows)]
        edges = [r for r in range(scene.rows) if r == 0 or tops[r] // rows != tops[r - 1] // rows] + [scene.rows]
        return [Block(index, first, last, tops[first] // deal) for first, last in itertools.pairwise(edges)]

    def window_count_in(self, block: Block) -> int:
        return (block.last - block.first) * self.scenes[block.scene].cols

    @property
    def own_window_count(self) -> int:
        """The windows this process reads (all its workers together)."""
        return sum(self.window_count_in(block) for block in self.own)

    def batch_count_in(self, block: Block) -> int:
        return math.ceil(self.window_count_in(block) / self.batch_size)

    def __len__(self) -> int:
        """The batches this process yields (all its workers together). A process with none (fewer window
        rows than processes) has no length, so Lightning does not refuse it as empty."""
        batches = sum(self.batch_count_in(block) for block in self.own)
        if not batches:
            raise TypeError("this process reads no windows")
        return batches

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = get_worker_info()
        mine = self.own if worker is None else dealt(self.own, self.window_count_in, worker.id, worker.num_workers)
        failed: set[int] = set()
        try:
            for i, block in enumerate(mine):
                if block.scene not in failed:
                    try:
                        yield from self.batches(block)
                    except UnreadableImageError as err:  # a band file failing after GDAL's retries: this scene
                        failed.add(block.scene)  # only; its map is not written, the others' are
                        yield self.failure(block.scene, str(err))
                if i + 1 == len(mine) or mine[i + 1].scene != block.scene:  # done with this scene: let it go
                    self.scenes[block.scene].source.close()
        finally:
            for scene in self.scenes:
                scene.source.close()

    def failure(self, scene: int, why: str) -> dict[str, Any]:
        """A batch of no windows saying that scene ``scene`` could not be read, and why (see
        :mod:`.predict_batches`): it takes the place of the failed block's batches."""
        channels, t = len(self.scenes[scene].source.channels), self.scenes[scene].window_size
        none = torch.empty(0, dtype=torch.long)
        return {
            "kind": SCENE_WINDOWS,
            "images": torch.empty((0, channels, t, t), dtype=torch.uint8),
            "scene": none,
            "row": none,
            "col": none,
            "valid": torch.empty(0, dtype=torch.bool),
            "failed": [(scene, why)],
        }

    def batches(self, block: Block) -> Iterator[dict[str, Any]]:
        """Read the block's rows once; cut them into its windows, ``batch_size`` at a time."""
        scene = self.scenes[block.scene]
        t = scene.window_size
        tops = [scene.top(r) for r in range(block.first, block.last)]
        pixels, valid = scene.source.read_rows(tops[0], tops[-1] + t)
        rgb, in_worker = pixels.dtype == np.uint8, get_worker_info() is not None
        places = [(r, c) for r in range(block.first, block.last) for c in range(scene.cols)]
        for start in range(0, len(places), self.batch_size):
            batch = places[start : start + self.batch_size]
            ys = [tops[r - block.first] - tops[0] for r, _ in batch]
            xs = [scene.left(c) for _, c in batch]
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
                "failed": [],
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
