"""Seed studies: test accuracy over training seeds, per configuration and compared, from run folders."""

import contextlib
import csv
import io
import json
import math
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import FAST, REPO, run_cli
from PIL import Image
from scipy.stats import t as student_t

from eurosat_finetune import seed_study
from eurosat_finetune.statistics.seeds import compare_seeds, seed_summary

SEEDS = (0, 1, 2)
# A tiny ViT trained from scratch on the synthetic sample (32 px) for 3 batches of 16, no validation
TINY = [
    "--config",
    str(REPO / "configs" / "fit.yaml"),
    "--config",
    str(REPO / "configs" / "tiny_vit.yaml"),
    *FAST,
    "--model.network.architecture.image_size=32",
    "--model.network.architecture.hidden_size=32",
    "--model.network.architecture.intermediate_size=64",
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=0",
    "--trainer.callbacks=[]",  # fit.yaml's early stopping watches a validation that does not run
    "--export.after_fit=false",
]


def t_975_two_degrees() -> float:
    """The 97.5% quantile of Student's t with 2 degrees of freedom, by hand: its CDF is
    1/2 + t / (2 sqrt(2 + t^2)), so t / sqrt(2 + t^2) = 0.95 and t^2 = 2 x 0.95^2 / (1 - 0.95^2)."""
    return math.sqrt(2 * 0.95**2 / (1 - 0.95**2))


def p_two_degrees(t: float) -> float:
    """The two-sided p-value of a t statistic with 2 degrees of freedom, by the same CDF."""
    return 1 - abs(t) / math.sqrt(2 + t**2)


def mean_sd(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


@pytest.fixture(scope="module")
def study(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Configuration "plain": three `eurosat fit` runs (seeds 0, 1, 2) and a `eurosat test` of each one's last
    checkpoint, whose own configs all say seed_everything 0 (fit.yaml's). Configuration "lower_lr" (a third of
    the learning rate): fit and tested by the seed study itself for the same seeds."""
    tmp = tmp_path_factory.mktemp("seeds")
    plain = tmp / "plain"
    data = [f"--data.root={sample_root}", f"--trainer.logger.save_dir={plain}", "--trainer.logger.name=runs"]
    for version, seed in enumerate(SEEDS):
        run_cli(["fit", *TINY, *data, f"--seed_everything={seed}", "--model.optimizer.init_args.lr=0.003"])
        last = plain / "runs" / f"version_{2 * version}" / "checkpoints" / "last.ckpt"
        run_cli(["test", *TINY, *data, f"--ckpt_path={last}"])
    out = tmp / "study"
    args = ["--study", f"plain={plain}", "--seeds", *map(str, SEEDS), "--name", "lower_lr", "--out", str(out)]
    lower_lr = [*TINY, f"--data.root={sample_root}", "--model.optimizer.init_args.lr=0.001"]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        summaries, comparisons = seed_study.main([*args, *lower_lr])
    return {"tmp": tmp, "plain": plain, "out": out, "printed": printed.getvalue(), "returned": (summaries, comparisons)}


def test_a_seed_study_of_run_folders_and_its_own_runs(study: dict) -> None:
    out = study["out"]
    with open(out / "seed_study_runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert [(r["configuration"], int(r["seed"])) for r in runs] == [
        (c, s) for c in ("plain", "lower_lr") for s in SEEDS
    ]
    for row in runs:  # each accuracy is its run folder's own test report
        report = json.loads((Path(row["run_folder"]) / "classification_report.json").read_text())
        assert float(row["test_acc"]) == report["accuracy"]
        config = yaml.safe_load((Path(row["run_folder"]) / "config.yaml").read_text())
        if row["configuration"] == "plain":  # the test's own seed is fit.yaml's; the seed is its fit run's
            assert config["seed_everything"] == 0 and config["ckpt_path"].endswith("last.ckpt")
    accuracies = {c: [float(r["test_acc"]) for r in runs if r["configuration"] == c] for c in ("plain", "lower_lr")}

    t = student_t.ppf(0.975, 2)
    assert t == pytest.approx(t_975_two_degrees(), rel=1e-9) == pytest.approx(4.302653, rel=1e-6)
    with open(out / "seed_study_configurations.csv") as f:
        configurations = {row["configuration"]: row for row in csv.DictReader(f)}
    for name, values in accuracies.items():
        row, (mean, sd) = configurations[name], mean_sd(values)
        assert int(row["seeds"]) == 3 and row["interval"] == "95% Student t"
        assert float(row["test_acc_mean"]) == pytest.approx(mean) and float(row["test_acc_std"]) == pytest.approx(sd)
        assert float(row["test_acc_low"]) == pytest.approx(mean - t * sd / math.sqrt(3), abs=1e-9)
        assert float(row["test_acc_high"]) == pytest.approx(mean + t * sd / math.sqrt(3), abs=1e-9)

    # the same seeds: paired by seed, the interval of the mean difference lower_lr - plain
    with open(out / "seed_study_comparisons.csv") as f:
        (compared,) = list(csv.DictReader(f))
    differences = [b - a for a, b in zip(accuracies["plain"], accuracies["lower_lr"], strict=True)]
    mean, sd = mean_sd(differences)
    assert (compared["a"], compared["b"], compared["test"]) == ("plain", "lower_lr", "paired t")
    assert float(compared["difference"]) == pytest.approx(mean)
    assert float(compared["difference_low"]) == pytest.approx(mean - t * sd / math.sqrt(3), abs=1e-9)
    assert float(compared["difference_high"]) == pytest.approx(mean + t * sd / math.sqrt(3), abs=1e-9)
    if sd > 0:
        assert float(compared["p_value"]) == pytest.approx(p_two_degrees(mean / (sd / math.sqrt(3))), rel=1e-6)
    p = float(compared["p_value"])
    expected = (
        f"lower_lr is {'better' if mean > 0 else 'worse'} than plain"
        if p < 0.05
        else "plain and lower_lr are not distinguishable at n = 3 seeds"
    )
    summaries, (comparison,) = study["returned"]
    assert compared["verdict"] == expected == comparison.verdict
    assert summaries["plain"].mean == pytest.approx(sum(accuracies["plain"]) / 3)

    printed = study["printed"]  # the table on the terminal says the same
    for name, values in accuracies.items():
        assert f"{name:<13}   3  {100 * sum(values) / 3:6.2f}%" in printed
    assert f"lower_lr - plain: {100 * mean:+.2f} points" in printed and f"paired t, p = {p:.3g}): {expected}" in printed
    with Image.open(out / "seed_study.png") as image:
        image.verify()
        assert image.format == "PNG" and min(image.size) > 200


def test_the_statistics_against_figures_worked_out_by_hand() -> None:
    a = {0: 0.90, 1: 0.92, 2: 0.91}
    summary = seed_summary(list(a.values()))
    mean, sd = mean_sd(list(a.values()))
    half = t_975_two_degrees() * sd / math.sqrt(3)
    assert (summary.n, summary.mean, summary.std) == (3, pytest.approx(mean), pytest.approx(sd))
    assert (summary.interval.low, summary.interval.high) == (pytest.approx(mean - half), pytest.approx(mean + half))

    # paired by seed: each seed's difference is +2.0, +2.1 or +1.9 points: consistently better
    b = {0: 0.920, 1: 0.941, 2: 0.929}
    better = compare_seeds(a, b, ("A", "B"))
    d_mean, d_sd = mean_sd([0.020, 0.021, 0.019])
    assert better.paired and better.difference.method == "paired t"
    assert better.difference.estimate == pytest.approx(d_mean)
    assert better.p_value == pytest.approx(p_two_degrees(d_mean / (d_sd / math.sqrt(3))))
    assert better.p_value < 0.05 and better.verdict == "B is better than A"
    assert (better.difference.low, better.difference.high) == (
        pytest.approx(d_mean - t_975_two_degrees() * d_sd / math.sqrt(3)),
        pytest.approx(d_mean + t_975_two_degrees() * d_sd / math.sqrt(3)),
    )
    assert compare_seeds(b, a, ("A", "B")).verdict == "B is worse than A"
    unsure = compare_seeds(a, {0: 0.93, 1: 0.90, 2: 0.92}, ("plain", "ramp"))
    assert unsure.p_value >= 0.05 and unsure.verdict == "plain and ramp are not distinguishable at n = 3 seeds"

    # other seeds: Welch's test, its degrees of freedom by Welch-Satterthwaite
    b = {3: 0.95, 4: 0.97, 5: 0.96, 6: 0.99}
    welch = compare_seeds(a, b, ("A", "B"))
    (ma, sa), (mb, sb) = mean_sd(list(a.values())), mean_sd(list(b.values()))
    va, vb = sa**2 / 3, sb**2 / 4
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 3)
    half = student_t.ppf(0.975, df) * math.sqrt(va + vb)
    assert not welch.paired and welch.difference.method == "Welch t" and (welch.n_a, welch.n_b) == (3, 4)
    assert welch.difference.estimate == pytest.approx(mb - ma)
    assert (welch.difference.low, welch.difference.high) == (
        pytest.approx(mb - ma - half),
        pytest.approx(mb - ma + half),
    )
    assert welch.p_value == pytest.approx(2 * student_t.sf((mb - ma) / math.sqrt(va + vb), df))
    assert welch.verdict == "B is better than A"
    assert (
        compare_seeds(a, {3: 0.91, 4: 0.90}, ("A", "B")).verdict
        == "A and B are not distinguishable at n = 3 and 2 seeds"
    )

    # no spread: the interval is the point, not scipy's warning; one seed: no interval, nothing distinguishable
    flat = seed_summary([0.1, 0.1, 0.1])
    assert (flat.std, flat.interval.low, flat.interval.high) == (0, flat.mean, flat.mean)
    same = compare_seeds({0: 0.25, 1: 0.35}, {0: 0.1, 1: 0.2}, ("A", "B"))  # -0.15 each, up to rounding
    assert same.p_value == 0 and same.verdict == "B is worse than A"
    assert compare_seeds({0: 0.1, 1: 0.2}, {0: 0.1, 1: 0.2}).verdict == "A and B are not distinguishable at n = 2 seeds"
    one = seed_summary([0.5])
    assert one.n == 1 and math.isnan(one.std) and math.isnan(one.interval.low)
    assert compare_seeds({0: 0.5}, {0: 0.6}).verdict == "A and B are not distinguishable at n = 1 seed"


def refusal(args: list[str], capsys: pytest.CaptureFixture) -> str:
    """The seed study's one-line error (exit status 2)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        seed_study.main(args)
    assert exit.value.code == 2
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and message.startswith("seed_study: error: "), message
    return message


def test_refusals(study: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    plain, out = study["plain"], study["out"]
    new = ["--out", str(tmp_path / "new")]
    message = refusal(["--study", f"a={tmp_path / 'nothing'}", *new], capsys)
    assert f"no test run (a run folder with classification_report.json) under {tmp_path / 'nothing'}" in message
    assert "no test run" in refusal(["--study", f"a={plain}/runs/version_9*", *new], capsys)  # a glob that matches none

    twice = tmp_path / "twice"  # seed 1's test run, and a copy of it: the same fit run, so the same seed
    shutil.copytree(plain / "runs" / "version_3", twice / "a")
    shutil.copytree(plain / "runs" / "version_3", twice / "b")
    message = refusal(["--study", f"a={twice}", *new], capsys)
    assert f"--study a: seed 1 twice ({twice / 'a'} and {twice / 'b'})" in message

    unseeded = tmp_path / "unseeded"  # a fit run whose config has no seed, and a test of its checkpoint
    fit = unseeded / "fit"
    shutil.copytree(plain / "runs" / "version_0", fit)
    config = yaml.safe_load((fit / "config.yaml").read_text())
    (fit / "config.yaml").write_text(yaml.safe_dump({**config, "seed_everything": None}))
    test = unseeded / "test"
    shutil.copytree(plain / "runs" / "version_1", test)
    config = yaml.safe_load((test / "config.yaml").read_text())
    (test / "config.yaml").write_text(yaml.safe_dump({**config, "ckpt_path": str(fit / "checkpoints" / "last.ckpt")}))
    message = refusal(["--study", f"a={test}", *new], capsys)
    assert f"{fit / 'config.yaml'}: seed_everything is None, not a seed" in message
    (test / "config.yaml").write_text(yaml.safe_dump({**config, "ckpt_path": None}))
    assert "tested without --ckpt_path, so no fit run gives its seed" in refusal(["--study", f"a={test}", *new], capsys)
    (test / "config.yaml").unlink()
    assert f"{test} holds a test report but no config.yaml" in refusal(["--study", f"a={test}", *new], capsys)

    before = (out / "seed_study_runs.csv").read_bytes()  # an earlier study is never overwritten
    message = refusal(["--study", f"plain={plain}", "--out", str(out)], capsys)
    assert f"{out / 'seed_study_runs.csv'} exists; choose another --out" in message
    assert (out / "seed_study_runs.csv").read_bytes() == before
    assert not (tmp_path / "new").exists()  # nothing written by a refused study
    assert "repeats a seed" in refusal(["--seeds", "1", "1", *new, *TINY], capsys)  # refused before any fit
