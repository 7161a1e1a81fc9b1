"""The package's shape: layers that import only downwards, short modules, and the Lightning internals
it relies on still where it expects them."""

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "eurosat_finetune"

# Each module's layer; a module may import from its own layer and those below, never from above.
LAYERS = {"foundation": 0, "data": 1, "model": 2, "outputs": 3, "command": 4}
FOUNDATION = {
    "eurosat_finetune",
    "eurosat_finetune.errors",
    "eurosat_finetune.pixels",
    "eurosat_finetune.renamed_options",  # the model translates a checkpoint's old option names with it
}
# The data layer's two rooms: training patches and scenes to map. Neither imports the other; both may use
# the modules of the data layer itself (bands, image files, loaders, the predict batch contract), which
# import neither, except the datamodule, which composes them.
ROOMS = ("eurosat_finetune.data.patches", "eurosat_finetune.data.scenes")
COMPOSER = "eurosat_finetune.data.datamodule"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    if module in FOUNDATION or module.startswith(("eurosat_finetune.tools", "eurosat_finetune.statistics")):
        return LAYERS["foundation"]
    sub = module.split(".")[1]
    return LAYERS.get(sub, LAYERS["command"])  # cli, learning_curve and the entry points


def room_of(module: str) -> str | None:
    return next((room for room in ROOMS if module == room or module.startswith(room + ".")), None)


def sideways(module: str, imported: set[str]) -> set[str]:
    """The imports of ``module`` that cross from one room of the data layer into the other, or from the
    data layer's shared modules into a room (the datamodule alone composes the rooms)."""
    if layer_of(module) != LAYERS["data"] or module == COMPOSER:
        return set()
    own = room_of(module)
    return {m for m in imported if room_of(m) is not None and room_of(m) != own}


def imported_modules(path: Path) -> set[str]:
    """The eurosat_finetune modules ``path`` imports (``from eurosat_finetune.model import backbones``
    imports ``eurosat_finetune.model.backbones``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / child.replace(".", "/")).with_suffix(".py").is_file()
                found.add(child if is_module else node.module)
    return {name for name in found if name.split(".")[0] == "eurosat_finetune"}


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_layers_are_data_model_outputs_cli() -> None:
    subpackages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert subpackages == ["cli", "data", "model", "outputs", "statistics", "tools"]
    rooms = sorted(p.name for p in (PACKAGE / "data").iterdir() if (p / "__init__.py").is_file())
    assert rooms == ["patches", "scenes"]
    assert len(MODULES) > 30  # the walk below sees every module


def test_no_two_modules_share_a_name() -> None:
    """A module's name says what it is wherever it is imported: ``map_accuracy`` the command and
    ``statistics.map_accuracy`` the estimators read alike in an import and a traceback."""
    stems: dict[str, list[str]] = {}
    for path in MODULES:
        if path.stem != "__init__":
            stems.setdefault(path.stem, []).append(module_name(path))
    assert {stem: names for stem, names in stems.items() if len(names) > 1} == {}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_module_imports_from_a_higher_layer(path: Path) -> None:
    name = module_name(path)
    if name == "eurosat_finetune":
        return  # the package root re-exports the public classes lazily, by design
    upward = {m for m in imported_modules(path) if layer_of(m) > layer_of(name)}
    assert not upward, f"{name} (layer {layer_of(name)}) imports {sorted(upward)} from a higher layer"


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The check above is not vacuous: the model importing a writer of outputs (as it once did) is found."""
    module = tmp_path / "classifier.py"
    module.write_text("from eurosat_finetune.outputs.land_cover_maps import LandCoverMaps\n")
    assert layer_of(next(iter(imported_modules(module)))) > layer_of("eurosat_finetune.model.classifier")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_the_rooms_of_the_data_layer_do_not_import_each_other(path: Path) -> None:
    name = module_name(path)
    crossing = sideways(name, imported_modules(path))
    assert not crossing, f"{name} imports {sorted(crossing)}: only the datamodule composes the data layer's rooms"


def test_the_room_check_catches_a_sideways_import(tmp_path: Path) -> None:
    """The patches' split importing the scenes' windows, or the data layer's bands importing a room, is found."""
    module = tmp_path / "splits.py"
    module.write_text("from eurosat_finetune.data.scenes.windows import SceneWindows\n")
    assert sideways("eurosat_finetune.data.patches.splits", imported_modules(module))
    assert sideways("eurosat_finetune.data.bands", imported_modules(module))
    assert not sideways("eurosat_finetune.data.scenes.catalog", imported_modules(module))
    assert not sideways(COMPOSER, imported_modules(module))


def test_no_fake_data_is_shipped() -> None:
    """The synthetic Sentinel-2 products and EuroSAT MS sample live beside the tests (``tests/fakes``); the
    package keeps only the offline demo's synthetic EuroSAT RGB."""
    defined = {
        node.name
        for path in MODULES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.ClassDef)
    }
    assert not defined & {"write_product", "write_multispectral_sample", "sample_product_bands"}
    assert "write_sample_dataset" in defined


def test_class_paths_of_saved_configs_resolve() -> None:
    """Configs, checkpoints and notebooks written before the layers name these paths."""
    from eurosat_finetune.data.datamodule import EuroSATDataModule
    from eurosat_finetune.model.classifier import ImageClassifier

    assert importlib.import_module("eurosat_finetune.model").ImageClassifier is ImageClassifier
    import eurosat_finetune

    assert eurosat_finetune.ImageClassifier is ImageClassifier
    assert eurosat_finetune.EuroSATDataModule is EuroSATDataModule


@pytest.mark.parametrize("module", ["eurosat_finetune", "eurosat_finetune.model"])
def test_the_old_name_vit_classifier_is_image_classifier_with_one_warning(module: str) -> None:
    """``ViTClassifier`` (the name until commit d5a0566) is what code and class paths of 0.1.0 name; it is
    still ImageClassifier, looked up as a class path is (module, then attribute), and says what to use."""
    from eurosat_finetune.model.classifier import ImageClassifier

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolved = importlib.import_module(module).ViTClassifier
    assert resolved is ImageClassifier
    assert [(w.category, w.filename) for w in caught] == [(DeprecationWarning, __file__)]  # points at the caller
    assert "ViTClassifier is deprecated: it is ImageClassifier" in str(caught[0].message)
    with pytest.warns(DeprecationWarning, match="ImageClassifier"):
        exec(f"from {module} import ViTClassifier as imported", namespace := {})
    assert namespace["imported"] is ImageClassifier
    assert "ViTClassifier" not in importlib.import_module(module).__all__  # ``import *`` does not warn
    with pytest.raises(AttributeError, match="'NoSuchClassifier'"):
        importlib.import_module(module).NoSuchClassifier  # noqa: B018


def test_one_version_number() -> None:
    import importlib.metadata

    import tomllib

    import eurosat_finetune

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert eurosat_finetune.__version__ == importlib.metadata.version("eurosat-finetune") == declared
    written = [p for p in MODULES if f'"{declared}"' in p.read_text()]
    assert not written, f"the version is written out in {written}; read eurosat_finetune.__version__"


def test_libraries_are_used_through_their_public_modules() -> None:
    """No import from a private module (a ``_name`` in its path) or from Lightning's undocumented
    ``overrides``: what such an import gave is written here (e.g. the unpadded sampler of loaders.py)."""
    private = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                parts = name.split(".")
                if parts[0] != "eurosat_finetune" and (any(p.startswith("_") for p in parts) or "overrides" in parts):
                    private.append(f"{module_name(path)}: {name}")
    assert not private, private


def test_the_unpadded_sampler_gives_each_item_to_one_process() -> None:
    from eurosat_finetune.data.loaders import UnpaddedSampler

    shares = [list(UnpaddedSampler(list(range(5)), 2, rank)) for rank in (0, 1)]
    assert shares == [[0, 2, 4], [1, 3]]  # none padded in, as a DistributedSampler would
    assert [len(UnpaddedSampler(list(range(5)), 2, rank)) for rank in (0, 1)] == [3, 2]


def test_architecture_md_names_every_module() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    missing = [p.relative_to(PACKAGE).as_posix() for p in MODULES if p.name != "__init__.py"]
    missing = [name for name in missing if f"`{name}`" not in text]
    assert not missing, f"docs/architecture.md does not name {missing}"


def test_import_graph_has_no_circle() -> None:
    """No module imports one that imports it back, also through ``TYPE_CHECKING`` imports."""
    graph = {module_name(path): imported_modules(path) for path in MODULES}

    def circle_from(start: str, module: str, seen: tuple[str, ...]) -> tuple[str, ...] | None:
        for imported in graph.get(module, ()):
            if imported == start:
                return (*seen, imported)
            if imported not in seen and imported.startswith(start.rsplit(".", 1)[0]):
                found = circle_from(start, imported, (*seen, imported))
                if found:
                    return found
        return None

    circles = [c for m in graph if m != "eurosat_finetune" and (c := circle_from(m, m, (m,)))]
    assert not circles, circles


def test_one_name_one_thing_input_bands() -> None:
    """``input_bands`` is the datamodule's property that is linked to the model's hyperparameter of that
    name: no module and no function bears it too."""
    assert not list(PACKAGE.rglob("input_bands.py"))
    functions = [
        f"{module_name(path)}.{node.name}"
        for path in MODULES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name == "input_bands"
    ]
    assert functions == ["eurosat_finetune.data.datamodule.input_bands"]  # the property


def test_what_runs_and_benchmarks_write_is_not_tracked() -> None:
    """ONNX exports (deploy/ of docs/deploy.md), the benchmark mosaic, maps and coverage data stay out of git."""
    written = ["model.onnx", "mosaic/mosaic.tif", "mosaic-truth.json", "mosaic-points.csv", "deploy/model.onnx"]
    written += ["maps/scene.classes.tif", ".coverage"]
    ignored = subprocess.run(["git", "check-ignore", *written], cwd=REPO, capture_output=True, text=True).stdout
    assert ignored.split() == written
    assert not subprocess.run(["git", "ls-files", ".coverage"], cwd=REPO, capture_output=True, text=True).stdout


def test_the_tests_shared_module_imports_no_heavy_library() -> None:
    """pytest-xdist's controller process loads conftest.py as well as every worker: torch, transformers
    or the package imported there cost each run of the suite about 10 s before any test starts."""
    code = (
        "import sys; sys.path.insert(0, 'tests'); import conftest; "
        "print(sorted({'torch', 'transformers', 'lightning', 'eurosat_finetune'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
