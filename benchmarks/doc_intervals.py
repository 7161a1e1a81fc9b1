"""The 95% intervals of the test accuracies the docs cite, and of the differences between them.

Each accuracy is a proportion of a test set: its interval is Wilson's score interval
(``eurosat_finetune.statistics.proportions.proportion_interval``) of ``round(accuracy x n)`` images right out
of the doc's ``n`` (5,400 for EuroSAT RGB's test split, 3,000 for the GPU ablations' subset, 2,700 for the
validation split, a class's share of the test split for its recall).

Two single runs whose per-image predictions were not kept are compared as independent samples: the
difference (B less A) with Newcombe's hybrid score interval (method 10 of Newcombe 1998, "Interval
estimation for the difference between independent proportions", Statistics in Medicine 17: 873-890),
built from the two Wilson intervals. The runs were tested on the same images, so this is conservative:
the paired comparison (``eurosat test --report.compare_with``) is sharper, but needs both runs' predictions.
The intervals cover the test sample only, not what another training seed would change.

    python benchmarks/doc_intervals.py                 # every figure and comparison, as the docs cite them
    python benchmarks/doc_intervals.py --group ablations
"""

import argparse
import math
from dataclasses import dataclass

from eurosat_finetune.statistics.proportions import Interval, proportion_interval

TEST, SUBSET, VALIDATION = 5400, 3000, 2700


@dataclass(frozen=True)
class Figure:
    """An accuracy as a doc cites it: ``accuracy`` (a fraction) of ``n`` images."""

    group: str
    label: str
    accuracy: float
    n: int

    def interval(self, confidence: float) -> Interval:
        return proportion_interval(round(self.accuracy * self.n), self.n, confidence)


FIGURES = [
    # docs/evaluation.md, the CPU recipe (README.md and docs/quickstart.md cite its first two)
    Figure("cpu", "cpu.yaml, seed 0", 0.9685, TEST),
    Figure("cpu", "cpu.yaml, seed 0, TTA", 0.9720, TEST),
    Figure("cpu", "cpu.yaml, seed 1", 0.9680, TEST),
    Figure("cpu", "cpu.yaml, seed 1, TTA", 0.9715, TEST),
    Figure("cpu", "recall HerbaceousVegetation, seed 0, TTA", 0.948, 600),
    Figure("cpu", "recall Pasture, seed 0, TTA", 0.950, 400),
    Figure("cpu", "recall PermanentCrop, seed 0, TTA", 0.950, 500),
    Figure("cpu", "recall Industrial, seed 0, TTA", 0.990, 500),
    Figure("cpu", "validation, epoch 5", 0.687, VALIDATION),
    Figure("cpu", "validation, epoch 10", 0.817, VALIDATION),
    Figure("cpu", "validation, epoch 15", 0.944, VALIDATION),
    Figure("cpu", "validation, epoch 20", 0.962, VALIDATION),
    # the earlier recipes
    Figure("recipes", "64 px fp32 20 ep", 0.9557, TEST),
    Figure("recipes", "64 px fp32 20 ep, TTA", 0.9643, TEST),
    Figure("recipes", "96 px bf16 22 ep 2,2,2,2", 0.9680, TEST),
    Figure("recipes", "96 px bf16 22 ep 2,2,2,2, TTA", 0.9715, TEST),
    Figure("recipes", "96 px bf16 25 ep 2,2,2,2", 0.9709, TEST),
    Figure("recipes", "96 px bf16 25 ep 2,2,2,2, TTA", 0.9737, TEST),
    Figure("recipes", "18 ep lr 2e-3 2,2,2,2", 0.9667, TEST),
    Figure("recipes", "18 ep lr 2e-3 2,2,2,2, TTA", 0.9700, TEST),
    # the variants
    Figure("variants", "3 stages", 0.9659, TEST),
    Figure("variants", "3 stages, TTA", 0.9720, TEST),
    Figure("variants", "stem 16", 0.9672, TEST),
    Figure("variants", "stem 16, TTA", 0.9719, TEST),
    Figure("variants", "80 px 20 ep 2,2,2,2", 0.9641, TEST),
    Figure("variants", "80 px 20 ep 2,2,2,2, TTA", 0.9674, TEST),
    Figure("variants", "depths 1,1,1,1 25 ep", 0.9667, TEST),
    Figure("variants", "depths 1,1,1,1 25 ep, TTA", 0.9717, TEST),
    Figure("variants", "ramp 20 ep to 96 px by 10", 0.9669, TEST),
    Figure("variants", "ramp 20 ep to 96 px by 10, TTA", 0.9687, TEST),
    Figure("variants", "ramp 25 ep to 96 px by 12", 0.9707, TEST),
    Figure("variants", "ramp 25 ep to 96 px by 12, TTA", 0.9730, TEST),
    Figure("variants", "24 ep at 80 px", 0.9622, TEST),
    Figure("variants", "24 ep at 80 px, TTA", 0.9657, TEST),
    Figure("variants", "no decay on norms, seed 0", 0.9698, TEST),
    Figure("variants", "no decay on norms, seed 1", 0.9680, TEST),
    Figure("variants", "no decay on norms, ramp 25 ep", 0.9702, TEST),
    Figure("variants", "no decay on norms, seed 0, validation epoch 20", 0.969, VALIDATION),
    Figure("variants", "no decay on norms, ramp 25 ep, validation epoch 25", 0.971, VALIDATION),
    # the ablations on the GPU subset (3,000 test images)
    Figure("ablations", "64 px recipe", 0.915, SUBSET),
    Figure("ablations", "no label smoothing", 0.886, SUBSET),
    Figure("ablations", "no dihedral augmentation", 0.876, SUBSET),
    Figure("ablations", "+ MixUp", 0.905, SUBSET),
    Figure("ablations", "+ CutMix", 0.884, SUBSET),
    Figure("ablations", "+ balanced class weights", 0.911, SUBSET),
    Figure("ablations", "+ EMA", 0.765, SUBSET),
    Figure("ablations", "lower peak lr", 0.904, SUBSET),
    Figure("ablations", "cosine per epoch", 0.899, SUBSET),
    # docs/maps.md: the mosaic's cells
    Figure("maps", "mosaic map cells", 138 / 144, 144),
    # docs/sentinel2_weights.md: reported elsewhere, not measured here; n assumed from their 20% test splits
    Figure("reported", "SSL4EO ResNet-50 MoCo or DINO (reported)", 0.991, TEST),
    Figure("reported", "SSL4EO ViT-S/16 DINO (reported)", 0.990, TEST),
    Figure("reported", "SSL4EO ViT-S/16 MAE (reported)", 0.987, TEST),
    Figure("reported", "SSL4EO ViT-S/16 MoCo (reported)", 0.986, TEST),
    Figure("reported", "ViT-B/16 ImageNet, RGB (reported)", 0.984, TEST),
]

# (group, B, A): B less A, each a label of FIGURES
COMPARISONS = [
    ("cpu", "cpu.yaml, seed 1", "cpu.yaml, seed 0"),
    ("cpu", "cpu.yaml, seed 1, TTA", "cpu.yaml, seed 0, TTA"),
    ("cpu", "cpu.yaml, seed 0, TTA", "cpu.yaml, seed 0"),
    ("cpu", "recall Industrial, seed 0, TTA", "recall HerbaceousVegetation, seed 0, TTA"),
    ("recipes", "cpu.yaml, seed 0", "96 px bf16 25 ep 2,2,2,2"),
    ("recipes", "cpu.yaml, seed 0, TTA", "96 px bf16 25 ep 2,2,2,2, TTA"),
    ("recipes", "cpu.yaml, seed 0", "64 px fp32 20 ep"),
    ("recipes", "96 px bf16 22 ep 2,2,2,2", "64 px fp32 20 ep"),
    ("recipes", "96 px bf16 25 ep 2,2,2,2", "18 ep lr 2e-3 2,2,2,2"),
    ("recipes", "96 px bf16 25 ep 2,2,2,2, TTA", "18 ep lr 2e-3 2,2,2,2, TTA"),
    ("recipes", "64 px fp32 20 ep, TTA", "64 px fp32 20 ep"),
    ("variants", "3 stages", "cpu.yaml, seed 0"),
    ("variants", "3 stages, TTA", "cpu.yaml, seed 0, TTA"),
    ("variants", "stem 16", "cpu.yaml, seed 0"),
    ("variants", "stem 16, TTA", "cpu.yaml, seed 0, TTA"),
    ("variants", "ramp 25 ep to 96 px by 12", "cpu.yaml, seed 0"),
    ("variants", "ramp 25 ep to 96 px by 12, TTA", "cpu.yaml, seed 0, TTA"),
    ("variants", "ramp 20 ep to 96 px by 10", "cpu.yaml, seed 0"),
    ("variants", "ramp 20 ep to 96 px by 10, TTA", "cpu.yaml, seed 0, TTA"),
    ("variants", "24 ep at 80 px", "cpu.yaml, seed 0"),
    ("variants", "24 ep at 80 px, TTA", "cpu.yaml, seed 0, TTA"),
    ("variants", "no decay on norms, seed 0", "cpu.yaml, seed 0"),
    ("variants", "no decay on norms, seed 1", "cpu.yaml, seed 1"),
    ("variants", "no decay on norms, ramp 25 ep", "ramp 25 ep to 96 px by 12"),
    ("ablations", "no label smoothing", "64 px recipe"),
    ("ablations", "no dihedral augmentation", "64 px recipe"),
    ("ablations", "+ MixUp", "64 px recipe"),
    ("ablations", "+ CutMix", "64 px recipe"),
    ("ablations", "+ balanced class weights", "64 px recipe"),
    ("ablations", "+ EMA", "64 px recipe"),
    ("ablations", "lower peak lr", "64 px recipe"),
    ("ablations", "cosine per epoch", "64 px recipe"),
    ("reported", "SSL4EO ResNet-50 MoCo or DINO (reported)", "ViT-B/16 ImageNet, RGB (reported)"),
    ("reported", "SSL4EO ResNet-50 MoCo or DINO (reported)", "SSL4EO ViT-S/16 MoCo (reported)"),
]


def newcombe(b: Interval, a: Interval) -> Interval:
    """B less A with Newcombe's hybrid score interval (his method 10), from the two Wilson intervals."""
    difference = b.estimate - a.estimate
    low = difference - math.sqrt((b.estimate - b.low) ** 2 + (a.high - a.estimate) ** 2)
    high = difference + math.sqrt((b.high - b.estimate) ** 2 + (a.estimate - a.low) ** 2)
    return Interval(difference, low, high, "Newcombe hybrid score", b.confidence)


def verdict(difference: Interval, n_b: int, n_a: int) -> str:
    if difference.low > 0:
        return "higher"
    if difference.high < 0:
        return "lower"
    n = f"{n_b:,}" if n_b == n_a else f"{n_b:,} and {n_a:,}"
    return f"not distinguishable at n = {n}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = sorted({figure.group for figure in FIGURES})
    parser.add_argument("--group", choices=groups, action="append", help="only these groups (default: all)")
    parser.add_argument("--confidence", type=float, default=0.95, help="the intervals' level (default 0.95)")
    args = parser.parse_args()
    chosen = set(args.group or groups)
    figures = {figure.label: figure for figure in FIGURES}
    intervals = {figure.label: figure.interval(args.confidence) for figure in FIGURES}

    level = f"{100 * args.confidence:g}%"
    print(f"{'figure':<52} {'accuracy':>9} {'n':>6} {'low':>7} {'high':>7}   ({level} Wilson score)")
    for figure in FIGURES:
        if figure.group in chosen:
            interval = intervals[figure.label]
            print(
                f"{figure.label:<52} {100 * interval.estimate:>8.2f}% {figure.n:>6} "
                f"{100 * interval.low:>7.2f} {100 * interval.high:>7.2f}"
            )
    print()
    print(f"{'B less A (points)':<86} {'diff':>6} {'low':>6} {'high':>6}   ({level} Newcombe hybrid score)")
    for group, b, a in COMPARISONS:
        if group in chosen:
            difference = newcombe(intervals[b], intervals[a])
            pair = f"{b} - {a}"
            print(
                f"{pair:<86} {100 * difference.estimate:>+6.2f} {100 * difference.low:>+6.2f} "
                f"{100 * difference.high:>+6.2f}   {verdict(difference, figures[b].n, figures[a].n)}"
            )


if __name__ == "__main__":
    main()
