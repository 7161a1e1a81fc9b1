"""Test accuracy over training seeds: how much of a difference between two configurations is the seed's.

Each ``--study NAME=PATH`` is one configuration: PATH (a folder, searched at any depth, or a glob) holds its
test run folders, each with ``classification_report.json`` and ``config.yaml``; a run's seed is the
``seed_everything`` of the fit that wrote the checkpoint it tested. ``--seeds`` fits and tests one more
configuration here, once per seed, with every option after the study's own going to the CLI, as for
``eurosat fit`` (the final weights are tested, as the learning curve does). Per configuration: the number of
seeds, the mean, standard deviation and 95% Student t interval of the test accuracy; each configuration
against the first: a paired t-test on the seeds both ran where they share two or more, Welch's otherwise, said
in words. Every run must have tested the same images (their number, test-time augmentation and, where
``test_predictions.csv`` exists, their names); a report too old to say is accepted, and said to be. Writes
``seed_study_runs.csv``, ``seed_study_configurations.csv``, ``seed_study_comparisons.csv`` and
``seed_study.png`` into ``--out``, never over earlier ones::

    python -m eurosat_finetune.seed_study --study plain=runs/plain --study ramp=runs/ramp --out runs/seed_study
    python -m eurosat_finetune.seed_study --study plain=runs/plain --seeds 0 1 2 --name ramp --out runs/ramp_seeds \\
        --config configs/fit.yaml --config configs/cpu.yaml --trainer.max_epochs 25
"""

import argparse
import csv
import math
import sys
from pathlib import Path

from matplotlib.figure import Figure

from eurosat_finetune.cli import build_cli, show_progress_messages
from eurosat_finetune.cli.command import one_line
from eurosat_finetune.cli.known_messages import quieted
from eurosat_finetune.errors import ConfigError, OutputError, UserError
from eurosat_finetune.outputs.tested_runs import TestedRun, find_runs, read_run
from eurosat_finetune.statistics.seeds import SeedComparison, SeedSummary, compare_seeds, seed_summary

OUTPUTS = ("seed_study_runs.csv", "seed_study_configurations.csv", "seed_study_comparisons.csv", "seed_study.png")


def parse_study(text: str) -> tuple[str, str]:
    name, sep, where = text.partition("=")
    if not sep or not name or not where:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=PATH (e.g. plain=runs/plain)")
    return name, where


def one_seed_each(name: str, runs: list[TestedRun]) -> list[TestedRun]:
    """The runs by seed, refusing a seed run twice: its two accuracies would count as two seeds' spread."""
    by_seed: dict[int, TestedRun] = {}
    for run in runs:
        if run.seed in by_seed:
            raise ConfigError(
                f"--study {name}: seed {run.seed} twice ({by_seed[run.seed].folder} and {run.folder}); "
                "keep one test run per seed under the path"
            )
        by_seed[run.seed] = run
    return [by_seed[seed] for seed in sorted(by_seed)]


def other_images(a: TestedRun, b: TestedRun) -> str | None:
    """How the images two runs tested differ, in words; None where they are the same, or cannot be told."""
    if not a.checked() or not b.checked():
        return None  # a report written before `intervals`: accepted, and said to be unchecked
    if a.images != b.images:
        return (
            f"{a.folder} tested {a.images} images and {b.folder} {b.images}; test every run on the whole test set "
            "of the same split (no --trainer.limit_test_batches)"
        )
    if a.tta != b.tta:
        with_a, with_b = ("with" if run.tta else "without" for run in (a, b))
        return (
            f"{a.folder} was tested {with_a} test-time augmentation and {b.folder} {with_b}; test every run with "
            "the same --model.tta"
        )
    if a.image_set and b.image_set and a.image_set != b.image_set:
        return (
            f"{a.folder} and {b.folder} tested {a.images} images each but not the same ones (their "
            f"test_predictions.csv name sets {a.image_set} and {b.image_set}); test every run on the same split"
        )
    return None


def check_same_images(studies: dict[str, list[TestedRun]], options: dict[str, str]) -> None:
    """Refuse runs of one configuration, or of a configuration and the first one it is compared with, that
    tested other images: their accuracies would differ by the test set, not the seed or the configuration."""
    first = next(iter(studies), None)
    for name, runs in studies.items():
        pairs = [(a, b, options[name]) for i, a in enumerate(runs) for b in runs[i + 1 :]]
        if name != first:
            pairs += [(a, b, f"{options[first]} against {options[name]}") for a in studies[first] for b in runs]
        for a, b, where in pairs:
            difference = other_images(a, b)
            if difference:
                raise ConfigError(f"{where}: {difference}")


def unchecked(runs: list[TestedRun]) -> list[TestedRun]:
    return [run for run in runs if not run.checked()]


def run_seed(seed: int, runs_dir: Path, cli_args: list[str]) -> TestedRun:
    """Fit with ``seed_everything=seed``, then test the final weights, in one run folder."""
    cli = build_cli(
        [
            *cli_args,
            f"--seed_everything={seed}",
            "--trainer.enable_checkpointing=false",  # one-shot measurements: the final weights are tested
            "--trainer.logger=TensorBoardLogger",
            f"--trainer.logger.save_dir={runs_dir}",
            f"--trainer.logger.name=seed_{seed}",
            "--export.after_fit=false",
            "--report.enabled=true",  # its classification_report.json is what the study reads back
        ],
        run=False,
    )
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    cli.trainer.test(cli.model, datamodule=cli.datamodule)
    return read_run(Path(cli.trainer.log_dir))  # as any other run folder: the same seed and report


def summarise(studies: dict[str, list[TestedRun]]) -> tuple[dict[str, SeedSummary], list[SeedComparison]]:
    """Each configuration's summary, and each later one against the first."""
    summaries = {name: seed_summary([run.accuracy for run in runs]) for name, runs in studies.items()}
    names = list(studies)
    per_seed = {name: {run.seed: run.accuracy for run in runs} for name, runs in studies.items()}
    comparisons = [compare_seeds(per_seed[names[0]], per_seed[b], (names[0], b)) for b in names[1:]]
    return summaries, comparisons


def points(value: float) -> str:
    return f"{100 * value:+.2f}"


def span(low: float, high: float, style: str) -> str:
    """``low to high`` in percent, or ``n/a`` where the t interval is undefined (one seed, no spread)."""
    if math.isnan(low) or math.isnan(high):
        return "n/a"
    return f"{format(100 * low, style)} to {format(100 * high, style)}"


def images_note(studies: dict[str, list[TestedRun]]) -> str:
    """What every run tested, or which runs could not be checked."""
    runs = [run for study in studies.values() for run in study]
    old = unchecked(runs)
    if old:
        folders = ", ".join(str(run.folder) for run in old)
        return (
            f"images not checked for {len(old)} of {len(runs)} runs (reports written before they held "
            f"`intervals`): {folders}"
        )
    tta = "with" if runs[0].tta else "without"
    by_name = ", the same by name" if all(run.image_set for run in runs) else ""
    return f"every run tested {runs[0].images} images{by_name}, {tta} test-time augmentation"


def table(
    studies: dict[str, list[TestedRun]], summaries: dict[str, SeedSummary], comparisons: list[SeedComparison]
) -> str:
    width = max(len("configuration"), *(len(name) for name in studies))
    lines = [
        f"{'configuration':<{width}}  {'n':>2}  {'mean':>7}  {'std':>5}  95% CI (Student t)  seeds",
    ]
    for name, summary in summaries.items():
        seeds = ",".join(str(run.seed) for run in studies[name])
        std = "n/a" if math.isnan(summary.std) else f"{100 * summary.std:.2f}"
        lines.append(
            f"{name:<{width}}  {summary.n:>2}  {100 * summary.mean:6.2f}%  {std:>5}  "
            f"{span(summary.interval.low, summary.interval.high, '6.2f'):<18}  {seeds}"
        )
    for c in comparisons:
        d = c.difference
        p = "n/a" if math.isnan(c.p_value) else f"{c.p_value:.3g}"
        lines.append(
            f"{c.b} - {c.a}: {points(d.estimate)} points (95% CI {span(d.low, d.high, '+.2f')}, {d.method}, "
            f"p = {p}; {c.pairing()}): {c.verdict}"
        )
    lines.append(images_note(studies))
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with open(path, "x", newline="") as f:  # "x": an earlier study is never overwritten, even by a race
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_outputs(
    out: Path,
    studies: dict[str, list[TestedRun]],
    summaries: dict[str, SeedSummary],
    comparisons: list[SeedComparison],
) -> None:
    runs, configurations, compared, png = (out / name for name in OUTPUTS)
    write_csv(
        runs,
        [
            {
                "configuration": name,
                "seed": run.seed,
                "test_acc": run.accuracy,
                "run_folder": str(run.folder),
                "images_checked": run.checked(),  # False: a report written before `intervals`
                "test_images": run.images if run.checked() else "",
                "test_time_augmentation": run.tta if run.checked() else "",
                "image_set": run.image_set or "",
            }
            for name, study in studies.items()
            for run in study
        ],
    )
    write_csv(
        configurations,
        [
            {
                "configuration": name,
                "seeds": s.n,
                "test_acc_mean": s.mean,
                "test_acc_std": s.std,
                "test_acc_low": s.interval.low,
                "test_acc_high": s.interval.high,
                "interval": f"{100 * s.interval.confidence:g}% {s.interval.method}",
                "images_checked": not unchecked(studies[name]),
            }
            for name, s in summaries.items()
        ],
    )
    if comparisons:
        write_csv(
            compared,
            [
                {
                    "a": c.a,
                    "b": c.b,
                    "test": c.difference.method,
                    "pairing": c.pairing(),
                    "seeds_a": c.n_a,
                    "seeds_b": c.n_b,
                    "difference": c.difference.estimate,  # b - a
                    "difference_low": c.difference.low,
                    "difference_high": c.difference.high,
                    "p_value": c.p_value,
                    "verdict": c.verdict,
                    "images_checked": not unchecked(studies[c.a]) and not unchecked(studies[c.b]),
                }
                for c in comparisons
            ],
        )
    plot(studies, summaries, png)


def plot(studies: dict[str, list[TestedRun]], summaries: dict[str, SeedSummary], path: Path) -> None:
    """Each seed's accuracy as a point, beside its configuration's mean with the 95% interval as an error bar."""
    fig = Figure(figsize=(1.5 + 1.4 * len(studies), 4), layout="constrained")
    ax = fig.subplots()
    for x, (name, runs) in enumerate(studies.items()):
        ax.scatter([x - 0.1] * len(runs), [100 * run.accuracy for run in runs], color="grey", alpha=0.7, zorder=2)
        s = summaries[name]
        if not math.isnan(s.interval.low):
            error = [[100 * (s.mean - s.interval.low)], [100 * (s.interval.high - s.mean)]]
            ax.errorbar([x + 0.1], [100 * s.mean], yerr=error, fmt="o", color="C0", capsize=4, zorder=3)
        else:
            ax.plot([x + 0.1], [100 * s.mean], "o", color="C0", zorder=3)
        ax.annotate(
            f"{100 * s.mean:.2f}", (x + 0.1, 100 * s.mean), textcoords="offset points", xytext=(8, -3), fontsize=8
        )
    ax.set_xticks(range(len(studies)), [f"{name}\n(n = {summaries[name].n})" for name in studies])
    ax.set_xlim(-0.6, len(studies) - 0.4)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title("each seed (grey); the mean with\nits 95% Student t interval (blue)", fontsize=9)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> tuple[dict[str, SeedSummary], list[SeedComparison]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--study",
        type=parse_study,
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a configuration's test run folders: a folder searched at any depth, or a glob",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[], help="fit and test one configuration per seed here")
    parser.add_argument("--name", default="run", help="the name of the configuration --seeds runs (default: run)")
    parser.add_argument("--out", type=Path, default=Path("runs/seed_study"), help="output folder")
    args, cli_args = parser.parse_known_args(argv)
    try:
        summaries, comparisons = study(args.study, args.seeds, args.name, args.out, cli_args)
    except UserError as err:
        sys.stderr.write(f"seed_study: error: {one_line(err)}\n")
        raise SystemExit(2) from None
    return summaries, comparisons


def study(
    given: list[tuple[str, str]], seeds: list[int], name: str, out: Path, cli_args: list[str]
) -> tuple[dict[str, SeedSummary], list[SeedComparison]]:
    names = [n for n, _ in given] + ([name] if seeds else [])
    if len(set(names)) < len(names):
        raise ConfigError(f"configuration names {names} repeat one; give each --study (and --name) its own")
    if not names:
        raise ConfigError("nothing to study: give --study NAME=PATH, or --seeds with the CLI's options")
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"--seeds {' '.join(map(str, seeds))} repeats a seed; give each once")
    if cli_args and not seeds:
        raise ConfigError(f"unrecognised options {' '.join(cli_args)}: CLI options go with --seeds only")
    for path in (out / o for o in OUTPUTS):
        if path.exists():
            raise OutputError(f"{path} exists; choose another --out to keep the earlier study")
    runs_dir = out / name
    if seeds and runs_dir.exists():
        raise OutputError(f"{runs_dir} exists; choose another --name or --out for the runs of --seeds")

    studies = {n: one_seed_each(n, find_runs(where)) for n, where in given}
    options = {**{n: f"--study {n}" for n, _ in given}, **({name: f"--seeds (--name {name})"} if seeds else {})}
    check_same_images(studies, options)  # refused before any fit
    if seeds:
        show_progress_messages()  # as `eurosat` does: its progress, and a warning for each old option name
        with quieted():  # as `eurosat` does: libraries' messages known to be harmless (cli/known_messages.py)
            studies[name] = [run_seed(seed, runs_dir, cli_args) for seed in seeds]
        check_same_images(studies, options)  # its runs against the first configuration's: known only now
    out.mkdir(parents=True, exist_ok=True)
    summaries, comparisons = summarise(studies)
    write_outputs(out, studies, summaries, comparisons)
    print(f"\nSeed study: test accuracy (%) over training seeds\n{table(studies, summaries, comparisons)}")
    print(f"Written to {out}: {', '.join(o for o in OUTPUTS if (out / o).exists())}")
    return summaries, comparisons


if __name__ == "__main__":
    main()
