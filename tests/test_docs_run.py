"""The docs run as written: the ```bash and ```python blocks of README.md, docs/quickstart.md and
docs/deploy.md, in the order a reader meets them, each in a fresh process in one folder that holds only a
copy of ``configs/`` (as a clone's root does, without the code), with the hub offline. A command that needs
a GPU, the network, the real data or the reader's own files is skipped by SKIPPED, each with why, and a
fit the reader ran before is not run again (the quickstart's demo is README's first block); nothing
is substituted but the run folder, which the docs tell the reader to take from what ``eurosat fit`` printed.
"""

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow  # CLI processes: a demo fit, a test, a predict, an export; two Python blocks

DOCS = ["README.md", "docs/quickstart.md", "docs/deploy.md"]  # the order the README's links give

# Each command the test does not run, as the docs write it (continuations joined, the comment dropped),
# with why. Each must still be in the docs: an entry whose command is gone fails the test.
SKIPPED = {
    "python3 -m venv .venv": "makes the environment the test runs in",
    "source .venv/bin/activate": "enters the environment the test runs in",
    'pip install -e ".[test]"': "installs the package the test runs (from this checkout, by PYTHONPATH)",
    'pip install -e ".[onnx]"': "installs the ONNX extra, which the test environment has ([test] holds it)",
    "python -m pytest": "the whole suite, this test among it",
    'python -m pytest -m "not slow"': "the quick suite",
    "eurosat fit --config configs/fit.yaml": "downloads EuroSAT (90 MB) and ViT-B/16 from the network; a GPU's work",
    'eurosat test --config configs/fit.yaml --ckpt_path "$run/checkpoints/best.ckpt"': "the real fine-tune's run",
    'eurosat validate --config configs/fit.yaml --ckpt_path "$run/checkpoints/best.ckpt"': "the real fine-tune's run",
    'eurosat test --ckpt_path "$run/checkpoints/best.ckpt"': "the real fine-tune's run (its checkpoint and data)",
    'eurosat predict --config configs/fit.yaml --ckpt_path "$run/checkpoints/best.ckpt" '
    "--data.predict_root my_new_images/": "the real fine-tune's checkpoint and the reader's own images",
    'eurosat fit --config configs/fit.yaml --ckpt_path "$run/checkpoints/last.ckpt"': "resumes the real fine-tune",
    "tensorboard --logdir runs": "a server, which runs until it is stopped",
    "eurosat fit --config configs/fit.yaml --config configs/cpu.yaml": "downloads the real data; 15 to 24 minutes",
    # each process costs ~10 s of imports; these three are checked in-process by tests/test_cli.py
    "eurosat fit --print_config": "the default config: test_cli's test_print_config_round_trips",
    "eurosat fit --help": "the options' help: test_run_outputs' test_console_script_and_module_*",
    "eurosat --version": "the version: test_cli's test_python_m_enters_the_cli_in_process",
}

# `run=runs/demo/version_0   # the run folder `eurosat fit` printed`: the one substitution the docs ask for
RUN_FOLDER = re.compile(r"^(\w+)=(\S+)\s+# the run folder `eurosat fit` printed")
ASSIGNMENT = re.compile(r"^(\w+)=(\S+)$")
FENCE = re.compile(r"^```(bash|python)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def logger_folder(run_folder: str) -> str:
    """``runs/demo/`` of ``runs/demo/version_3``: which fit's run folder a docs' example stands for."""
    return re.sub(r"version_\d+$", "", run_folder)


@dataclass
class Reader:
    """What a reader's shell holds between blocks, and what the test did with each command."""

    folder: Path
    env: dict[str, str]
    variables: dict[str, str] = field(default_factory=dict)
    printed: dict[str, str] = field(default_factory=dict)  # the run folder each logger's last fit printed
    fits: set[str] = field(default_factory=set)  # the fits that ran
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def run(self, where: str, command: list[str]) -> str:
        result = subprocess.run(
            command, cwd=self.folder, env={**self.env, **self.variables}, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"{where}: {command[-1]}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result.stdout

    def shell(self, where: str, line: str) -> None:
        """One logical line of a bash block: assignments, commands joined by &&, a trailing comment."""
        run_folder = RUN_FOLDER.match(line)
        if run_folder is not None:
            # the example (runs/demo/version_0) says which fit's printed folder the reader takes
            name, example = run_folder.groups()
            if logger_folder(example) not in self.printed:  # that fit was skipped: so is what reads the variable
                self.skipped.append(line)
                self.variables.pop(name, None)
            else:
                self.variables[name] = self.printed[logger_folder(example)]
            return
        for command in (part.strip() for part in re.sub(r"\s+#.*$", "", line).split("&&")):
            assignment = ASSIGNMENT.match(command)
            if assignment is not None:
                self.variables[assignment[1]] = assignment[2]
            elif command in self.fits:
                # the quickstart's demo fit is README's first block again: a second run of it only takes the
                # next version_N and costs a fit's time, so the run folder README's printed stands
                self.skipped.append(command)
            elif command in SKIPPED:
                self.skipped.append(command)
            else:
                printed = self.run(where, ["bash", "-euc", command])  # -u: a variable the docs never set fails
                self.ran.append(command)
                self.outputs.append(printed)
                if command.startswith("eurosat fit"):
                    self.fits.add(command)
                    folder = re.findall(r"Run folder: (\S+)", printed)[-1]
                    self.printed[logger_folder(folder)] = folder

    def python(self, where: str, code: str) -> None:
        script = self.folder.parent / f"block-{len(self.ran)}.py"  # outside the reader's folder
        script.write_text(code)
        self.outputs.append(self.run(where, [sys.executable, str(script)]))
        self.ran.append(code)


def logical_lines(block: str) -> list[str]:
    """A bash block's lines, continuations (a trailing backslash) joined."""
    return [" ".join(line.split()) for line in re.sub(r"\\\n", " ", block).splitlines() if line.strip()]


def test_the_docs_blocks_run_in_a_readers_order(tmp_path: Path) -> None:
    folder = tmp_path / "reader"
    shutil.copytree(REPO / "configs", folder / "configs")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty-hf-home")}  # no network, no cache
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # this environment's eurosat
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))  # this checkout's code
    reader = Reader(folder, env)
    for doc in DOCS:
        for number, (language, block) in enumerate(FENCE.findall((REPO / doc).read_text()), start=1):
            where = f"{doc}, block {number}"
            if language == "python":
                reader.python(where, block)
            else:
                for line in logical_lines(block):
                    reader.shell(where, line)

    assert sorted(set(SKIPPED) - set(reader.skipped)) == []  # each entry still names a command of the docs
    demo = ("eurosat fit --config configs/demo.yaml", "eurosat test", "eurosat predict")
    # README's demo fit, the quickstart's test and predict, deploy.md's export after a test
    assert len([command for command in reader.ran if command.startswith(demo)]) == 4, reader.ran
    assert (folder / "deploy" / "model.onnx").is_file()
    onnx_printed, pipeline_printed = reader.outputs[-2:]  # deploy.md's two Python blocks, on a forest tile
    assert onnx_printed.startswith("Forest ") and "'label': 'Forest'" in pipeline_printed
