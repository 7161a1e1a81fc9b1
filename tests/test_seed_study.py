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
from eurosat_finetune.outputs import tested_runs
from eurosat_finetune.statistics.seeds import NO_SPREAD, compare_seeds, seed_summary

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


@pytest.mark.slow  # twelve CLI runs: the full suite; the statistics by hand stay quick
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
    # the seeds' differences vary (they are fixed by the seeds: 0, -12.5 and -10 points on this sample), so the
    # t-test is defined and its p-value is checked, never skipped
    assert sd > 0
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
    assert f"lower_lr - plain: {100 * mean:+.2f} points" in printed
    assert f"paired t, p = {p:.3g}; paired on the same 3 seeds): {expected}" in printed
    # every run tested the same test images, as its report and test_predictions.csv say
    assert {(r["images_checked"], r["test_images"], r["test_time_augmentation"]) for r in runs} == {
        ("True", "40", "False")
    }
    assert len({r["image_set"] for r in runs}) == 1 and runs[0]["image_set"]
    assert "every run tested 40 images, the same by name, without test-time augmentation" in printed
    assert compared["pairing"] == "paired on the same 3 seeds" and compared["images_checked"] == "True"
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

    # no spread in a summary: the interval is the point, not scipy's warning; one seed: no interval
    flat = seed_summary([0.1, 0.1, 0.1])
    assert (flat.std, flat.interval.low, flat.interval.high) == (0, flat.mean, flat.mean)
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


@pytest.mark.slow  # the study's twelve CLI runs: the full suite
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


def test_no_spread_over_seeds_decides_nothing() -> None:
    """A constant paired difference, or identical seeds on both sides, leaves the t statistic undefined (0/0 or
    infinite): no p-value, no interval, and no verdict of better or worse."""
    constant = compare_seeds({0: 0.25, 1: 0.35, 2: 0.3}, {0: 0.1, 1: 0.2, 2: 0.15}, ("A", "B"))  # -15 points each
    zero = compare_seeds({0: 0.1, 1: 0.2}, {0: 0.1, 1: 0.2}, ("A", "B"))  # 0 each
    flat = compare_seeds({0: 0.9, 1: 0.9, 2: 0.9}, {3: 0.95, 4: 0.95, 5: 0.95}, ("A", "B"))  # Welch, no spread
    for c in (constant, zero, flat):
        assert math.isnan(c.p_value) and math.isnan(c.difference.low) and math.isnan(c.difference.high)
        assert c.verdict == NO_SPREAD == "cannot tell: no spread over seeds"
    assert constant.difference.estimate == pytest.approx(-0.15) and flat.difference.estimate == pytest.approx(0.05)
    assert (constant.paired, flat.paired) == (True, False)

    # printed as n/a, not "+nan to +nan"; one seed per configuration the same
    def runs(accuracies: dict[int, float]) -> list[tested_runs.TestedRun]:
        return [tested_runs.TestedRun(Path(f"r{seed}"), seed, acc, 40, False) for seed, acc in accuracies.items()]

    studies = {"A": runs({0: 0.25, 1: 0.35, 2: 0.3}), "B": runs({0: 0.1, 1: 0.2, 2: 0.15})}
    summaries, comparisons = seed_study.summarise(studies)
    text = seed_study.table(studies, summaries, comparisons)
    assert "B - A: -15.00 points (95% CI n/a, paired t, p = n/a; paired on the same 3 seeds): " + NO_SPREAD in text
    assert "nan" not in text
    studies = {"A": runs({0: 0.5}), "B": runs({0: 0.6})}
    summaries, comparisons = seed_study.summarise(studies)
    text = seed_study.table(studies, summaries, comparisons)
    assert "A               1   50.00%    n/a  n/a                 0" in text
    assert "B - A: +10.00 points (95% CI n/a, Welch t, p = n/a; Welch: 1 seed in common, too few to pair)" in text
    assert "nan" not in text


def test_partly_shared_seeds_are_paired_on_those_in_common() -> None:
    a = {0: 0.90, 1: 0.92, 2: 0.91, 3: 0.95}
    b = {1: 0.940, 2: 0.921, 3: 0.979, 7: 0.80}
    c = compare_seeds(a, b, ("A", "B"))
    differences = [0.940 - 0.92, 0.921 - 0.91, 0.979 - 0.95]  # seeds 1, 2, 3; A's 0 and B's 7 left out
    mean, sd = mean_sd(differences)
    assert c.paired and c.difference.method == "paired t" and (c.n_a, c.n_b, c.shared) == (3, 3, 3)
    assert (c.left_out_a, c.left_out_b) == ((0,), (7,))
    assert c.pairing() == "paired on the 3 seeds in common (left out: A's 0; B's 7)"
    assert c.difference.estimate == pytest.approx(mean)
    assert c.p_value == pytest.approx(p_two_degrees(mean / (sd / math.sqrt(3))))
    half = t_975_two_degrees() * sd / math.sqrt(3)
    assert (c.difference.low, c.difference.high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert c.verdict == "A and B are not distinguishable at n = 3 seeds"

    # one seed in common is too few to pair: Welch on all runs, and said so
    welch = compare_seeds({0: 0.90, 1: 0.92, 2: 0.91}, {2: 0.95, 8: 0.97, 9: 0.96}, ("A", "B"))
    assert not welch.paired and (welch.n_a, welch.n_b, welch.shared) == (3, 3, 1)
    assert welch.pairing() == "Welch: 1 seed in common, too few to pair"
    assert welch.difference.estimate == pytest.approx(0.96 - 0.91)
    assert compare_seeds({0: 0.9, 1: 0.8}, {2: 0.7, 3: 0.6}).pairing() == "Welch: no seed in common"


def copy_runs(plain: Path, to: Path) -> list[Path]:
    """Copies of the fixture's three `eurosat test` runs (seeds 0, 1, 2: their ckpt_path still leads to the
    fit runs), which tested the sample's 40 test images without test-time augmentation."""
    copies = []
    for version in (1, 3, 5):
        shutil.copytree(plain / "runs" / f"version_{version}", to / f"version_{version}")
        copies.append(to / f"version_{version}")
    return copies


def edit_report(folder: Path, **intervals: object) -> None:
    path = folder / "classification_report.json"
    report = json.loads(path.read_text())
    if intervals:
        report["intervals"].update(intervals)
    else:  # as written before reports had intervals
        del report["intervals"]
    path.write_text(json.dumps(report))


@pytest.mark.slow  # the study's twelve CLI runs: the full suite
def test_runs_that_tested_other_images_are_refused(
    study: dict, sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    plain = study["plain"]
    new = ["--out", str(tmp_path / "new")]

    few = copy_runs(plain, tmp_path / "few")  # one configuration: one run of 4 images among runs of 40
    edit_report(few[1], images=4)
    fits = ["--seeds", "7", "--name", "more", *TINY, f"--data.root={sample_root}"]
    message = refusal(["--study", f"few={tmp_path / 'few'}", *new, *fits], capsys)
    assert f"--study few: {few[0]} tested 40 images and {few[1]} 4; test every run on the whole test set" in message
    assert not (tmp_path / "new").exists()  # refused before the fit of --seeds

    limited = copy_runs(plain, tmp_path / "limited")  # two configurations: 40 images each, and 4 each
    for folder in limited:
        edit_report(folder, images=4)
    message = refusal(["--study", f"plain={plain}", "--study", f"limited={tmp_path / 'limited'}", *new], capsys)
    assert f"--study plain against --study limited: {plain / 'runs' / 'version_1'} tested 40 images and " in message
    assert f"{limited[0]} 4;" in message

    augmented = copy_runs(plain, tmp_path / "augmented")  # with and without test-time augmentation
    edit_report(augmented[2], test_time_augmentation=True)
    message = refusal(["--study", f"a={tmp_path / 'augmented'}", *new], capsys)
    assert f"--study a: {augmented[0]} was tested without test-time augmentation and {augmented[2]} with" in message

    renamed = copy_runs(plain, tmp_path / "renamed")  # 40 images each, one of them another
    predictions = renamed[1] / "test_predictions.csv"
    header, first, *rest = predictions.read_text().splitlines()
    other = "Forest/not_in_the_split.jpg" + first[first.index(",") :]
    predictions.write_text("\n".join([header, other, *rest]) + "\n")
    message = refusal(["--study", f"a={tmp_path / 'renamed'}", *new], capsys)
    assert f"--study a: {renamed[0]} and {renamed[1]} tested 40 images each but not the same ones" in message

    old = copy_runs(plain, tmp_path / "old")  # a report from before `intervals`: accepted, and said unchecked
    edit_report(old[0])
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        seed_study.main(["--study", f"plain={plain}", "--study", f"old={tmp_path / 'old'}", *new])
    assert f"images not checked for 1 of 6 runs (reports written before they held `intervals`): {old[0]}" in (
        printed.getvalue()
    )
    with open(tmp_path / "new" / "seed_study_runs.csv") as f:
        checked = {row["run_folder"]: row for row in csv.DictReader(f)}
    assert (checked[str(old[0])]["images_checked"], checked[str(old[0])]["test_images"]) == ("False", "")
    assert checked[str(old[1])]["images_checked"] == "True"
    with open(tmp_path / "new" / "seed_study_configurations.csv") as f:
        assert {row["configuration"]: row["images_checked"] for row in csv.DictReader(f)} == {
            "plain": "True",
            "old": "False",
        }
    with open(tmp_path / "new" / "seed_study_comparisons.csv") as f:
        assert next(csv.DictReader(f))["images_checked"] == "False"
