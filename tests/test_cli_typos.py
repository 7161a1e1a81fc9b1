"""A mistyped option, config key or config path: one line naming it and the closest that exist (cli/typos.py)."""

from pathlib import Path

import pytest
from conftest import cli_error, run_cli


def one_line(message: str) -> str:
    assert len(message.strip().splitlines()) == 1 and "usage:" not in message, message
    return message.strip()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["predict", "--data.predict_rot", "x"],
            "unrecognized option --data.predict_rot; did you mean --data.predict_root?",
        ),
        (["fit", "--data.predict_rot=x"], "unrecognized option --data.predict_rot; did you mean --data.predict_root?"),
        (["fit", "--ckpt_pth", "x"], "unrecognized option --ckpt_pth; did you mean --ckpt_path?"),
        # a nested group's key
        (["fit", "--data.loader.batch_sise", "3"], "did you mean --data.loader.batch_size?"),
        # close to an old name, which renamed_options still translates: its new name is offered
        (["fit", "--data.batch_sise", "3"], "did you mean --data.loader.batch_size?"),
        (["fit", "--data.predict_rot", "x", "--dat.rot", "3"], "unrecognized options --data.predict_rot (did you mean"),
        (["fit", "--zzzzzzzz", "1"], "unrecognized option --zzzzzzzz (see eurosat fit --help)"),
        # a prefix of an option is a typo too, as a config file's key would be, not the option it abbreviates
        (
            ["fit", "--trainer.max_epoch", "1"],
            "unrecognized option --trainer.max_epoch; did you mean --trainer.max_epochs?",
        ),
    ],
)
def test_a_mistyped_option_is_one_line_naming_the_closest(
    args: list[str], expected: str, capsys: pytest.CaptureFixture
) -> None:
    message = one_line(cli_error(args, capsys))
    assert message.startswith("eurosat: error: ") and expected in message


def test_an_old_option_name_is_not_unknown(capsys: pytest.CaptureFixture) -> None:
    printed = run_cli(["fit", "--data.batch_size", "4", "--print_config"], capsys)
    assert "batch_size: 4" in printed


def test_a_config_that_does_not_exist_names_the_close_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "configs").mkdir()
    for name in ("demo.yaml", "ms.yaml", "ssl4eo.yaml", "fit.yaml", "cpu.yaml"):  # as the project's configs/
        (tmp_path / "configs" / name).write_text("trainer: {max_epochs: 1}\n")
    monkeypatch.chdir(tmp_path)
    message = one_line(cli_error(["fit", "--config", "configs/demo.yml"], capsys))
    assert message == "eurosat: error: --config configs/demo.yml: no such file (did you mean configs/demo.yaml?)"
    message = one_line(cli_error(["fit", "--config", "nowhere/demo.yml"], capsys))
    assert message.startswith("eurosat: error: --config nowhere/demo.yml: no such file")


def test_a_groups_file_that_does_not_exist_names_the_config_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A config's ``model: models/tiny_vt.yaml`` is read from that config's folder (jsonargparse's rule), so
    the close names come from there; on the command line, from the working folder. A file that is there but
    does not parse keeps the library's message, which says what is wrong in it."""
    (tmp_path / "configs" / "models").mkdir(parents=True)
    (tmp_path / "configs" / "models" / "tiny_vit.yaml").write_text("network: {pretrained: null}\n")
    (tmp_path / "configs" / "models" / "broken.yaml").write_text("network: [\n")
    (tmp_path / "configs" / "mine.yaml").write_text("model: models/tiny_vt.yaml\n")
    (tmp_path / "configs" / "other.yaml").write_text("model: models/broken.yaml\n")
    monkeypatch.chdir(tmp_path)
    message = one_line(cli_error(["fit", "--config", "configs/mine.yaml"], capsys))
    assert message == (
        "eurosat: error: model: models/tiny_vt.yaml in configs/mine.yaml: no such file "
        "(did you mean models/tiny_vit.yaml?)"
    )
    message = one_line(cli_error(["fit", "--model", "configs/models/tiny_vt.yaml"], capsys))
    assert message == (
        "eurosat: error: --model configs/models/tiny_vt.yaml: no such file (did you mean configs/models/tiny_vit.yaml?)"
    )
    message = one_line(cli_error(["fit", "--config", "configs/other.yaml"], capsys))
    assert "no such file" not in message and "models/broken.yaml" in message
    # written as a config writes it, given on the command line: found beside the config read
    (tmp_path / "configs" / "ok.yaml").write_text("trainer: {max_epochs: 1}\n")
    message = one_line(cli_error(["fit", "--config", "configs/ok.yaml", "--model", "models/tiny_vit.yaml"], capsys))
    assert message == (
        "eurosat: error: --model models/tiny_vit.yaml: no such file (did you mean configs/models/tiny_vit.yaml?)"
    )
    # written from the working folder inside a config, which reads it from its own folder
    (tmp_path / "configs" / "from_root.yaml").write_text("model: configs/models/tiny_vit.yaml\n")
    message = one_line(cli_error(["fit", "--config", "configs/from_root.yaml"], capsys))
    assert message == (
        "eurosat: error: model: configs/models/tiny_vit.yaml in configs/from_root.yaml: no such file in configs/, "
        "the config's folder (did you mean models/tiny_vit.yaml?)"
    )
    # inline YAML that does not parse is not a file: the library's message says what is wrong in it
    message = one_line(cli_error(["fit", "--model", "network: {pretrained: null"], capsys))
    assert "no such file" not in message and "did not find expected ',' or '}'" in message


@pytest.mark.parametrize("at_root", [False, True], ids=["subcommand", "root"])
def test_a_mistyped_key_in_a_config_names_the_key_and_the_file(
    at_root: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    config = Path("run.yaml")
    config.write_text("fit:\n  data: {predict_rot: x}\n" if at_root else "data:\n  loader: {batch_sise: 3}\n")
    args = ["--config", str(config), "fit"] if at_root else ["fit", "--config", str(config)]
    message = one_line(cli_error(args, capsys))
    key, closest = (
        ("data.predict_rot", "data.predict_root") if at_root else ("data.loader.batch_sise", "data.loader.batch_size")
    )
    assert message == f"eurosat: error: unrecognized key {key} in run.yaml; did you mean {closest}?"


def test_a_bad_value_is_refused_as_before(capsys: pytest.CaptureFixture) -> None:
    message = one_line(cli_error(["fit", "--data.loader.batch_size", "0"], capsys))
    assert message.startswith('eurosat: error: Parser key "data.loader.batch_size": ')
    assert message.endswith("(see eurosat fit --help)")


def test_help_still_lists_every_option(capsys: pytest.CaptureFixture) -> None:
    assert "--data.predict_root" in run_cli(["fit", "--help"], capsys)


def test_the_parser_still_keeps_its_option_strings_where_typos_reads_them() -> None:
    """known_options reads argparse's private ``_option_string_actions``: this fails if the library moves it."""
    from lightning.pytorch.cli import LightningArgumentParser

    from eurosat_finetune.cli.typos import known_options
    from eurosat_finetune.data.datamodule import EuroSATDataModule

    parser = LightningArgumentParser()
    parser.add_lightning_class_args(EuroSATDataModule, "data")
    known = known_options(parser)
    assert {"--data.predict_root", "--data.loader.batch_size"} <= set(known), known


@pytest.mark.parametrize("group", ["model", "data"])
def test_a_scalar_where_a_group_belongs_is_one_line(
    group: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """jsonargparse takes ``model: 5`` (a group may be given as a file's path); the command says what it is."""
    monkeypatch.chdir(tmp_path)
    Path("five.yaml").write_text(f"{group}: 5\n")
    message = one_line(cli_error(["fit", "--config", "five.yaml"], capsys))
    assert message.startswith(f"eurosat: error: {group}: 5 is neither the {group} options (a mapping) nor a config")
