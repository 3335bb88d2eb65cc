"""Tests of benchmarks/: the runner works end to end on its tiny size, and the correctness cross-check holds.

Timings are never asserted: only that every workload, implementation and field
is there and sane (positive, finite, accuracies in [0, 1]).
"""

from __future__ import annotations

import collections
import importlib
import json
import math
import operator
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SPIRAL = ROOT / "benchmarks" / "configs" / "spiral.yaml"
STEP_WORKLOADS = ("spiral", "mlp_large")
NNFRAME_VARIANTS = ("nnframe", "nnframe_log_off", "nnframe_log_every_step")


@pytest.fixture
def bench(monkeypatch):
    """Import ``benchmarks.<name>`` from the repository root (benchmarks/ is not an installed package)."""
    monkeypatch.syspath_prepend(str(ROOT))
    return lambda name: importlib.import_module(f"benchmarks.{name}")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--size", "tiny", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


def report_number(value: float) -> str:
    return f"{value:.3g}"


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def expected_implementations(results: dict, workload: str) -> set[str]:
    torch = {"torch"} if results["implementations"]["torch"] else set()
    if workload == "digits":
        return {"nnframe", "numpy", "sklearn"} | torch
    one_thread = {"nnframe_one_thread"} if workload == "mlp_large" else set()
    return {*NNFRAME_VARIANTS, "numpy"} | torch | one_thread


def test_tiny_run_has_every_workload(tiny):
    results, _ = tiny
    assert set(results["workloads"]) == {"spiral", "mlp_large", "digits", "processes"}
    assert {"gemm", "cross_check", "targets", "machine", "command", "size"} <= set(results)


@pytest.mark.parametrize("workload", [*STEP_WORKLOADS, "digits"])
def test_every_implementation_has_a_positive_median(tiny, workload):
    results, _ = tiny
    entries = results["workloads"][workload]["results"]
    assert set(entries) == expected_implementations(results, workload)
    for name, entry in entries.items():
        assert positive(entry["median"]), name
        assert entry["min"] <= entry["median"] <= entry["max"], name
        assert len(entry["samples"]) == entry["n"] >= 1, name


STEP_RATIO_MEDIANS = {  # each ratio a target reads: which medians it divides, in which order
    "nnframe/numpy": ("nnframe", "numpy"),
    "torch/nnframe": ("torch", "nnframe"),
    "nnframe/torch": ("nnframe", "torch"),
    "log_every_step/log_off": ("nnframe_log_every_step", "nnframe_log_off"),
    "log_every_10/log_off": ("nnframe", "nnframe_log_off"),
}


@pytest.mark.parametrize("workload", STEP_WORKLOADS)
def test_step_ratios_divide_the_runs_own_medians(tiny, workload):
    results, _ = tiny
    work = results["workloads"][workload]
    for key, (top, bottom) in STEP_RATIO_MEDIANS.items():
        if top in work["results"] and bottom in work["results"]:
            expected = work["results"][top]["median"] / work["results"][bottom]["median"]
            assert work["ratios"][key] == pytest.approx(expected, rel=1e-12), key
    assert {"nnframe/numpy", "log_every_step/log_off", "log_every_10/log_off"} <= set(work["ratios"])


def test_the_timed_nnframe_sessions_write_tensorboard_events(tiny):
    """The step as configured logs to real event files: one per session, none turned off."""
    results, _ = tiny
    assert results["workloads"]["spiral"]["nnframe_event_files"] >= 1


def test_the_targets_are_the_issues(bench):
    """Each target's value, comparison and bound, as the performance issue sets them: a loosened bound or a
    swapped ratio fails here, whatever the timings."""
    targets = {target.name: (target.op, target.bound) for target in bench("report").TARGETS}
    bounds = {
        "spiral: nnframe step / hand-written numpy step": ("<=", 1.25),
        "spiral: PyTorch step / nnframe step": (">=", 4.0),
        "spiral: logging every 10 steps with grad norms / logging off": ("<=", 1.05),
        "mlp_large: nnframe step / PyTorch step": ("<=", 1.0),
        "mlp_large: nnframe % of measured GEMM peak (FLOPs of the issue's nine products)": (">=", 80.0),
        "mlp_large: logging every 10 steps with grad norms / logging off": ("<=", 1.05),
        "mlp_large: peak memory nnframe / numpy (tracemalloc, every step, the first included)": ("<=", 1.2),
        "digits: nnframe whole training / scikit-learn": ("<", 1.0),
        "digits: nnframe test accuracy >= 0.97": (">=", 0.97),
        "process: nnframe train experiments/spiral.yaml (s)": ("<=", 1.0),
        "process: nnframe --help (s)": ("<=", 0.5),
    }
    assert {name: targets[name] for name in bounds} == bounds
    assert targets["mlp_large: nnframe memory growth over the steps (MiB)"] == ("<=", 0.1)
    assert targets["cross-check: loss curves equal to 1e-12 (spiral: sigmoid, SGD; digits: ReLU, Adam; float64)"] == (
        "==", True)
    reads = {target.name: target.read for target in bench("report").TARGETS}
    sample = {"workloads": {"spiral": {"ratios": {"nnframe/numpy": 1.0, "torch/nnframe": 2.0,
                                                  "log_every_10/log_off": 3.0}},
                            "mlp_large": {"ratios": {"nnframe/torch": 4.0, "log_every_10/log_off": 5.0,
                                                     "memory nnframe/numpy (train peak)": 6.0},
                                          "results": {"nnframe": {"percent_of_peak": 7.0}},
                                          "memory": {"nnframe": {"growth_mb": 8.0}}},
                            "digits": {"ratios": {"nnframe/sklearn": 9.0},
                                       "results": {"nnframe": {"accuracy": 10.0}, "sklearn": {"accuracy": 11.0}}},
                            "processes": {"results": {"nnframe_train_spiral": {"median": 12.0},
                                                      "nnframe_help": {"median": 13.0}}}},
              "cross_check": {"spiral": {"allclose": True}, "digits_float64": {"allclose": False}}}
    expected = dict(zip(bounds, [1.0, 2.0, 3.0, 4.0, 7.0, 5.0, 6.0, 9.0, 10.0, 12.0, 13.0]))
    assert {name: reads[name](sample) for name in bounds} == expected
    assert reads["mlp_large: nnframe memory growth over the steps (MiB)"](sample) == 8.0
    assert reads["cross-check: loss curves equal to 1e-12 (spiral: sigmoid, SGD; digits: ReLU, Adam; float64)"](
        sample) is False
    scikit_learns = next(t for t in bench("report").TARGETS
                         if t.name == "digits: nnframe test accuracy >= scikit-learn's")
    assert (scikit_learns.read(sample), scikit_learns.op, scikit_learns.bound(sample)) == (10.0, ">=", 11.0)


def test_mlp_large_compares_the_threaded_update_with_one_part(tiny):
    results, table = tiny
    assert positive(results["workloads"]["mlp_large"]["ratios"]["nnframe/one_thread"])
    assert results["machine"]["nnframe_threads"] >= 1
    assert f"optimizer update split between {results['machine']['nnframe_threads']} threads / in one part:" in table


def test_a_block_times_only_the_steps_after_its_settling_steps(bench, monkeypatch):
    timing = bench("timing")
    clock = {"now": 0.0}
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=lambda: clock["now"],
                                                              thread_time=lambda: clock["now"]))
    costs = iter([5.0, 3.0, 1.0, 1.0, 2.0])  # two slow settling steps, then the block

    def step() -> None:
        clock["now"] += next(costs)

    block = timing.per_step(step, steps=3, settle=2)
    assert block() == pytest.approx(4.0 / 3)
    assert block.cpu_share == [1.0]
    with pytest.raises(StopIteration):
        step()  # every step was called, none twice


def test_per_round_ratios_divide_samples_of_the_same_round(bench):
    workloads = bench("workloads")
    results = {"nnframe": {"samples": [2.0, 3.0, 8.0]}, "numpy": {"samples": [1.0, 3.0, 2.0]},
               "nnframe_log_off": {"samples": [1.0, 1.0, 1.0]}}
    spreads = workloads._per_round_ratios(results)
    assert spreads["nnframe/numpy"]["samples"] == [2.0, 1.0, 4.0]  # not 2/1, 3/2, 8/3 as sorted pairs would give
    assert spreads["nnframe/numpy"]["median"] == 2.0
    assert spreads["log_every_10/log_off"]["samples"] == [2.0, 3.0, 8.0]
    assert "torch/nnframe" not in spreads  # no PyTorch samples


@pytest.mark.parametrize("workload", STEP_WORKLOADS)
def test_a_run_reports_per_round_ratios(tiny, workload):
    results, _ = tiny
    spreads = results["workloads"][workload]["per_round_ratios"]
    assert spreads["nnframe/numpy"]["n"] == results["size"][f"{workload.split('_')[0]}_repeats"]
    assert spreads["nnframe/numpy"]["q1"] <= spreads["nnframe/numpy"]["median"] <= spreads["nnframe/numpy"]["q3"]


def test_digits_accuracies_are_fractions_averaged_over_the_same_seeds(tiny):
    results, _ = tiny
    digits = results["workloads"]["digits"]
    for name, entry in digits["results"].items():
        assert 0.0 <= entry["accuracy"] <= 1.0, name
        by_seed = entry["accuracy_by_seed"]
        assert list(by_seed) == [str(seed) for seed in range(len(entry["samples"]))], name
        assert digits["seeds"] == len(entry["samples"]), name
        assert entry["accuracy"] == pytest.approx(sum(by_seed.values()) / len(by_seed)), name


def test_mlp_large_reports_share_of_gemm_peak_and_memory(tiny):
    results, _ = tiny
    gemm = results["gemm"]
    assert len(gemm["products"]) == 9  # three products (x W, xT dy, dy WT) for each of three layers
    assert positive(gemm["peak_gflops"]) and positive(gemm["all_products_ms"])
    workload = results["workloads"]["mlp_large"]
    assert all(positive(entry["percent_of_peak"]) for entry in workload["results"].values())
    assert "products" not in workload["results"]  # the peak's contender is no implementation
    by_round = workload["peak"]["peak_gflops_by_round"]
    assert len(by_round) == len(workload["results"]["nnframe"]["samples"]) and all(map(positive, by_round))
    assert positive(workload["per_round_ratios"]["nnframe % of peak"]["median"])
    for impl in ("nnframe", "numpy"):
        memory = workload["memory"][impl]
        assert "error" not in memory, memory
        assert memory["step_peak_mb"] >= memory["resident_mb"] > 0
        assert memory["train_peak_mb"] == max(memory["first_step_peak_mb"], memory["step_peak_mb"])
        assert math.isfinite(memory["growth_mb"])
        assert positive(memory["max_rss_mb"])
    memory = workload["memory"]
    assert workload["ratios"]["memory nnframe/numpy (train peak)"] == pytest.approx(
        memory["nnframe"]["train_peak_mb"] / memory["numpy"]["train_peak_mb"], rel=1e-12)
    assert workload["run_gflop"] / workload["step_gflop"] == pytest.approx(2_354_176_000 / 2_755_584_000)
    for entry in workload["results"].values():  # the same step in the eight products it runs
        assert entry["percent_of_peak_products_run"] == pytest.approx(entry["percent_of_peak"] * 2_354_176 / 2_755_584)


def test_mlp_large_compares_a_training_steps_products_in_numpy_and_pytorch(tiny):
    results, table = tiny
    training = results["gemm"]["training_products"]
    assert len(training["products"]) == 8  # the first layer's input gradient is never computed
    assert not any(name.startswith("layer1 dy WT") for name in training["products"])
    with_torch = results["implementations"]["torch"]
    assert set(training["libraries"]) == ({"numpy", "torch"} if with_torch else {"numpy"})
    for library, entry in training["libraries"].items():
        assert len(entry["samples"]) == results["size"]["gemm_repeats"], library
        assert set(entry["by_product_ms"]) == set(training["products"]), library
        assert all(positive(ms) for ms in entry["by_product_ms"].values()), library
    beyond = results["workloads"]["mlp_large"]["beyond_products_ms"]
    step = results["workloads"]["mlp_large"]["results"]
    assert beyond["nnframe"] == pytest.approx(step["nnframe"]["median"] - training["libraries"]["numpy"]["median"])
    assert ("torch" in beyond) == with_torch
    numpy_ms = report_number(training["libraries"]["numpy"]["median"])
    assert f"the 8 products of a training step alone: numpy {numpy_ms} ms" in table


def test_a_product_sequence_times_each_product_after_its_settling_round(bench, monkeypatch):
    gemm = bench("gemm")
    clock = {"now": 0.0}
    monkeypatch.setattr(gemm.time, "perf_counter", lambda: clock["now"])
    costs = {"a": iter([9.0, 1.0, 3.0]), "b": iter([9.0, 2.0, 2.0])}  # one settling call each, then two timed

    def product(name: str) -> None:
        clock["now"] += next(costs[name])

    sequence = gemm.ProductSequence(["a", "b"], [lambda: product("a"), lambda: product("b")], steps=2, settle=1)
    assert sequence() == pytest.approx(4.0)  # (1 + 2) and (3 + 2) per step, settling calls not counted
    assert sequence.by_product == {"a": [2.0], "b": [2.0]}
    sequence.forget_last()
    assert sequence.by_product == {"a": [], "b": []}


def test_the_products_of_a_training_step_are_those_nnframe_runs(bench):
    gemm = bench("gemm")
    products = gemm.step_products(4, (3, 5, 2), np.float32)
    skipped = [p.name for p in products if p.skipped_in_training]
    assert skipped == ["layer1 dy WT (4x5 @ 5x3)"]


def test_whole_process_commands_all_ran(tiny):
    results, _ = tiny
    commands = results["workloads"]["processes"]["results"]
    assert {"nnframe_train_spiral", "nnframe_help", "numpy_spiral_script"} <= set(commands)
    for name, entry in commands.items():
        assert "error" not in entry, entry.get("error")
        assert positive(entry["median"]), name


def test_targets_and_table_are_reported(tiny):
    results, stdout = tiny
    assert len(results["targets"]) >= 10
    compare = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, "==": operator.eq}
    for target in results["targets"]:
        if target["value"] is None:
            assert target["met"] is None, target
        else:
            assert target["met"] == compare[target["op"]](target["value"], target["target"]), target
    assert set(results["cross_check"]) == {"spiral", "digits_float64", "digits_wide_float64"}
    assert all(check["allclose"] is True for check in results["cross_check"].values())
    assert "| target |" in stdout and "mlp_large" in stdout
    unread = [t["name"] for t in results["targets"] if t["value"] is None and "PyTorch" not in t["name"]]
    assert not unread  # a target whose value went missing reads "-" and is never met nor missed
    if results["implementations"]["torch"]:
        assert all(t["value"] is not None for t in results["targets"])


def test_machine_names_blas_and_the_openblas_variables(tiny):
    machine = tiny[0]["machine"]
    assert machine["cores"] >= 1 and machine["threads"] >= 1
    assert set(machine["environment"]) >= {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}


def test_nnframe_and_the_handwritten_reference_give_the_same_spiral_loss_curve(bench):
    ours, theirs = bench("crosscheck").loss_curves(SPIRAL, steps=300)
    assert ours.shape == theirs.shape == (300,)
    # weights 0.01 * randn make every logit about 0, so the first loss is about log 3 = 1.0986
    assert ours[0] == pytest.approx(math.log(3), abs=0.01)
    assert ours[-1] < 0.9 * ours[0]
    assert np.allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_nnframe_and_the_handwritten_reference_give_the_same_relu_adam_loss_curve(bench):
    digits = ROOT / "benchmarks" / "configs" / "digits.yaml"
    ours, theirs = bench("crosscheck").loss_curves(digits, steps=300, overrides=["train.dtype=float64"])
    assert ours.shape == theirs.shape == (300,)
    assert ours[-1] < 0.2 * ours[0]
    assert np.allclose(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("config, overrides", [(SPIRAL, []), (ROOT / "benchmarks" / "configs" / "digits.yaml",
                                                              ["train.dtype=float64"])])
def test_the_cross_check_notices_a_different_learning_rate(bench, monkeypatch, config, overrides):
    crosscheck = bench("crosscheck")
    make = crosscheck.reference_trainer

    def slightly_off(params, dataset, optimizer, batch_size, activation):
        optimizer.lr *= 1 + 1e-9
        return make(params, dataset, optimizer, batch_size, activation)
    monkeypatch.setattr(crosscheck, "reference_trainer", slightly_off)
    ours, theirs = crosscheck.loss_curves(config, steps=50, overrides=overrides)
    assert not np.allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_a_cross_check_that_fails_fails_its_target(bench):
    passed = {"allclose": True}
    target = next(t for t in bench("report").TARGETS if t.name.startswith("cross-check"))
    assert target.check({"cross_check": {"spiral": passed, "digits_float64": passed}})["met"] is True
    assert target.check({"cross_check": {"spiral": passed, "digits_float64": {"allclose": False}}})["met"] is False
    assert target.check({"cross_check": {}})["met"] is False


def test_interleaving_takes_the_contenders_in_turn_in_balanced_orders(bench, monkeypatch):
    timing = bench("timing")
    monkeypatch.setattr(timing, "others_share", lambda before, after: 0.0)
    calls = []
    values = {"A": 1.0, "B": 2.0, "C": 3.0}
    contenders = {name: (lambda name=name: calls.append(name) or values[name]) for name in "ABC"}
    samples = timing.interleaved(contenders, repeats=5, warmup=1)
    # the warm-up round takes the cycle's last row, so that the five kept rounds begin the cycle
    assert "".join(calls) == "BAC" + "ABC" + "BCA" + "CAB" + "CBA" + "ACB"
    assert samples == {"A": [1.0] * 5, "B": [2.0] * 5, "C": [3.0] * 5}
    assert list(samples) == ["A", "B", "C"]


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7])
def test_over_a_cycle_of_rounds_every_contender_follows_every_other_equally_often(bench, n):
    timing = bench("timing")
    cycle = n if n % 2 == 0 else 2 * n
    follows = collections.Counter()
    for k in range(cycle):
        order = timing.round_order(n, k)
        assert sorted(order) == list(range(n))
        follows.update(zip(order, order[1:]))
    assert len(follows) == n * (n - 1) and len(set(follows.values())) == 1


@pytest.mark.parametrize("shares, samples, redone, kept_disturbed", [
    ([0.0, 0.0], [1, 2], 0, 0),            # quiet: the first two rounds are kept
    ([0.5, 0.0, 0.0], [2, 3], 1, 0),       # round 1 disturbed (0.5 > 0.10): redone
    ([0.5, 0.5, 0.5, 0.5], [3, 4], 2, 2),  # two retries (= repeats) spent, then disturbed rounds are kept
])
def test_a_round_disturbed_by_other_processes_is_measured_again(bench, monkeypatch, shares, samples, redone,
                                                                 kept_disturbed):
    timing = bench("timing")
    pending = iter(shares)
    monkeypatch.setattr(timing, "others_share", lambda before, after: next(pending))
    counter = iter(range(1, 10))
    log = timing.RoundLog()
    result = timing.interleaved({"A": lambda: float(next(counter))}, repeats=2, warmup=0, log=log)
    assert result == {"A": samples}
    assert (log.redone, log.disturbed_kept) == (redone, kept_disturbed)


def test_a_digits_round_measured_again_fits_its_seed_again(bench, monkeypatch):
    timing, workloads = bench("timing"), bench("workloads")
    pending = iter([0.5, 0.0, 0.0])  # the first round disturbed, then quiet
    monkeypatch.setattr(timing, "others_share", lambda before, after: next(pending))
    fitted, accuracy = [], {}
    measure = workloads._seeded("nnframe", accuracy, lambda seed: fitted.append(seed) or (1.0, 0.9 + seed / 100))
    timing.interleaved({"nnframe": measure}, repeats=2, warmup=0)
    assert fitted == [0, 0, 1]
    assert accuracy == {"nnframe": {0: 0.9, 1: 0.91}}


def test_others_share_of_the_machine(bench, monkeypatch):
    timing = bench("timing")
    monkeypatch.setattr(timing.os, "cpu_count", lambda: 2)
    # 1 s of wall time on 2 cores; the machine was busy 1.5 s, this process 0.5 s: others took 1.0 of 2.0
    assert timing.others_share((0.0, 10.0, 3.0), (1.0, 11.5, 3.5)) == pytest.approx(0.5)


@pytest.mark.parametrize("samples, median, q1, q3", [
    ([3.0, 1.0, 2.0], 2.0, 1.5, 2.5),  # sorted 1 2 3; inclusive quartiles halfway between neighbours
    ([5.0], 5.0, 5.0, 5.0),
])
def test_summaries(bench, samples, median, q1, q3):
    summary = bench("timing").summarize(samples)
    assert summary["samples"] == samples  # in the order taken: the per-round ratios pair them by position
    assert (summary["median"], summary["min"], summary["max"]) == (median, min(samples), max(samples))
    assert (summary["q1"], summary["q3"]) == pytest.approx((q1, q3))


def test_step_flops_of_mlp_large(bench):
    # 6 * 256 * (784*1000 + 1000*1000 + 1000*10) = 6 * 256 * 1_794_000
    assert bench("gemm").step_flops(256, (784, 1000, 1000, 10)) == 2_755_584_000
    # less the first layer's input gradient, 2 * 256 * 784 * 1000
    assert bench("gemm").run_flops(256, (784, 1000, 1000, 10)) == 2_354_176_000


def test_a_target_with_a_missing_value_is_not_judged(bench):
    report = bench("report")
    checked = report.check_targets({"workloads": {}})
    assert {t["met"] for t in checked} == {None}


def test_logging_cost_files_each_step_by_its_position_in_the_logging_period(bench):
    logging_cost = bench("logging_cost")
    session = types.SimpleNamespace(step=lambda: None)
    measure = logging_cost.StepTimes(session)
    period = logging_cost.PERIOD
    measure.blocks = [np.tile(np.arange(period) * 1e-6, logging_cost.BLOCK // period)] * 2
    measure.blocks[1] = measure.blocks[1] + 1e-6
    assert measure.by_position() == pytest.approx(np.arange(period) + 0.5)
    assert measure.by_position(np.median) == pytest.approx(np.arange(period) + 0.5)
    assert measure() > 0 and len(measure.blocks) == 3
    measure.forget_last()
    assert len(measure.blocks) == 2


def test_the_logging_cost_command_runs():
    result = subprocess.run([sys.executable, "-m", "benchmarks.logging_cost", "--rounds", "1"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for variant in ("logging off", "as configured", "no TensorBoard", "no grad norms", "neither"):
        assert result.stdout.count(variant) == 2, variant  # one row in the means, one in the medians


def test_the_blas_timeout_sweep_runs_each_value_in_its_own_process():
    result = subprocess.run([sys.executable, "-m", "benchmarks.blas_timeout", "--size", "tiny", "--rounds", "1",
                             "--processes", "1", "--values", "16", "20"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["OPENBLAS_THREAD_TIMEOUT=", "OPENBLAS_THREAD_TIMEOUT="]
    assert [line.split()[1] for line in lines] == ["16", "20"]
    assert all("ratio" in line for line in lines)


def test_the_blas_timeout_child_falls_back_to_one_part_without_pytorch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from benchmarks.blas_timeout import main\n"
            "main(['--child', '--size', 'tiny', '--rounds', '1'])")
    env = {**os.environ, "OPENBLAS_THREAD_TIMEOUT": "17"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=env)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["yardstick"] == "nnframe in one part"
    assert found["timeout"] == "17"
    assert positive(found["ratio"]) and positive(found["nnframe_ms"]) and positive(found["yardstick_ms"])


def test_a_missed_target_never_prints_the_same_figure_as_its_bound(bench):
    report = bench("report")
    assert report._telling(1.0512, 1.05) == "1.051"
    assert report._telling(1.0500001, 1.05) == "1.0500001"
    assert report._telling(1.04, 1.05) == "1.04"  # three digits where they differ


def test_a_rest_of_the_step_below_zero_is_called_what_it_is(bench):
    report = bench("report")
    training = {"libraries": {"numpy": {"median": 8.1}}, "products": list(range(8))}
    (line,) = report._products_and_rest(training, {"nnframe": -3.28})[1:]
    assert "nnframe -3.28 ms (below zero: the step and the products were timed too briefly" in line
    (line,) = report._products_and_rest(training, {"nnframe": 4.6})[1:]
    assert line.endswith("the rest of the step: nnframe 4.6 ms")


def test_a_tiny_run_says_its_targets_are_no_measurement(tiny):
    _, printed = tiny
    assert "size tiny: a check that the command works" in printed.split("targets", 1)[1]


def test_a_fitted_session_saves_the_checkpoints_the_command_would(bench):
    """Digits times whole trainings through the session: as ``nnframe train``, it keeps the best checkpoint."""
    session_module = bench("nnframe_session")
    config = ROOT / "benchmarks" / "configs" / "digits.yaml"
    with session_module.Session(config, ["train.epochs=2"]) as session:
        session.fit()
        saved = sorted(path.name for path in (session.run.run_dir / "checkpoints").iterdir())
    assert "best.json" in saved and any(name.startswith("step-") and name.endswith(".npz") for name in saved)


def test_a_timed_step_is_a_turn_of_fits_loop_with_what_nnframe_train_registers(bench):
    """The runner times ``Session.step``: ``Trainer.fit_step``, whose loop checks and progress display every step of
    ``nnframe train`` pays for, with the config's callbacks registered, as ``fit`` registers them."""
    from nnframe.progress import PlainProgress

    session_module = bench("nnframe_session")
    overrides = ["train.epochs=3", "data.val_fraction=0.2", "callbacks=[{type: early_stopping, patience: 100}]"]
    with session_module.Session(SPIRAL, overrides) as session:
        session.start()
        assert session.step.__func__ is type(session.trainer).fit_step
        registered = session.run.plugin_manager.get_plugins()
        assert any(isinstance(plugin, PlainProgress) for plugin in registered)
        assert all(callback in registered for callback in session.experiment.callbacks)
        assert session.experiment.callbacks
        steps_per_epoch = session.trainer.batches.batches_per_epoch
        for _ in range(steps_per_epoch):  # an epoch: its end is evaluated, as in fit's loop
            session.step()
        assert session.trainer.last_eval is not None and session.trainer.last_eval.step == steps_per_epoch


def test_the_share_of_the_peak_and_the_rest_of_the_step_are_the_runs_own(tiny):
    """Recomputed from the run's own figures: a share over another peak, or another count of FLOPs, fails."""
    results, _ = tiny
    work = results["workloads"]["mlp_large"]
    for name, entry in work["results"].items():
        rate = 2_755_584_000 / (entry["median"] / 1e3) / 1e9
        assert entry["percent_of_peak"] == pytest.approx(100 * rate / work["peak"]["peak_gflops"], rel=1e-12), name
    steps, products = work["results"]["nnframe"]["samples"], work["peak"]["products_run_s_by_round"]
    rest = sorted(1e3 * (step / 1e3 - run) for step, run in zip(steps, products, strict=True))
    middle = len(rest) // 2
    median = rest[middle] if len(rest) % 2 else (rest[middle - 1] + rest[middle]) / 2
    assert work["beyond_products_in_rounds_ms"]["nnframe"] == pytest.approx(median, abs=1e-6)  # samples: 1e-6 ms


def test_digits_ratios_divide_the_runs_own_medians(tiny):
    results, _ = tiny
    work = results["workloads"]["digits"]
    medians = {name: entry["median"] for name, entry in work["results"].items()}
    assert work["ratios"]["nnframe/sklearn"] == pytest.approx(medians["nnframe"] / medians["sklearn"], rel=1e-12)
    assert work["ratios"]["nnframe/numpy"] == pytest.approx(medians["nnframe"] / medians["numpy"], rel=1e-12)


def test_the_wide_cross_check_runs_adams_update_in_blocks(bench, monkeypatch):
    """The digits check with a hidden layer of 4096 updates its parameters as mlp_large does, in blocks."""
    from nnframe.optimizer_base import Optimizer

    crosscheck = bench("crosscheck")
    called = []
    update_blocks = Optimizer._update_blocks
    monkeypatch.setattr(Optimizer, "_update_blocks", lambda self, *args: called.append(1) or update_blocks(self, *args))
    config, overrides, _ = crosscheck.CHECKS["digits_wide_float64"]
    ours, theirs = crosscheck.loss_curves(ROOT / "benchmarks" / "configs" / config, steps=3, overrides=overrides)
    assert called and np.allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    called.clear()
    config, overrides, _ = crosscheck.CHECKS["digits_float64"]
    crosscheck.loss_curves(ROOT / "benchmarks" / "configs" / config, steps=3, overrides=overrides)
    assert not called


def test_warm_up_rounds_take_the_cycles_last_orders_in_turn(bench, monkeypatch):
    timing = bench("timing")
    monkeypatch.setattr(timing, "others_share", lambda before, after: 0.0)
    calls = []
    contenders = {name: (lambda name=name: calls.append(name) or 1.0) for name in "ABC"}
    timing.interleaved(contenders, repeats=1, warmup=2)
    rows = ["".join("ABC"[i] for i in timing.round_order(3, k)) for k in (-2, -1, 0)]
    assert "".join(calls) == "".join(rows)


def test_a_session_fits_only_unstarted_and_closes_what_it_registered(bench):
    session_module = bench("nnframe_session")
    with session_module.Session(SPIRAL, ["train.epochs=1"]) as session:
        session.start()
        with pytest.raises(RuntimeError, match="starts the run itself"):
            session.fit()
    unstarted = session_module.Session(SPIRAL, ["train.epochs=1"], run_dir=False)
    unstarted.close()
    assert not unstarted.run.plugin_manager.is_registered(unstarted.progress)
