"""The docs run as written: the ```bash and ```python blocks of README.md and of each page of docs/ it lists,
in the order a reader meets them, in one folder that holds what a clone's root gives those commands (a copy
of ``configs/``, the checkout's ``benchmarks/``), with the hub offline.

Each command is what its shell makes of it: bash expands the line (variables, quotes) into its arguments.
``eurosat ...``, ``python -m ...`` and ``python <script>.py`` then run in this process, as the console
script, ``runpy`` and the interpreter would start them (a fresh process costs about 9 s of imports, and
``tests/test_run_outputs.py`` checks that the console script and ``python -m`` enter this same CLI); any
other command runs in bash.

A command that needs a GPU, the network, the reader's own files or more than a test's time is skipped by
SKIPPED (or, for a whole block, SKIPPED_BLOCKS), each with why; so is one that reads the run folder of a
run the test does not make (UNMADE_RUNS, each with why; a line naming any other folder that no command
printed fails). The docs' only substitutions are the run folders they tell the reader to take from
what a command printed (``run=runs/demo/version_0   # the run folder `eurosat fit` printed``), and
STAND_INS, where the demo's run stands for a fit that needs the real data.
"""

import os
import re
import runpy
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REAL_ZIP, REPO

pytestmark = pytest.mark.slow  # CLI runs: two demo fits, tests, predicts, an export, a mosaic mapped

README = REPO / "README.md"


def docs_in_reading_order() -> list[str]:
    """README.md, then the pages of docs/ in the order its list of docs gives them."""
    return ["README.md", *re.findall(r"^- \[(docs/[\w-]+\.md)\]", README.read_text(), re.MULTILINE)]


GPU_OR_NETWORK = "downloads the real data or the pretrained weights from the network; a GPU's work"
# Each command the test does not run, as the docs write it (continuations joined, the comment dropped),
# with why. Each must still be in the docs: an entry whose command is gone fails the test.
SKIPPED = {
    "python3 -m venv .venv": "makes the environment the test runs in",
    "source .venv/bin/activate": "enters the environment the test runs in",
    'pip install -e ".[test]"': "installs the package the test runs (from this checkout)",
    'pip install -e ".[onnx]"': "installs the ONNX extra, which the test environment has ([test] holds it)",
    "python -m pytest": "the whole suite, this test among it",
    'python -m pytest -m "not slow"': "the quick suite",
    "tensorboard --logdir runs": "a server, which runs until it is stopped",
    "eurosat fit --config configs/fit.yaml": GPU_OR_NETWORK,
    "eurosat fit --config configs/fit.yaml --config configs/cpu.yaml": "downloads the real data; 15 to 24 minutes",
    "eurosat fit --config configs/fit.yaml --ckpt_path last": "resumes the real fine-tune",
    'eurosat predict --config configs/fit.yaml --ckpt_path "$run/checkpoints/best.ckpt" '
    "--data.predict_root my_new_images/": "the reader's own images",
    # backbones.md
    "eurosat fit --config configs/fit.yaml --config configs/swin_tiny.yaml": GPU_OR_NETWORK,
    "eurosat fit --config configs/fit.yaml --config configs/convnext_tiny.yaml": GPU_OR_NETWORK,
    "eurosat fit --config configs/fit.yaml --config configs/dinov2_small.yaml": GPU_OR_NETWORK,
    "eurosat fit --config configs/fit.yaml --config configs/efficientnet_b0.yaml": GPU_OR_NETWORK,
    "eurosat fit --config configs/fit.yaml --model.network.pretrained facebook/deit-small-patch16-224": GPU_OR_NETWORK,
    # maps.md: real products, catalogues on the network, the full-size benchmarks
    'eurosat predict --ckpt_path "$run/checkpoints/best.ckpt" --data.predict_root scenes/': "the reader's scenes",
    "eurosat test --config configs/fit.yaml --config configs/cpu.yaml --data.root /path/to/folder/holding/EuroSAT_RGB "
    '--ckpt_path "$run/checkpoints/best.ckpt" --model.tta true': "the CPU recipe's run on the real data",
    "python benchmarks/maps.py --product --products /tmp/s2full": "writes a full-size product: about 4 minutes",
    "python benchmarks/maps.py": "maps a full Sentinel-2 tile: minutes",
    # multispectral.md, sentinel2_weights.md
    "eurosat fit --config configs/fit.yaml --config configs/ms.yaml": GPU_OR_NETWORK,
    "eurosat fit --config configs/fit.yaml --config configs/cpu.yaml --config configs/ms.yaml": GPU_OR_NETWORK,
    "eurosat fit --config configs/fit.yaml --config configs/ms.yaml --config configs/ssl4eo.yaml": GPU_OR_NETWORK,
    # evaluation.md
    "eurosat fit --config configs/fit.yaml --config configs/cpu.yaml --data.root /path/to/folder/holding/EuroSAT_RGB": (
        "the real data: 15 minutes"
    ),
    # reliability.md
    "eurosat fit --config configs/fit.yaml --config configs/ddp.yaml": "all GPUs of a machine",
    "eurosat fit --config configs/fit.yaml --config configs/ddp.yaml --trainer.num_nodes 2": "two GPU machines",
    # own-dataset.md
    "eurosat fit --config configs/fit.yaml --data.root my_images --data.download.enabled false": (
        "the reader's own images"
    ),
}

# Blocks not run, by their first line: commands with measurements or runs of minutes, or a loop
SKIPPED_BLOCKS = {
    "python benchmarks/profile_step.py --model cpu-recipe --image-size 96 --batch-size 128 --precision bf16-mixed "
    '--steps 6 --warmup 2 --profile-steps 0 --variants "package (as shipped)"': "a measurement: about a minute",
    "python benchmarks/cpu_recipe.py --root /path/to/folder/holding/EuroSAT_RGB --batches 100 --depths [2,2,2,2]": (
        "measurements of minutes on the real data"
    ),
    "eurosat fit --config configs/fit.yaml --config configs/cpu.yaml --data.root data/gpu/EuroSAT_RGB "
    "--model.input.size 64 --trainer.precision 32-true --trainer.max_epochs 20 --trainer.accelerator gpu "
    "[the option]": "a GPU, and a template: [the option] is one of the table's",
    "python -m eurosat_finetune.learning_curve --out runs/learning_curve --config configs/fit.yaml": GPU_OR_NETWORK,
    "python -m eurosat_finetune.learning_curve --out runs/learning_curve_cpu --epochs 25 "
    '--title "EuroSAT RGB, configs/cpu.yaml (small ResNet from scratch), 25 epochs, CPU" '
    "--config configs/fit.yaml --config configs/cpu.yaml --model.network.architecture.depths [2,2,2,2] "
    '--data.download.url "file://$PWD/../shared/data/EuroSAT_RGB.zip" '
    "--data.download.md5 ea036c2789aa0f5467ce95ed70422d00 --trainer.limit_val_batches 0": (
        "thirteen fits of 25 epochs on the real data: hours"
    ),
    "for name_lr in plain:1e-3 lr3e-3:3e-3; do": (
        "six demo fits of 3 epochs and their tests (minutes): tests/test_seed_study.py runs the study on runs of "
        "its own"
    ),
    "python -m eurosat_finetune.seed_study --study plain=runs/plain --seeds 0 1 2 --name lr3e-3_final "
    "--out runs/seed_study_final --config configs/demo.yaml --trainer.max_epochs 3 "
    "--model.optimizer.init_args.lr 3e-3": "the runs of the block above, and three more fits",
    "python benchmarks/profile_step.py --model resnet18q --image-size 96 --batch-size 128 --precision bf16-mixed "
    "--steps 10 --warmup 3 --profile-steps 3": "a measurement: about 2 minutes",
    "python benchmarks/pipelines.py --model vit-b16 --image-size 224 --batch-size 256 --window 30 "
    "--data data/gpu/EuroSAT_RGB --steps 70 --workers 12 --precision bf16-mixed": "a GPU",
    "python benchmarks/backbones.py --image-size 64 --workers 2": "measurements: 42 s and 152 s on 2 cores",
    "python benchmarks/profile_step.py": "measurements: about a minute on 2 cores, and a GPU's",
    "python benchmarks/throughput.py --workers 2": "measurements: about a minute on 2 cores, and a GPU's",
    "python benchmarks/maps.py --stac --stac-files /tmp/stac_full": "writes 5.3 GB of COGs: 5 minutes",
    "torchrun --standalone --nproc_per_node 2 -m eurosat_finetune fit --config configs/demo.yaml "
    "--config configs/ddp.yaml --trainer.accelerator cpu --trainer.devices 2": (
        "two processes of a demo fit: tests/test_launchers.py runs torchrun"
    ),
}

# The run folders the docs take from a command the test does not run, each with why; every other run folder
# a docs line names must be one a command printed (a line naming a folder no command writes fails)
REAL_FINE_TUNE = "the real fine-tune's run (the network's data and weights; a GPU's work)"
UNMADE_RUNS = {
    "run=runs/eurosat/version_0 # the run folder `eurosat fit` printed": REAL_FINE_TUNE,
    'run = "runs/eurosat/version_0" # the run folder `eurosat fit` printed': REAL_FINE_TUNE,
    "run=runs/ms/version_0 # the run folder `eurosat fit` printed for the multispectral model": (
        "the multispectral fine-tune's run (EuroSAT MS from the network)"
    ),
    'run = "runs/ms/version_0" # the run folder `eurosat fit` printed': "the multispectral fine-tune's run",
    "run=runs/ssl4eo/version_0 # the run folder `eurosat fit` printed": "a fine-tune from the network's weights",
    "predicted=maps_run/lightning_logs/version_0 # the run folder `eurosat predict` printed": (
        "the map of a product downloaded from ESA"
    ),
    "predicted=lightning_logs/version_0 # the run folder `eurosat predict` printed for the product above": (
        "the map of the reader's product and points"
    ),
}

# A fit the test cannot run (the real data), whose run folder a command then reads: the demo's run stands
# in for it where any RGB model does what the command shows (map the mosaic and score it at its points)
STAND_INS = {"runs/cpu/": "runs/demo/"}
NEEDS_REAL_DATA = {"python benchmarks/mosaic.py --out mosaic/"}  # EuroSAT RGB's zip: ../shared/data/

# `run=runs/demo/version_0   # the run folder `eurosat fit` printed`; in Python, `run = "..."  # the run ...`
RUN_FOLDER = re.compile(r"^(\w+)=(\S+)\s+# the run folder `eurosat (\w+)` printed.*$")
PYTHON_RUN_FOLDER = re.compile(r'^(\w+) = "(\S+)"\s+# the run folder `eurosat (\w+)` printed.*$', re.MULTILINE)
ASSIGNMENT = re.compile(r"^(\w+)=(\S+)$")
FENCE = re.compile(r"^```(bash|python)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SHELL_SYNTAX = re.compile(r"[|;<>`]|\$\(")  # a pipe, a redirect, a substitution: bash runs the line whole
READS = re.compile(r"\$\{?(\w+)")


def logger_folder(run_folder: str) -> str:
    """``runs/demo/`` of ``runs/demo/version_3``: which logger's runs a docs' example stands for."""
    return re.sub(r"version_\d+$", "", run_folder)


@dataclass
class Reader:
    """What a reader's shell holds between blocks, and what the test did with each command."""

    folder: Path
    capsys: pytest.CaptureFixture
    variables: dict[str, str] = field(default_factory=dict)
    unset: dict[str, str] = field(default_factory=dict)  # variables for runs that were skipped: why
    printed: dict[tuple[str, str], str] = field(default_factory=dict)  # (command, logger folder): its last run
    ran: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    python_printed: dict[str, str] = field(default_factory=dict)  # what each Python block printed, by block

    def resolve(self, where: str, line: str, name: str, example: str, command: str) -> None:
        """``name=<example>   # the run folder `eurosat <command>` printed``: the folder that command printed."""
        logger = STAND_INS.get(logger_folder(example), logger_folder(example))
        printed = self.printed.get((command, logger))
        if printed is None:  # a run the test does not make: so is each command reading the variable skipped
            unmade = " ".join(line.split())
            assert unmade in UNMADE_RUNS, f"{where}: {line}: no `eurosat {command}` printed a run folder of {logger}"
            self.skipped[unmade] = UNMADE_RUNS[unmade]
            self.unset[name] = f"reads ${name}, {UNMADE_RUNS[unmade]}"
            self.variables.pop(name, None)
        else:
            self.variables[name] = printed
            self.unset.pop(name, None)

    def shell(self, where: str, line: str) -> None:
        """One logical line of a bash block: assignments, commands joined by &&, a trailing comment."""
        run_folder = RUN_FOLDER.match(line)
        if run_folder is not None:
            self.resolve(where, line, *run_folder.groups())
            return
        for command in (part.strip() for part in re.sub(r"\s+#.*$", "", line).split("&&")):
            assignment = ASSIGNMENT.match(command)
            unset = [self.unset[name] for name in READS.findall(command) if name in self.unset]
            if assignment is not None:
                self.variables[assignment[1]] = assignment[2]
            elif command in SKIPPED:
                self.skipped[command] = SKIPPED[command]
            elif command.startswith("eurosat fit") and command in self.ran:
                # the quickstart's demo is README's first block again: a second run only takes the next
                # version_N and a fit's time, so the run folder the first printed stands
                self.skipped[command] = "ran already"
            elif unset:
                self.skipped[command] = unset[0]
            elif command in NEEDS_REAL_DATA and not REAL_ZIP.is_file():
                self.skipped[command] = f"needs {REAL_ZIP}, absent here"
            else:
                self.run(where, command)

    def run(self, where: str, command: str) -> None:
        argv = [] if SHELL_SYNTAX.search(command) else self.bash(where, f'printf "%s\\0" {command}').split("\0")[:-1]
        if argv and (argv[0] == "eurosat" or (argv[0] in ("python", "python3") and len(argv) > 1)):
            printed = self.in_process(where, argv)
        else:
            printed = self.bash(where, command)
        self.ran.append(command)
        self.outputs.append(printed)
        for name in ("fit", "test", "predict"):  # the run folder each logger's last command of each kind printed
            for printed_folder in re.findall(rf"eurosat {name} finished\. Run folder: (\S+)", printed):
                folder = Path(printed_folder)
                folder = str(folder.relative_to(self.folder) if folder.is_absolute() else folder)
                self.printed[(name, logger_folder(folder))] = folder

    def bash(self, where: str, command: str) -> str:
        result = subprocess.run(
            ["bash", "-euc", command],  # -u: a variable the docs never set fails
            cwd=self.folder,
            env={**os.environ, **self.variables},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"{where}: {command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result.stdout

    def in_process(self, where: str, argv: list[str]) -> str:
        """``eurosat``, ``python -m`` or ``python <script>``, in this process; returns what it printed."""
        from eurosat_finetune.cli import main

        self.capsys.readouterr()
        code: object = 0
        saved_argv, saved_path = sys.argv, list(sys.path)
        try:
            if argv[0] == "eurosat":
                main(argv[1:])
            elif argv[1] == "-m":
                sys.argv = [argv[2], *argv[3:]]
                with warnings.catch_warnings():  # the module was imported already, by the test: runpy says so
                    warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
                    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
            else:
                script = self.folder / argv[1]
                sys.argv, sys.path[:0] = [str(script), *argv[2:]], [str(script.parent)]  # as `python script.py`
                runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exit:
            code = exit.code
        finally:
            sys.argv, sys.path[:] = saved_argv, saved_path
        out, err = self.capsys.readouterr()
        assert code in (0, None), f"{where}: {' '.join(argv)} exited with {code}\n{out[-3000:]}\n{err[-3000:]}"
        return out

    def python(self, where: str, code: str) -> None:
        for found in PYTHON_RUN_FOLDER.finditer(code):
            name, example, command = found.groups()
            self.resolve(where, found[0], name, example, command)
            if name in self.unset:
                self.skipped[code.splitlines()[0]] = self.unset[name]
                return
            code = code.replace(f'{name} = "{example}"', f'{name} = "{self.variables[name]}"')
        self.capsys.readouterr()
        exec(compile(code, where, "exec"), {"__name__": "__main__"})
        self.python_printed[where] = self.capsys.readouterr().out
        self.ran.append(code)


def logical_lines(block: str) -> list[str]:
    """A bash block's lines, continuations (a trailing backslash) joined."""
    return [" ".join(line.split()) for line in re.sub(r"\\\n", " ", block).splitlines() if line.strip()]


def test_the_docs_blocks_run_in_a_readers_order(
    tmp_path: Path, offline_hub: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "reader"
    shutil.copytree(REPO / "configs", folder / "configs")
    (folder / "benchmarks").symlink_to(REPO / "benchmarks")  # they find the repository (and ../shared) by it
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network, and an empty cache (offline_hub): for bash too
    monkeypatch.setenv("HF_HOME", str(offline_hub))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # its eurosat
    monkeypatch.chdir(folder)
    reader = Reader(folder, capsys)
    docs = docs_in_reading_order()
    assert {"docs/maps.md", "docs/evaluation.md", "docs/multispectral.md"} <= set(docs), docs
    for doc in docs:
        for number, (language, block) in enumerate(FENCE.findall((REPO / doc).read_text()), start=1):
            where = f"{doc}, block {number}"
            lines = logical_lines(block) if language == "bash" else [block.splitlines()[0]]
            first = re.sub(r"\s+#.*$", "", lines[0])  # a block is named by its first command
            skipped_block = first if first in SKIPPED_BLOCKS else None
            if skipped_block is not None:
                reader.skipped[skipped_block] = SKIPPED_BLOCKS[skipped_block]
            elif language == "python":
                reader.python(where, block)
            else:
                for line in lines:
                    reader.shell(where, line)

    missing = sorted((set(SKIPPED) | set(SKIPPED_BLOCKS) | set(UNMADE_RUNS)) - set(reader.skipped))
    assert missing == [], f"entries that no longer name a command of the docs: {missing}"
    demo = ("eurosat fit --config configs/demo.yaml", "eurosat test", "eurosat predict")
    # README's demo fit, the quickstart's test and predict, backbones.md's ConvNeXt, deploy.md's export,
    # evaluation.md's comparison, and maps.md's mosaic where the real data is here
    assert len([command for command in reader.ran if command.startswith(demo)]) >= 6, reader.ran
    assert (folder / "deploy" / "model.onnx").is_file()
    onnx_printed, pipeline_printed = [out for where, out in reader.python_printed.items() if "deploy.md" in where]
    assert onnx_printed.startswith("Forest ") and "'label': 'Forest'" in pipeline_printed
    assert any("not distinguishable" in out for out in reader.outputs)  # evaluation.md's comparison printed
    if REAL_ZIP.is_file():  # maps.md's mosaic, mapped and scored at its 144 points, then from the written map
        assert sum("at 144 of 144 reference points" in out for out in reader.outputs) == 2, reader.outputs
