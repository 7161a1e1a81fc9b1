"""A map's preview: the scene beside its coloured map, with a legend of class names, titled with the scene's
whole name (a product's name is 60 characters and more, wider than its panel: it is broken into lines at its
``_`` and ``/``, never cut)."""

import os
import re
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Patch

from eurosat_finetune.data.scenes.windows import Scene
from eurosat_finetune.outputs.map_legend import NODATA_CLASS, class_colours
from eurosat_finetune.pixels import stretched

# each panel of the 11 x 5.5 inch figure is about 450 px wide at 100 dpi: a finer image adds nothing to see,
# and a coarser one is read from the files' overviews (a COG's, a JPEG 2000's levels), a fraction of the bytes
PREVIEW_SIDE = 512
FIGURE_SIZE, DPI = (11, 5.5), 100
TITLE_SIZE = 9
TITLE_WIDTH = 0.38  # of the figure's width: a panel's, less its share of the legend and margins


def title_lines(text: str, width_px: float, renderer: RendererAgg, size: float = TITLE_SIZE) -> str:
    """``text`` broken into lines no wider than ``width_px`` as ``renderer`` draws it: after a ``_``, ``/``,
    ``.`` or ``-`` where one is near, else anywhere; every character kept, in order."""
    font = FontProperties(size=size)

    def fits(line: str) -> bool:
        return renderer.get_text_width_height_descent(line, font, ismath=False)[0] <= width_px

    lines: list[str] = []
    line = ""
    for piece in re.findall(r"[^_/.\-]*[_/.\-]?", text):
        for part in [piece] if fits(piece) else list(piece):  # a piece wider than a line: broken anywhere
            if line and not fits(line + part):
                lines.append(line)
                line = ""
            line += part
    return "\n".join([*lines, line])


def write_preview(scene: Scene, classes: np.ndarray, names: list[str], path: Path) -> None:
    """The scene (read at most ``PREVIEW_SIDE`` px a side) beside its coloured map, with a legend of class
    names, under the scene's whole name."""
    figure = preview_figure(scene.name, scene.preview(PREVIEW_SIDE), classes, names)
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp, dpi=DPI)
    os.replace(tmp, path)


def preview_figure(name: str, image: np.ndarray, classes: np.ndarray, names: list[str]) -> Figure:
    """The preview's figure: ``image`` (bands first) titled ``name``, beside the map ``classes``."""
    colours = class_colours(len(names))
    # 8-bit colour as the model saw it; reflectance as true colour, stretched
    shown_image = image if image.dtype == np.uint8 else stretched(image)
    fig = Figure(figsize=FIGURE_SIZE, dpi=DPI, layout="constrained")
    renderer = FigureCanvasAgg(fig).get_renderer()  # measures the title as the PNG draws it
    left, right = fig.subplots(1, 2)
    left.imshow(shown_image.transpose(1, 2, 0))
    left.set_title(title_lines(name, TITLE_WIDTH * FIGURE_SIZE[0] * DPI, renderer), fontsize=TITLE_SIZE)
    shown = np.ma.masked_equal(classes, NODATA_CLASS)
    right.imshow(shown, cmap=ListedColormap(colours / 255), vmin=-0.5, vmax=len(names) - 0.5, interpolation="nearest")
    right.set_title("land cover", fontsize=TITLE_SIZE)
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Patch(color=colours[i] / 255, label=name) for i, name in enumerate(names)]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    return fig
