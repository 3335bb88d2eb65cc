"""Where one training step's time goes: ``python -m benchmarks.breakdown spiral|mlp_large``.

Times each phase of nnframe's ``Trainer.train_step`` on its own, in a loop,
on the benchmark config's real objects (batch indexing, model forward, loss
forward and backward, model backward, the gradient norm, the optimizer
update, the step-end hook, and the extra work of a logged step), then the
same phases of the hand-written reference, and the whole steps of both.
The per-step phases are also run back to back in one loop ("in sequence"):
that minus their sum is what they cost each other (caches, fresh batches),
and the whole step minus the sequence is ``train_step``'s own bookkeeping
(the sessions have the progress display a pipe gets, whose step-end hook
``train_step`` calls); ``fit_step``, a turn of ``fit``'s loop, adds the
loop's checks. Medians of interleaved repetitions, microseconds per call.
"""

from __future__ import annotations

import nnframe  # noqa: F401  (first: its OpenBLAS setting must precede numpy, as in the nnframe command)

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks import mlp_large
from benchmarks.handwritten.net import TwoLayerNet
from benchmarks.handwritten.optimizer import SGD
from benchmarks.handwritten.trainer import Trainer as ReferenceTrainer
from benchmarks.nnframe_session import Session
from benchmarks.timing import interleaved, per_step, summarize
from benchmarks.workloads import CONFIGS, LOGGING, LONG_RUN


def nnframe_phases(session: Session) -> dict[str, Callable[[], object]]:
    from nnframe.gradients import global_norm, norms_of
    from nnframe.run import StepMetrics
    from nnframe.train import accuracy

    trainer = session.trainer
    model, loss, optimizer, data = trainer.model, trainer.loss, trainer.optimizer, trainer.dataset
    index = trainer.batches.next_batch()
    x, t = data.x.take(index, axis=0), data.y[index]
    out = model.forward(x)
    loss.forward(out, t)
    dout = loss.backward(1.0)
    model.backward(dout)
    quiet = StepMetrics(1, 0, 1.0, 0.0, False)
    whole_grads = model.stored_grads
    params = model.params  # updated in place while timed, as the trainer's one-buffer path needs the real ones
    grad_norms = norms_of(model.param_names, model.grads)  # as the trainer builds it

    def in_sequence() -> None:
        batch = trainer.batches.next_batch()
        xs, ts = data.x.take(batch, axis=0), data.y[batch]
        scores = model.forward(xs)
        loss.forward(scores, ts)
        model.backward(loss.backward(1.0))
        global_norm(whole_grads)
        trainer.schedule.lr_at(1, trainer.base_lr, trainer.total_steps)
        optimizer.update(params, model.grads)
        session.run.hook.nnframe_step_end(run=session.run, metrics=StepMetrics(1, 0, 1.0, 0.0, False))

    return {
        "batches.next_batch()": trainer.batches.next_batch,
        "x.take(index, axis=0), y[index]": lambda: (data.x.take(index, axis=0), data.y[index]),
        "model.forward(x)": lambda: model.forward(x),
        "loss.forward(out, t)": lambda: loss.forward(out, t),
        "loss.backward(1.0)": lambda: loss.backward(1.0),
        "model.backward(dout)": lambda: model.backward(dout),
        "global_norm(grads)": lambda: global_norm(whole_grads),
        "optimizer.update(params, grads)": lambda: optimizer.update(params, model.grads),
        "schedule.lr_at(step)": lambda: trainer.schedule.lr_at(1, trainer.base_lr, trainer.total_steps),
        "StepMetrics(...)": lambda: StepMetrics(1, 0, 1.0, 0.0, False),
        "hook nnframe_step_end (step not logged)": lambda: session.run.hook.nnframe_step_end(run=session.run,
                                                                                            metrics=quiet),
        "logged step only: grad norms (norms_of)": grad_norms,
        "logged step only: accuracy(out, t)": lambda: accuracy(out, t),
        "SEQUENCE of the per-step phases": in_sequence,
    }


def logged_hook(session: Session) -> Callable[[], object]:
    """The log-metrics hook of a logged step with every scalar the trainer sends (TensorBoard writing)."""
    from nnframe.run import StepMetrics

    trainer = session.trainer
    names = {name: 1.0 for name in trainer.model.param_names}
    step = iter(range(10**9))

    def call() -> None:
        metrics = StepMetrics(next(step), 0, 1.0, 0.1, True, accuracy=0.5, grad_norms={**names, "global": 1.0})
        session.run.hook.nnframe_log_metrics(run=session.run, metrics=metrics)
    return call


def reference_phases(reference: ReferenceTrainer) -> dict[str, Callable[[], object]]:
    model = reference.model
    batch = np.arange(reference.batch_size)
    x, t = reference.x[batch], reference.t[batch]
    score = model.predict(x)
    model.forward(x, t)
    model.backward()
    spare = [p.copy() for p in model.params]
    return {
        "reference: x[batch], t[batch]": lambda: (reference.x[batch], reference.t[batch]),
        "reference: model.predict(x)": lambda: model.predict(x),
        "reference: loss_layer.forward": lambda: model.loss_layer.forward(score, t),
        "reference: model.backward()": model.backward,
        "reference: optimizer.update": lambda: reference.optimizer.update(spare, model.grads),
    }


def build(workload: str, tmp: Path) -> tuple[Session, Session, Session, ReferenceTrainer]:
    if workload == "spiral":
        extra: list[str] = []
    else:
        extra = [f"data.path={mlp_large.write_data(tmp / 'mlp_large.npz', 2048)}"]
    config = CONFIGS / f"{workload}.yaml"
    sessions = [Session(config, [*LONG_RUN, *LOGGING[name], *extra]).start()
                for name in ("nnframe", "nnframe_log_off")]
    logger = Session(config, [*LONG_RUN, *extra]).start()
    if workload == "spiral":
        data = sessions[0].experiment.dataset
        rng = np.random.default_rng(0)
        reference = ReferenceTrainer(TwoLayerNet(2, 10, 3, rng=rng), SGD(1.0), data.x, data.y, 30, rng)
    else:
        reference = mlp_large.handwritten_trainer(Path(extra[0].split("=", 1)[1]))
    return sessions[0], sessions[1], logger, reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=["spiral", "mlp_large"])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    calls = 2000 if args.workload == "spiral" else 5
    with tempfile.TemporaryDirectory() as tmp:
        configured, log_off, logger, reference = build(args.workload, Path(tmp))
        phases = nnframe_phases(log_off)
        phases["logged step only: hook nnframe_log_metrics (TensorBoard)"] = logged_hook(logger)
        phases.update(reference_phases(reference))
        phases["WHOLE nnframe train_step (logging off)"] = log_off.trainer.train_step
        phases["WHOLE nnframe train_step (as configured)"] = configured.trainer.train_step
        phases["WHOLE nnframe fit_step (as configured)"] = configured.step
        phases["WHOLE reference train_step"] = reference.train_step
        samples = interleaved({name: per_step(call, calls) for name, call in phases.items()}, args.repeats)
        for session in (configured, log_off, logger):
            session.close()
    medians = {name: summarize(values, 1e6)["median"] for name, values in samples.items()}
    print_table(medians)


def print_table(medians: dict[str, float]) -> None:
    per_step_parts = [name for name in medians if not name.startswith(("logged", "reference", "WHOLE", "SEQUENCE"))]
    for name, value in medians.items():
        print(f"{value:12.2f} us  {name}")
    parts = sum(medians[name] for name in per_step_parts)
    sequence = medians["SEQUENCE of the per-step phases"]
    whole = medians["WHOLE nnframe train_step (logging off)"]
    print(f"{parts:12.2f} us  sum of the per-step phases, each timed alone")
    print(f"{sequence - parts:12.2f} us  what the phases cost each other (sequence minus sum)")
    print(f"{whole - sequence:12.2f} us  train_step's own bookkeeping (whole step, logging off, minus sequence)")
    loop = medians["WHOLE nnframe fit_step (as configured)"] - medians["WHOLE nnframe train_step (as configured)"]
    print(f"{loop:12.2f} us  fit's loop around a step (fit_step minus train_step, as configured): the evaluation, "
          "checkpoint and stop checks")


if __name__ == "__main__":
    main()
