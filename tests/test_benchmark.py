"""The benchmark scripts run as documented (their timings are not checked: they belong to benchmarks/).

Two run as scripts (``python benchmarks/maps.py --product`` and ``--stac``); the others' ``main`` runs in this
process, with the arguments their command lines take (a process costs 10 s of imports).
"""

import importlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import REPO

pytestmark = pytest.mark.slow  # every test here runs a benchmark script


@pytest.fixture
def benchmark(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Callable[..., tuple[dict, str]]:
    """``run(script, options, out)``: ``python benchmarks/<script> <options> --json <out>``, as its ``main`` in
    this process; the JSON result and what it printed."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # as running a script puts its folder first

    def run(script: str, options: list[str], out: Path) -> tuple[dict, str]:
        importlib.import_module(script.removesuffix(".py")).main([*options, "--json", str(out)])
        return json.loads(out.read_text()), capsys.readouterr().out

    return run


def tiny_vit_training_flops(classes: int = 10) -> float:
    """FLOPs of one training image through the benchmarks' "tiny" ViT (width 64, MLP 128, 2 layers, patches of
    16) at 32 px, by hand: a multiply-add is 2 FLOPs, the backward pass twice the forward."""
    patches, width, mlp, layers = (32 // 16) ** 2, 64, 128, 2
    tokens = patches + 1  # and [CLS]
    per_layer = 2 * tokens * width * width * 4 + 2 * 2 * tokens * tokens * width + 2 * 2 * tokens * width * mlp
    forward = 2 * patches * (3 * 16 * 16) * width + layers * per_layer + 2 * width * classes
    return 3 * forward


def test_throughput_benchmark_runs_both_pipelines(sample_root: Path, tmp_path: Path, benchmark) -> None:
    options = ["--model", "tiny", "--image-size", "32", "--batch-size", "8", "--steps", "1", "--warmup", "1"]
    options += ["--data", str(sample_root / "EuroSAT_RGB"), "--workers", "0"]
    measured, printed = benchmark("throughput.py", options, tmp_path / "out.json")
    for key in ("imagefolder_data_img_s", "imagefolder_train_img_s", "project_data_img_s", "project_train_img_s"):
        assert measured[key] > 0, key
    assert measured["train_gflop_per_image"] * 1e9 == pytest.approx(tiny_vit_training_flops())
    assert "ratio_train" in printed and "project_data_over_train" in printed


def test_pipelines_benchmark_measures_both_under_the_trainer(sample_root: Path, tmp_path: Path, benchmark) -> None:
    options = ["--model", "tiny", "--image-size", "32", "--batch-size", "8", "--steps", "6", "--window", "3"]
    options += ["--data", str(sample_root / "EuroSAT_RGB"), "--workers", "0"]
    measured, _ = benchmark("pipelines.py", options, tmp_path / "out.json")
    for run in ("package", "tutorial"):  # what each run's ThroughputMonitor logged: the same network's FLOPs
        assert measured[run]["img_s"] > 0, run
        assert measured[run]["flop_s"] / measured[run]["img_s"] == pytest.approx(tiny_vit_training_flops()), run
    assert "ratio" in measured


def test_maps_benchmark_maps_a_scene(tmp_path: Path, benchmark) -> None:
    options = ["--size", "300", "--tile-size", "64", "--batch-size", "16", "--workers", "0"]
    measured, _ = benchmark("maps.py", options, tmp_path / "out.json")  # it maps in a child process of its own
    ends = ("classes.qml", "classes.tif", "classes.tif.aux.xml", "json", "preview.png")  # the map, its legend, ...
    assert measured["windows"] == 25 and measured["maps"] == [f"tile.{end}" for end in ends]
    assert measured["windows_per_s"] > 0 and measured["peak_rss_gib"] > 0


def test_maps_benchmark_maps_a_product_and_times_decoding(tmp_path: Path) -> None:
    options = ["--product", "--size", "384", "--tile-size", "64", "--batch-size", "16", "--workers", "0"]
    command = [sys.executable, str(REPO / "benchmarks" / "maps.py"), *options, "--json", str(tmp_path / "out.json")]
    result = subprocess.run(
        [*command, "--products", str(tmp_path / "kept")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads((tmp_path / "out.json").read_text())
    assert measured["windows"] == 36 and measured["rasterio_decode_once_s"] > 0
    assert measured["ratio"] > 0 and measured["windows_per_s"] > 0
    assert measured["peak_memory_gib_predict_and_workers"] > 0.1
    assert len(list((tmp_path / "kept").glob("S2A_MSIL2A_*.SAFE"))) == 1  # kept for the next run


def test_maps_benchmark_maps_a_stac_composite_and_counts_its_bytes(tmp_path: Path) -> None:
    """``--stac`` at 1,536 px in 256 px tiles: a composite of a 7 km bbox, its bytes beside those of the tiles under
    it (every band file and SCL of three dates), its time beside rasterio's; the COGs kept for the next run."""
    options = ["--stac", "--size", "1536", "--block", "256", "--bbox-km", "7", "--batch-size", "16"]
    command = [sys.executable, str(REPO / "benchmarks" / "maps.py"), *options, "--json", str(tmp_path / "out.json")]
    result = subprocess.run(
        [*command, "--stac-files", str(tmp_path / "kept")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads((tmp_path / "out.json").read_text())
    assert measured["maps"] == ["composite_20230615_20230710.classes.tif"] and measured["dates"] == 3
    assert measured["files_fetched"] == 3 * 13 and measured["requests"] > measured["files_fetched"]
    # every tile under the bbox is read, and a little more (headers, overviews, GDAL's 16 KB chunks)
    assert 0.9 * measured["bbox_tile_bytes"] <= measured["bytes_fetched"] < 3 * measured["bbox_tile_bytes"]
    assert measured["bytes_ratio"] == pytest.approx(measured["bytes_fetched"] / measured["bbox_tile_bytes"], 0.01)
    assert measured["rasterio_bytes_fetched"] >= 0.9 * measured["bbox_tile_bytes"]
    assert measured["predict_s"] > 0 and measured["rasterio_read_windows_once_s"] > 0 and measured["time_ratio"] > 0
    assert measured["fixed_s"] > 0 and "time_ratio_after_start" in measured
    assert measured["peak_memory_gib_predict"] > 0.1
    assert json.loads((tmp_path / "kept" / "items.json").read_text())["size"] == 1536  # kept for the next run


def test_bands_benchmark_measures_3_and_13_bands(tmp_path: Path, benchmark) -> None:
    options = ["--images-per-class", "10", "--steps", "3", "--window", "2", "--batch-size", "8", "--workers", "0"]
    measured, _ = benchmark("bands.py", options, tmp_path / "out.json")
    assert measured["images"] == 100 and measured["cache_kb_per_image"] == pytest.approx(
        13 * 64 * 64 * 2 / 1000, rel=0.01
    )
    assert measured["train_img_s_rgb_3_bands"] > 0 and measured["train_img_s_all_13_bands"] > 0


def test_onnx_latency_benchmark_times_both_runtimes(tmp_path: Path, benchmark) -> None:
    options = [
        "--model",
        "tiny",
        "--image-size",
        "32",
        "--input-size",
        "16",
        "--batch-sizes",
        "1",
        "3",
        "--repeats",
        "2",
    ]
    measured, _ = benchmark("onnx_latency.py", options, tmp_path / "out.json")
    assert measured["onnx_mb"] > 0
    for runtime in ("onnxruntime", "torch"):
        assert measured[f"{runtime}_ms_per_image_batch_1"] > 0 and measured[f"{runtime}_ms_per_image_batch_3"] > 0


def test_profile_step_times_each_variant_and_profiles_the_shipped_step(tmp_path: Path, benchmark) -> None:
    options = ["--model", "tiny", "--image-size", "32", "--batch-size", "8", "--warmup", "2", "--steps", "3"]
    options += ["--profile-steps", "2", "--top", "200", "--by-shape"]
    measured, printed = benchmark("profile_step.py", options, tmp_path / "out.json")
    variants = measured["variants"]
    assert len(variants) == 8 and next(iter(variants)) == "package (as shipped)"
    for name, row in variants.items():
        assert row["ms_per_step"] > 0 and row["images_per_s"] == pytest.approx(8 / row["ms_per_step"] * 1000), name
    # the GPU's idle share of the profiled steps, where the benchmark ran on one
    idle = measured["gpu_idle_fraction"]
    assert measured["profiled"] is True and (idle is None if not torch.cuda.is_available() else 0 <= idle <= 1)
    assert "Self CPU time total" in printed  # torch.profiler's table of the top kernels
    assert "Input Shapes" in printed and "[8, 3, 32, 32]" in printed  # by layer (--by-shape)
    assert "| package (as shipped) |" in printed


def test_profile_step_without_the_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """``--profile-steps 0`` times the variants and skips torch.profiler (a quick speed check)."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from profile_step import main

    options = ["--model", "tiny", "--image-size", "16", "--batch-size", "4", "--warmup", "1", "--steps", "1"]
    main([*options, "--variants", "package (as shipped)", "--profile-steps", "0", "--json", str(tmp_path / "out.json")])
    printed = capsys.readouterr().out
    assert "| package (as shipped) |" in printed
    assert "Self CPU time total" not in printed and "GPU idle fraction" not in printed
    measured = json.loads((tmp_path / "out.json").read_text())
    assert measured["profiled"] is False and list(measured["variants"]) == ["package (as shipped)"]
    assert measured["variants"]["package (as shipped)"]["ms_per_step"] > 0

    with pytest.raises(SystemExit) as exit:
        main([*options, "--profile-steps", "-1"])
    assert exit.value.code == 2
    assert "--profile-steps=-1: give 0 (no profile) or more steps" in capsys.readouterr().err


def test_the_mosaic_names_a_missing_archive_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    mosaic = importlib.import_module("mosaic")
    with pytest.raises(SystemExit) as exit:
        mosaic.main(["--zip", str(tmp_path / "nowhere.zip"), "--out", str(tmp_path / "mosaic")])
    assert exit.value.code == 2
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .endswith(  # after the program's name, which argparse takes from argv
            f": error: no EuroSAT RGB archive at {tmp_path / 'nowhere.zip'}; give its path with --zip "
            "(`eurosat fit --config configs/fit.yaml` downloads EuroSAT_RGB.zip from Zenodo into data/)"
        )
    )
    assert mosaic.REAL_ZIP in mosaic.ARCHIVES and mosaic.ARCHIVES[0] == REPO / "data" / "EuroSAT_RGB.zip"


def test_a_sampled_child_that_writes_much_to_stderr_ends_and_a_failing_one_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run_sampled`` reads the child's stderr only at its end: 200 KB of it (three times a pipe's buffer) must
    neither stop the child nor be lost when it fails."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from maps import run_sampled

    writes = "import sys, time; time.sleep(0.5); sys.stderr.write('x' * 200_000 + 'the last line')"  # sampled first
    seconds, peak, largest = run_sampled([sys.executable, "-c", writes], tmp_path)
    assert seconds > 0 and peak > 0 and largest > 0
    with pytest.raises(SystemExit, match=r"the last line$"):
        run_sampled([sys.executable, "-c", f"{writes}; sys.exit(3)"], tmp_path)
