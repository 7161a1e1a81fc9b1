"""Land-cover maps: the windows' class probabilities gathered per scene and written, when predict ends,
as a Cloud-Optimized GeoTIFF class map (one pixel per stride step, the scene's CRS, a colour table, the
class names, where its pixels came from) with its legend for GDAL and QGIS (``map_legend.py``),
optionally a float32 COG of per-class probabilities, and a PNG preview with a legend (``map_preview.py``).
Each scene's grid, georeferencing, tags and preview come from the scene reader's own
:class:`~eurosat_finetune.data.scenes.windows.Scene`: the dataset of the predict loader that reads the
windows holds them, and each batch of windows names its scene by index there."""

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from lightning.pytorch import LightningModule, Trainer
from rasterio.shutil import copy
from rasterio.windows import Window
from tqdm import tqdm

from eurosat_finetune.data.predict_batches import SCENE_WINDOWS
from eurosat_finetune.data.scenes.windows import Scene, SceneWindows
from eurosat_finetune.errors import OutputError, UnreadableImageError, UserError, counted
from eurosat_finetune.outputs.class_areas import class_areas
from eurosat_finetune.outputs.map_assessment import MapAccuracy, Sampling, assess, report
from eurosat_finetune.outputs.map_legend import NODATA_CLASS, colour_table, legend_paths, write_legend
from eurosat_finetune.outputs.map_preview import write_preview
from eurosat_finetune.outputs.prediction_writer import AddressedPredictionWriter
from eurosat_finetune.outputs.reference_points import ReferencePoints, read_reference_points
from eurosat_finetune.outputs.run_folder import RunOutput
from eurosat_finetune.tools.progress import on_terminal, progress_bar

log = logging.getLogger(__name__)

# what each scene's map is written as, for the closing lines
MAP_FILES = (
    "each <name>.classes.tif with its legend for GDAL (<name>.classes.tif.aux.xml) and QGIS (<name>.classes.qml), "
    "<name>.preview.png and <name>.json"
)
BLOCK_ROWS = 256  # map rows per windowed write
COG_BLOCK = 128  # map pixels a side per COG tile: a 10,980 px scene at a 64 px stride gets an overview


class MapAccumulator:
    """Sums of window probabilities per cell of a scene's map (see :attr:`Scene.map_grid`), and how many
    valid windows covered each cell; each window adds to the cells :meth:`Scene.cells` says it fills."""

    def __init__(self, scene: Scene, num_classes: int) -> None:
        self.scene = scene
        shape = (scene.map_grid.height, scene.map_grid.width)
        self.probs = np.zeros((num_classes, *shape), np.float32)
        self.counts = np.zeros(shape, np.int32)

    def add(self, row: int, col: int, probs: np.ndarray) -> None:
        rows, cols = self.scene.cells(row, col)
        self.probs[:, rows, cols] += probs[:, None, None]
        self.counts[rows, cols] += 1


class LandCoverMaps(AddressedPredictionWriter):
    """Write a land-cover map of each scene ``eurosat predict`` maps (see ``data.maps.scenes``) into
    ``<run folder>/maps/``: ``<name>.classes.tif`` with its legend (``<name>.classes.tif.aux.xml`` for GDAL,
    ``<name>.classes.qml`` for QGIS), ``<name>.preview.png``, ``<name>.json`` (the map's
    tags as JSON: where its pixels came from; each class's area; its accuracy at reference points) and, on request,
    ``<name>.probabilities.tif``, ``<name>`` a product's path under ``data.predict_root`` less
    ``.SAFE``/``.zip``, or a raster's less its suffix. With overlapping windows each map cell averages
    the windows that cover it. Files are written under temporary names and renamed when complete.

    Args:
        dirpath: Folder for the maps; null is ``maps/`` in the run folder. One that holds files is refused.
        probabilities: Also write the per-class probabilities (float32, one band per class).
        reference_points: Labelled points to assess each map's accuracy at: a CSV with columns x, y, class (a
            class name or index) and optionally crs, or a GeoJSON of points with a ``class`` property. Checked
            before any mapping starts.
        reference_sampling: How the points were drawn: ``stratified`` (stratified random sampling of the map's
            classes: area-adjusted accuracies and areas, Olofsson et al. 2014) or ``other`` (accuracies at the
            points only).
        reference_crs: The CRS of a CSV's x and y where it has no crs column (EPSG:4326: x longitude, y latitude).
    """

    kind = SCENE_WINDOWS

    def __init__(
        self,
        dirpath: str | Path | None = None,
        probabilities: bool = False,
        reference_points: str | Path | None = None,
        reference_sampling: Sampling = "other",
        reference_crs: str = "EPSG:4326",
    ) -> None:
        super().__init__()
        self.dirpath = dirpath
        self.probabilities = probabilities
        self.reference_points = reference_points
        self.reference_sampling = reference_sampling
        self.reference_crs = reference_crs
        self.points: ReferencePoints | None = None
        self.assessments: dict[str, MapAccuracy] = {}  # each map's accuracy at the points, by map name
        self.accumulators: dict[int, MapAccumulator] = {}
        self.failed: dict[int, str] = {}  # scenes whose files failed while read (by index), and why
        self.windows: SceneWindows | None = None
        self.progress: tqdm | None = None

    @property
    def scenes(self) -> list[Scene]:
        """The scenes of this predict (none before it starts, or when the folder has none)."""
        return self.windows.scenes if self.windows is not None else []

    def directory(self, run_folder: Path) -> Path:
        return Path(self.dirpath) if self.dirpath is not None else run_folder / "maps"

    def outputs(self, run_folder: Path, subcommand: str) -> list[RunOutput]:
        if subcommand != "predict":
            return []
        return [RunOutput("land-cover maps", self.directory(run_folder), "--maps.dirpath")]

    def reference(self, class_names: list[str]) -> ReferencePoints | None:
        """The reference points, read and checked once (the CLI asks before any work; setup asks again)."""
        if self.reference_points is not None and self.points is None:
            self.points = read_reference_points(self.reference_points, class_names, self.reference_crs)
        return self.points

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "predict":
            self.reference(pl_module.class_names)

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.windows, self.failed, self.assessments = scene_windows(trainer.predict_dataloaders), {}, {}
        if self.windows is not None:
            num_classes = len(pl_module.class_names)
            self.accumulators = {i: MapAccumulator(scene, num_classes) for i, scene in enumerate(self.scenes)}
            # Lightning's bar counts batches on a terminal; where it is off or output goes to a log, count windows
            if trainer.is_global_zero and (trainer.progress_bar_callback is None or not on_terminal()):
                count = self.windows.own_window_count
                self.progress = progress_bar(count, f"Mapping {counted(len(self.scenes), 'scene')}", " windows")

    def write_batch(self, prediction: dict[str, Any], pl_module: LightningModule) -> None:
        probs = prediction["probs"].float().cpu().numpy()
        fields = (prediction[key].tolist() for key in ("scene", "row", "col", "valid"))
        for scene, why in prediction.get("failed", []):
            self.failed.setdefault(scene, why)
        for p, (scene, row, col, valid) in zip(probs, zip(*fields, strict=True), strict=True):
            if valid:
                self.accumulators[scene].add(row, col, p)
        if self.progress is not None:
            self.progress.update(len(probs))

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None
        if not self.scenes:
            if self.points is not None and trainer.is_global_zero:
                log.warning("%s: no scene was mapped, so no map's accuracy was assessed", self.reference_points)
            return
        folder = self.directory(self.run_folder)
        parts = folder / f".rank{trainer.global_rank}"
        names = [scene.name for scene in self.scenes]
        if trainer.world_size > 1:  # every process mapped some windows: rank 0 adds them up
            parts.mkdir(parents=True, exist_ok=True)
            (parts / "scenes.json").write_text(json.dumps(names))
            for i, acc in self.accumulators.items():
                np.savez(parts / f"{i}.npz", probs=acc.probs, counts=acc.counts, failed=self.failed.get(i, ""))
            trainer.strategy.barrier()
        error: UserError | None = None  # raised once every process is past the last barrier (none left waiting)
        if trainer.is_global_zero:
            folder.mkdir(parents=True, exist_ok=True)
            # each process opens the scenes itself: one that could not open an item holds other scenes
            others = [
                json.loads((folder / f".rank{r}" / "scenes.json").read_text()) for r in range(1, trainer.world_size)
            ]
            differing = [rank for rank, theirs in enumerate(others, start=1) if theirs != names]
            if differing:
                error = OutputError(
                    f"process {differing[0]} holds other scenes than process 0 (an item one of them could not "
                    "open); run again, or map with one process"
                )
            else:
                self.add_up_and_write(trainer.world_size, pl_module.class_names, folder)
            for rank in range(trainer.world_size if trainer.world_size > 1 else 0):
                for part in (folder / f".rank{rank}").iterdir():
                    part.unlink()
                (folder / f".rank{rank}").rmdir()
            failed = [f"{self.scenes[i].name} ({why})" for i, why in sorted(self.failed.items())]
            left_out = (self.windows.left_out if self.windows is not None else []) + failed
            if error is None and len(failed) == len(self.scenes):  # nothing mapped: as one scene failing alone
                error = UnreadableImageError(f"no scene could be mapped: {'; '.join(left_out)}")
            elif error is None:
                mapped = counted(len(self.scenes) - len(failed), "scene")
                print(f"Land-cover maps of {mapped} written to {folder}: {MAP_FILES}")
                if left_out:
                    print(f"Not mapped, {counted(len(left_out), 'scene')} left out: {'; '.join(left_out)}")
                self.report_accuracy()
        trainer.strategy.barrier()
        if error is not None:
            raise error

    def add_up_and_write(self, processes: int, class_names: list[str], folder: Path) -> None:
        """Add the other processes' windows to this one's and write each scene's map; a scene whose files failed
        while read (in any process), or whose preview cannot be read, gets none (and is named at the end)."""
        for i, scene in enumerate(self.scenes):
            acc = self.accumulators[i]
            for rank in range(1, processes):
                with np.load(folder / f".rank{rank}" / f"{i}.npz") as other:
                    acc.probs += other["probs"]
                    acc.counts += other["counts"]
                    if str(other["failed"]):
                        self.failed.setdefault(i, str(other["failed"]))
            if i in self.failed:
                continue
            try:
                self.write(scene, acc, class_names, folder)
            except UnreadableImageError as err:  # its files failed as its preview was read: none of its outputs
                self.failed[i] = str(err)
                base = folder / scene.name
                class_map = base.with_name(f"{base.name}.classes.tif")
                for path in (class_map, *legend_paths(class_map)):
                    path.unlink(missing_ok=True)
                for end in ("probabilities.tif", "preview.png", "json"):
                    base.with_name(f"{base.name}.{end}").unlink(missing_ok=True)

    def write(self, scene: Scene, acc: MapAccumulator, class_names: list[str], folder: Path) -> None:
        covered = acc.counts > 0
        mean = np.divide(acc.probs, acc.counts, out=np.full_like(acc.probs, np.nan), where=covered)
        classes = np.where(covered, np.nan_to_num(mean, nan=-1).argmax(axis=0), NODATA_CLASS).astype(np.uint8)
        grid = scene.map_grid
        profile = {
            "driver": "GTiff",
            "height": grid.height,
            "width": grid.width,
            "crs": grid.crs,
            "transform": grid.transform,
            "tiled": True,
            "compress": "deflate",
        }
        base = folder / scene.name
        base.parent.mkdir(parents=True, exist_ok=True)
        names = {"class_names": json.dumps(class_names), **{f"class_{i}": n for i, n in enumerate(class_names)}}
        class_map = base.with_name(f"{base.name}.classes.tif")
        with AtomicRaster(
            class_map,
            "nearest",
            count=1,
            dtype="uint8",
            nodata=NODATA_CLASS,
            **profile,
        ) as dst:
            dst.write_colormap(1, colour_table(class_names))  # before the pixels
            write_blocks(dst, classes[None])
            dst.update_tags(**names, **scene.tags())
            dst.set_band_description(1, "land cover class")
        write_legend(class_map, class_names)  # the class names where GDAL and QGIS read them
        if self.probabilities:
            with AtomicRaster(
                base.with_name(f"{base.name}.probabilities.tif"),
                "average",
                count=len(class_names),
                dtype="float32",
                nodata=np.nan,
                **profile,
            ) as dst:
                write_blocks(dst, mean)
                dst.update_tags(**names, **scene.tags())
                for band, name in enumerate(class_names, start=1):
                    dst.set_band_description(band, name)
        write_preview(scene, classes, class_names, base.with_name(f"{base.name}.preview.png"))
        areas = class_areas(classes, class_names, NODATA_CLASS, grid.crs, grid.transform)  # ~15 ms a scene
        assessed: dict[str, Any] = {"areas": areas.as_dict()}
        if self.points is not None:
            accuracy = assess(
                classes,
                class_names,
                NODATA_CLASS,
                grid.crs,
                grid.transform,
                self.points,
                self.reference_sampling,
                areas,
            )
            self.assessments[scene.name] = accuracy
            assessed["accuracy"] = accuracy.as_dict()
        write_sidecar(scene, class_names, base.with_name(f"{base.name}.json"), assessed)

    def report_accuracy(self) -> None:
        """Each map's accuracy, and the points no map could use, named (see :func:`report`)."""
        if self.points is not None:
            report(self.points, self.assessments)


def scene_windows(loaders: Any) -> SceneWindows | None:
    """The dataset of scene windows among the predict loaders (Lightning's ``trainer.predict_dataloaders``,
    one or a list), if there is one: under DDP, each process's own, which holds every scene."""
    for loader in loaders if isinstance(loaders, list | tuple) else [loaders]:
        if isinstance(getattr(loader, "dataset", None), SceneWindows):
            return loader.dataset
    return None


class AtomicRaster:
    """A Cloud-Optimized GeoTIFF: written as a GeoTIFF under a temporary name in the same folder, copied
    by GDAL's COG driver (overviews made with ``overview_resampling``) and renamed when complete; never
    over an existing file."""

    def __init__(self, path: Path, overview_resampling: str, **profile: Any) -> None:
        self.path, self.profile, self.overview_resampling = path, profile, overview_resampling
        self.tmp = path.with_name(f".{path.name}.tmp")

    def __enter__(self) -> Any:
        if self.path.exists():
            raise OutputError(f"{self.path} already exists; choose another --maps.dirpath or move it")
        self.dst = rasterio.open(self.tmp, "w", **self.profile)
        return self.dst

    def __exit__(self, kind: Any, *rest: Any) -> None:
        self.dst.close()
        cog = self.path.with_name(f".{self.path.name}.cog.tmp")
        try:
            if kind is None:
                copy(
                    self.tmp,
                    cog,
                    driver="COG",
                    COMPRESS="DEFLATE",
                    BLOCKSIZE=COG_BLOCK,
                    OVERVIEWS="AUTO",
                    RESAMPLING=self.overview_resampling.upper(),
                )
                os.replace(cog, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)
            cog.unlink(missing_ok=True)


def write_blocks(dst: Any, array: np.ndarray) -> None:
    """Write a ``(bands, rows, cols)`` array in blocks of rows (windowed writes)."""
    for top in range(0, array.shape[1], BLOCK_ROWS):
        block = array[:, top : top + BLOCK_ROWS]
        dst.write(block, window=Window(0, top, array.shape[2], block.shape[1]))


def write_sidecar(scene: Scene, class_names: list[str], path: Path, assessed: dict[str, Any] | None = None) -> None:
    """What the map's tags say, as JSON beside it (for tools that do not read GeoTIFF tags): its classes and
    grid, and where its pixels came from (for STAC items: each item, its date, baseline, the offset applied and
    how it was decided), tag values that hold JSON decoded; then what was measured of it (``areas``, ``accuracy``)."""
    grid = scene.map_grid
    record = {
        "map": f"{scene.name.rsplit('/', 1)[-1]}.classes.tif",
        "classes": class_names,
        "no_data_class": NODATA_CLASS,
        "crs": str(grid.crs) if grid.crs is not None else None,
        "transform": list(grid.transform)[:6],
        "width": grid.width,
        "height": grid.height,
        "source": {key: decoded(value) for key, value in scene.tags().items()},
        **(assessed or {}),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def decoded(value: str) -> Any:
    """A tag's value: the JSON it holds (a list or an object), else the text as it is (a number stays the text
    the tags hold: ``"05.10"`` is a baseline, not a number)."""
    if not value.startswith(("[", "{")):
        return value
    try:
        return json.loads(value, parse_constant=lambda name: name)  # NaN and Infinity stay text: valid JSON
    except ValueError:
        return value
