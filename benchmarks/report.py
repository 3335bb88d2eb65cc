"""The targets of the performance issue, checked against one run's results, and the printed tables."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {"<=": operator.le, ">=": operator.ge, "<": operator.lt,
                                                     "==": operator.eq}


LIBRARY_NAMES = {"numpy": "numpy", "torch": "PyTorch"}


@dataclass(frozen=True)
class Target:
    """One goal: a value read from the results, compared with ``op`` to ``bound``."""

    name: str
    read: Callable[[dict], Any]
    op: str
    bound: Callable[[dict], Any] | float | bool

    def check(self, results: dict) -> dict[str, Any]:
        value = _safe(self.read, results)
        bound = _safe(self.bound, results) if callable(self.bound) else self.bound
        met = None if value is None or bound is None else bool(OPERATORS[self.op](value, bound))
        return {"name": self.name, "value": value, "op": self.op, "target": bound, "met": met}


def _safe(read: Callable[[dict], Any], results: dict) -> Any:
    try:
        return read(results)
    except (KeyError, TypeError):
        return None


def _w(name: str) -> Callable[[dict], dict]:
    return lambda r: r["workloads"][name]


TARGETS = [
    Target("spiral: nnframe step / hand-written numpy step", lambda r: _w("spiral")(r)["ratios"]["nnframe/numpy"],
           "<=", 1.25),
    Target("spiral: PyTorch step / nnframe step", lambda r: _w("spiral")(r)["ratios"]["torch/nnframe"], ">=", 4.0),
    Target("spiral: logging every 10 steps with grad norms / logging off",
           lambda r: _w("spiral")(r)["ratios"]["log_every_10/log_off"], "<=", 1.05),
    Target("mlp_large: nnframe step / PyTorch step", lambda r: _w("mlp_large")(r)["ratios"]["nnframe/torch"],
           "<=", 1.0),
    Target("mlp_large: nnframe % of measured GEMM peak (FLOPs of the issue's nine products)",
           lambda r: _w("mlp_large")(r)["results"]["nnframe"]["percent_of_peak"], ">=", 80.0),
    Target("mlp_large: logging every 10 steps with grad norms / logging off",
           lambda r: _w("mlp_large")(r)["ratios"]["log_every_10/log_off"], "<=", 1.05),
    Target("mlp_large: peak memory nnframe / numpy (tracemalloc, every step, the first included)",
           lambda r: _w("mlp_large")(r)["ratios"]["memory nnframe/numpy (train peak)"], "<=", 1.2),
    Target("mlp_large: nnframe memory growth over the steps (MiB)",
           lambda r: _w("mlp_large")(r)["memory"]["nnframe"]["growth_mb"], "<=", 0.1),
    Target("digits: nnframe whole training / scikit-learn", lambda r: _w("digits")(r)["ratios"]["nnframe/sklearn"],
           "<", 1.0),
    Target("digits: nnframe test accuracy >= 0.97", lambda r: _w("digits")(r)["results"]["nnframe"]["accuracy"],
           ">=", 0.97),
    Target("digits: nnframe test accuracy >= scikit-learn's",
           lambda r: _w("digits")(r)["results"]["nnframe"]["accuracy"], ">=",
           lambda r: _w("digits")(r)["results"]["sklearn"]["accuracy"]),
    Target("process: nnframe train experiments/spiral.yaml (s)",
           lambda r: _w("processes")(r)["results"]["nnframe_train_spiral"]["median"], "<=", 1.0),
    Target("process: nnframe --help (s)", lambda r: _w("processes")(r)["results"]["nnframe_help"]["median"],
           "<=", 0.5),
    Target("cross-check: loss curves equal to 1e-12 (spiral: sigmoid, SGD; digits: ReLU, Adam; float64)",
           lambda r: bool(r["cross_check"]) and all(check["allclose"] for check in r["cross_check"].values()),
           "==", True),
]


def check_targets(results: dict) -> list[dict[str, Any]]:
    return [target.check(results) for target in TARGETS]


# ----------------------------------------------------------------------------- tables


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:
            return "nan"
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _telling(value: Any, bound: Any) -> Any:
    """``value`` with enough digits to differ from ``bound`` where three would print them alike (1.0512 <= 1.05: no)."""
    if isinstance(value, float) and isinstance(bound, float) and value != bound:
        digits = 3
        while _number(value, digits) == _number(bound, digits) and digits < 8:
            digits += 1
        return _number(value, digits)
    return value


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_number(cell) for cell in row) + " |" for row in rows]
    return lines


def _timing_rows(workload: dict, extra: list[str]) -> list[list[Any]]:
    rows = []
    for name, entry in workload["results"].items():
        if "median" not in entry:
            rows.append([name, entry.get("error", "failed"), None, None, *[None for _ in extra]])
            continue
        rows.append([name, entry["median"], entry["q1"], entry["q3"], *[entry.get(key) for key in extra]])
    return rows


def _logging_ratios(entry: dict) -> list[str]:
    ratios = entry["ratios"]
    return ["", f"logging every 10 steps with grad norms / logging off: {_number(ratios['log_every_10/log_off'])} "
                f"(the target's reading: the logged steps' gradient norms); grad norms and TensorBoard on every "
                f"step / logging off: {_number(ratios['log_every_step/log_off'])} (shown, not a target)"]


def _thread_split_ratio(entry: dict, threads: int | str) -> list[str]:
    return ["", f"optimizer update split between {threads} threads / in one part: "
                f"{_number(entry['ratios'].get('nnframe/one_thread'))}"]


def _products_and_rest(training: dict | None, beyond: dict | None) -> list[str]:
    """One line: a step's products alone, per library, and what the step costs besides them."""
    if not training:
        return []
    libraries = training["libraries"]
    alone = ", ".join(f"{LIBRARY_NAMES[lib]} {_number(entry['median'])} ms" for lib, entry in libraries.items())
    versus = f" (numpy / PyTorch {_number(training['numpy/torch'])})" if "numpy/torch" in training else ""
    rest = ", ".join(f"{LIBRARY_NAMES.get(impl, impl)} {_number(ms)} ms" for impl, ms in (beyond or {}).items())
    if any(ms < 0 for ms in (beyond or {}).values()):
        rest += " (below zero: the step and the products were timed too briefly to subtract)"
    return ["", f"the {len(training['products'])} products of a training step alone: {alone}{versus}; "
                f"the rest of the step: {rest or '-'}"]


def _memory_ratios(ratios: dict) -> list[str]:
    """nnframe / hand-written by each measure: the target reads tracemalloc's, the arrays numpy allocates."""
    shown = [(label, ratios.get(f"memory nnframe/numpy ({key})"))
             for label, key in (("training peak (tracemalloc, the target)", "train peak"),
                                ("max RSS (the whole process, imports included)", "max rss"),
                                ("RSS added by building and training", "rss added"))]
    return ["", "memory, nnframe / hand-written: " + ", ".join(f"{label} {_number(value)}" for label, value in shown)]


def _rest_in_rounds(beyond: dict | None) -> list[str]:
    if not beyond or "nnframe" not in beyond:
        return []
    return ["", f"the rest of nnframe's step, less numpy's products of a step timed in the same round (median of "
                f"the rounds): {_number(beyond['nnframe'])} ms"]


def _product_table(training: dict | None) -> list[str]:
    if not training:
        return []
    libraries = training["libraries"]
    rows = [[name, *[entry["by_product_ms"][name] for entry in libraries.values()]] for name in training["products"]]
    rows.append(["all", *[entry["median"] for entry in libraries.values()]])
    return ["", "a training step's products (ms, median; the first layer's input gradient is skipped)", "",
            *_table(["product", *[LIBRARY_NAMES[lib] for lib in libraries]], rows)]


def _peak_line(peak: dict | None, gemm_section: dict | None) -> list[str]:
    if not peak:
        return []
    line = f"peak: {peak['peak_gflops']:.3g} GFLOP/s, the step's products timed in the same rounds as the steps"
    if gemm_section:
        line += f" (the GEMM section's, before them: {gemm_section['peak_gflops']:.3g})"
    return ["", line]


def _per_round_ratios(entry: dict) -> list[str]:
    spreads = entry.get("per_round_ratios") or {}
    if not spreads:
        return []
    shown = [f"{key} {_number(s['median'])} ({_number(s['q1'])}-{_number(s['q3'])})" for key, s in spreads.items()]
    return ["", "ratios round by round, median (q1-q3): " + "; ".join(shown)]


def _rounds(entry: dict) -> list[str]:
    rounds = entry.get("rounds")
    if not rounds:
        return []
    return ["", f"rounds redone because other processes were busy: {rounds['rounds_redone']}, kept although "
                f"disturbed: {rounds['disturbed_rounds_kept']} (others' share of the machine at most "
                f"{rounds['others_share_max']:.2f} in kept rounds)"]


def tables(results: dict) -> str:
    """The results as markdown: one table per workload, memory, GEMM, targets."""
    out: list[str] = []
    work = results["workloads"]
    if "spiral" in work:
        out += ["", f"spiral, {work['spiral']['unit']} (median of {results['size']['spiral_repeats']} blocks "
                    f"of {work['spiral']['block_steps']} steps)", ""]
        out += _table(["implementation", "median", "q1", "q3", "CPU share"],
                      _timing_rows(work["spiral"], ["cpu_share"]))
        out += _logging_ratios(work["spiral"])
        out += _per_round_ratios(work["spiral"])
        out += _rounds(work["spiral"])
    if "mlp_large" in work:
        w = work["mlp_large"]
        out += ["", f"mlp_large, {w['unit']} ({w['step_gflop']:.3g} GFLOP per step in the issue's nine products, "
                f"{w['run_gflop']:.3g} in the eight a step runs)", ""]
        out += _table(["implementation", "median", "q1", "q3", "GFLOP/s (nine)", "% of peak (nine)",
                       "% of peak (eight)", "CPU share"],
                      _timing_rows(w, ["gflops", "percent_of_peak", "percent_of_peak_products_run", "cpu_share"]))
        out += _peak_line(w.get("peak"), results.get("gemm"))
        out += _logging_ratios(w)
        out += _thread_split_ratio(w, results.get("machine", {}).get("nnframe_threads", "?"))
        out += _products_and_rest(results.get("gemm", {}).get("training_products"), w.get("beyond_products_ms"))
        out += _rest_in_rounds(w.get("beyond_products_in_rounds_ms"))
        out += _per_round_ratios(w)
        out += _rounds(w)
        out += ["", "mlp_large memory (MiB; tracemalloc for numpy code, VmHWM for the process)", ""]
        rows = [[impl, m.get("build_peak_mb"), m.get("first_step_peak_mb"), m.get("resident_mb"),
                 m.get("step_peak_mb"), m.get("growth_mb"), m.get("rss_after_imports_mb"), m.get("max_rss_mb")]
                for impl, m in w["memory"].items()]
        out += _table(["implementation", "build peak", "first step peak", "resident", "later steps' peak", "growth",
                       "RSS after imports", "max RSS"], rows)
        out += _memory_ratios(w["ratios"])
    if "digits" in work:
        w = work["digits"]
        out += ["", f"digits, {w['unit']} ({w['epochs']} epochs), test accuracy on {w['test_examples']} held out "
                f"(mean over seeds 0-{w['seeds'] - 1}, the same split per seed for every implementation)",
                ""]
        out += _table(["implementation", "median", "q1", "q3", "accuracy"], _timing_rows(w, ["accuracy"]))
        out += _rounds(w)
    if "processes" in work:
        w = work["processes"]
        out += ["", f"whole process, {w['unit']} (spiral {w['epochs']} epochs)", ""]
        rows = [[entry["command"], *[entry.get(k, entry.get("error") if k == "median" else None)
                                     for k in ("median", "q1", "q3")]] for entry in w["results"].values()]
        out += _table(["command", "median", "q1", "q3"], rows)
        out += _rounds(w)
    if "gemm" in results:
        g = results["gemm"]
        out += ["", f"GEMM ({g['dtype']}, the products of one mlp_large step): all products "
                    f"{g['all_products_ms']:.3g} ms ({g['all_products_gflops']:.3g} GFLOP/s), "
                    f"peak {g['peak_gflops']:.3g} GFLOP/s"]
        out += _product_table(g.get("training_products"))
    for name, c in results.get("cross_check", {}).items():
        out += ["", f"cross-check, {name}: {c['steps']} steps, max |loss difference| {c['max_abs_diff']:.3g} "
                    f"(allclose {c['tolerance']:g}: {_number(c['allclose'])})"]
    out += ["", "targets", ""]
    if results["size"]["name"] != "full":
        out += [f"size {results['size']['name']}: a check that the command works, on sizes too small to measure "
                "anything; the targets below are met or not only at --size full", ""]
    out += _table(["target", "value", "", "bound", "met"],
                  [[t["name"], _telling(t["value"], t["target"]), t["op"], t["target"], t["met"]]
                   for t in results["targets"]])
    return "\n".join(out)
