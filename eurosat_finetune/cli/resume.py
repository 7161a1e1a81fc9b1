"""Resuming a fit from a run's own checkpoint continues that run, in that run's folder.

Lightning gives every fit a new ``version_N``, a resumed one too. The resumed run then writes to a
new checkpoint folder, so ModelCheckpoint does not restore its best score ("The dirpath has changed")
and the first validation after the resume replaces ``best.ckpt``, even when it is worse; the
TensorBoard curves are split over two folders. Here, before the loggers are built, a fit whose
``--ckpt_path`` lies in ``<save_dir>/<name>/<version>/checkpoints/`` of one of its loggers gets that
version, so the checkpoint folder, the TensorBoard run and the best score are the run's own again.
A new fit (no ``--ckpt_path``) still gets a new version, as before.
"""

import os
from pathlib import Path

from jsonargparse import Namespace

# Lightning's logger when ``trainer.logger`` is unset or true (tensorboard is a dependency here).
DEFAULT_LOGGER = "lightning.pytorch.loggers.TensorBoardLogger"
DEFAULT_LOGGER_NAME = "lightning_logs"


def run_of_checkpoint(ckpt_path: str | Path) -> Path | None:
    """The run folder a checkpoint was saved in, if ModelCheckpoint put it in its default place
    (``<run>/checkpoints/<name>.ckpt``)."""
    path = Path(ckpt_path).resolve()
    return path.parents[1] if path.parent.name == "checkpoints" and len(path.parents) > 2 else None


def latest_run_with_last_checkpoint(logger_root: Path) -> Path | None:
    """For ``--ckpt_path last``: the run under ``logger_root`` whose ``last.ckpt`` was written last."""
    candidates = list(logger_root.glob("*/checkpoints/last.ckpt"))
    return max(candidates, key=lambda p: p.stat().st_mtime).parents[1] if candidates else None


def logger_specs(trainer: Namespace) -> list[Namespace]:
    """The ``class_path``/``init_args`` specs of the fit's loggers; Lightning's default logger is
    spelled out (and put in the config) so that its version can be chosen."""
    logger = trainer.logger
    if logger is None or logger is True:
        save_dir = trainer.default_root_dir or os.getcwd()
        init_args = Namespace(save_dir=save_dir, name=DEFAULT_LOGGER_NAME, version=None)
        logger = Namespace(class_path=DEFAULT_LOGGER, init_args=init_args)
        trainer.logger = logger
    if logger is False:
        return []
    specs = logger if isinstance(logger, list) else [logger]
    return [spec for spec in specs if isinstance(spec, Namespace) and "init_args" in spec]


def logger_root(spec: Namespace) -> Path | None:
    """``<save_dir>/<name>``, where a TensorBoard or CSV logger puts its ``version_N`` folders."""
    args = spec.init_args
    if args.get("save_dir") is None:
        return None
    return (Path(args.save_dir) / (args.get("name") or "")).resolve()


def last_checkpoint_of(fit_config: Namespace) -> Path | None:
    """For ``--ckpt_path last``: the ``last.ckpt`` that Lightning would resume, the newest of the runs
    under the loggers' folders (loggers given a version do not look). Named by its path, LightningCLI
    rebuilds the network from the checkpoint's own options (offline), not from the config's (e.g.
    ``model.weights`` to fetch), and :func:`continue_resumed_run` finds its run like any other's."""
    for spec in logger_specs(fit_config.trainer):
        root = logger_root(spec)
        if root is None or spec.init_args.get("version") is not None:
            continue
        run = latest_run_with_last_checkpoint(root)
        if run is not None:
            return run / "checkpoints" / "last.ckpt"
    return None


def continue_resumed_run(fit_config: Namespace) -> Path | None:
    """Point the loggers of a resumed fit at the run its checkpoint comes from; return that run's
    folder (None for a new run). Loggers given an explicit version keep it. ``last`` has been replaced by
    its path already (:func:`last_checkpoint_of`), if there is a run to resume."""
    ckpt_path = fit_config.get("ckpt_path")
    if ckpt_path is None:
        return None
    resumed = None
    for spec in logger_specs(fit_config.trainer):
        root = logger_root(spec)
        if root is None or spec.init_args.get("version") is not None:
            continue
        run = run_of_checkpoint(ckpt_path)
        if run is not None and run.parent == root:
            spec.init_args.version = run.name
            resumed = run
    return resumed


def resume_number(run: Path) -> int:
    """How many times ``run`` has been resumed before, plus one."""
    k = 1
    while (run / f"config.resume{k}.yaml").exists() or any(run.glob(f"*.before-resume{k}*")):
        k += 1
    return k


def resumed_config_name(run: Path, k: int) -> str:
    """The original ``config.yaml`` stays; a resumed run's config is saved as ``config.resume<k>.yaml``."""
    return f"config.resume{k}.yaml" if (run / "config.yaml").exists() else "config.yaml"


def keep_earlier_metrics(run: Path, k: int) -> None:
    """Lightning's CSVLogger deletes the ``metrics.csv`` it finds; move it to ``metrics.before-resume<k>.csv``."""
    metrics = run / "metrics.csv"
    if metrics.is_file():
        metrics.rename(run / f"metrics.before-resume{k}.csv")


def keep_earlier_outputs(paths: list[Path], run: Path, k: int) -> None:
    """A resumed run writes its outputs where the run keeps them (its ``huggingface/`` export, say); those
    the run wrote before, in its own folder, move aside to ``<name>.before-resume<k>``, as its metrics do."""
    for path in paths:
        if path.resolve().parent == run.resolve() and path.exists():
            path.rename(path.with_name(f"{path.name}.before-resume{k}"))
