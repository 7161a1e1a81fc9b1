"""The package's shape: layers that import only downwards, short modules, and the Lightning internals
it relies on still where it expects them."""

import ast
import importlib
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
    "eurosat_finetune.lightning_private",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    if module in FOUNDATION:
        return LAYERS["foundation"]
    sub = module.split(".")[1]
    return LAYERS.get(sub, LAYERS["command"])  # cli, learning_curve, the entry points and class-path shims


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
    assert subpackages == ["cli", "data", "model", "outputs"]
    assert len(MODULES) > 30  # the walk below sees every module


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
def test_no_module_is_over_300_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 300


def test_class_paths_of_saved_configs_resolve() -> None:
    """Configs, checkpoints and notebooks written before the layers name these paths."""
    from eurosat_finetune.data.datamodule import EuroSATDataModule
    from eurosat_finetune.model.classifier import ImageClassifier

    assert importlib.import_module("eurosat_finetune.model").ImageClassifier is ImageClassifier
    assert importlib.import_module("eurosat_finetune.model").ViTClassifier is ImageClassifier
    assert importlib.import_module("eurosat_finetune.datamodule").EuroSATDataModule is EuroSATDataModule
    import eurosat_finetune

    assert eurosat_finetune.ImageClassifier is ImageClassifier
    assert eurosat_finetune.EuroSATDataModule is EuroSATDataModule


def test_one_version_number() -> None:
    import importlib.metadata

    import tomllib

    import eurosat_finetune

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert eurosat_finetune.__version__ == importlib.metadata.version("eurosat-finetune") == declared
    written = [p for p in MODULES if f'"{declared}"' in p.read_text()]
    assert not written, f"the version is written out in {written}; read eurosat_finetune.__version__"


def test_lightning_internals_are_where_lightning_private_expects_them() -> None:
    """Each private member :mod:`eurosat_finetune.lightning_private` uses, checked against Lightning."""
    from lightning.pytorch.trainer.connectors.data_connector import _DataConnector

    from eurosat_finetune.lightning_private import UnrepeatedDistributedSampler

    # the sampler Lightning itself gives predict under DDP
    source = Path(importlib.import_module(_DataConnector.__module__).__file__).read_text()
    assert "UnrepeatedDistributedSampler" in source
    sampler = UnrepeatedDistributedSampler(list(range(5)), num_replicas=2, rank=1, shuffle=False)
    assert list(sampler) == [1, 3]  # 5 items on 2 processes: none padded in


def test_architecture_md_names_every_module() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    missing = [p.relative_to(PACKAGE).as_posix() for p in MODULES if p.name != "__init__.py"]
    missing = [name for name in missing if f"`{name}`" not in text]
    assert not missing, f"docs/architecture.md does not name {missing}"
