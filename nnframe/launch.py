"""Launch a training run: config -> live objects -> run directory -> trainer -> summary.

Everything that can be wrong with the user's input is checked before the run
directory is created, so a bad config or data file leaves nothing behind.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

from pydantic import TypeAdapter, ValidationError

from nnframe.build import Experiment, build_experiment, with_origin
from nnframe.components import absolute_paths
from nnframe.config import ConfigModels, InitFrom
from nnframe.config_errors import format_path
from nnframe.config_loader import ConfigSource, LoadedConfig, load_experiment
from nnframe.checkpoint_files import candidates
from nnframe.data import as_trained
from nnframe.errors import (DataError, NonFiniteError, PluginStateError, RunDirectoryGone, Terminated, UserError,
                            mention)
from nnframe.held_signals import HeldSignals
from nnframe.plugins import LOCAL, Plugins
from nnframe.progress import make_progress
from nnframe.resume_config import Change, as_override, differences, first_that_works, overrides_to, resume_changes
from nnframe.run import RunContext
from nnframe.tracking import RunDirectory, environment_versions
from nnframe.train import Interrupted, Trainer, labels, planned_steps, stops_the_run
from nnframe.validation_metrics import is_measured, measured_in_its_place


@dataclass
class RunResult:
    """Where a run went, how it ended, notes for the user (a resume's changes, skipped steps), and the model as
    training left it (its final parameters, in eval mode)."""

    run_dir: Path
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    model: Any = None


def prepare(config: ConfigSource, overrides: list[str], plugins: Plugins, initial_params: bool = True) -> Experiment:
    """Validate the config (a file, or its content as a mapping) and build everything it describes, touching
    no files; ``initial_params`` false leaves out ``train.init_from`` (a resume restores its own)."""
    loaded: LoadedConfig = load_experiment(config, overrides, plugins)
    return build_experiment(loaded, plugins, initial_params)


def train(config: ConfigSource, overrides: list[str], plugins: Plugins, runs_dir: Path = Path("runs"),
          resume: Path | None = None, quiet: bool = False, stream: TextIO | None = None,
          on_note: Callable[[str], None] | None = None) -> RunResult:
    """Run an experiment end to end; ``resume`` continues the run in that directory, which this process holds.

    Resuming a completed run that has nothing left to train changes nothing
    and says so. Every note is also given to ``on_note`` when it arises, so
    that those known before training (a resume's changes, a doubtful
    schedule) are shown before it, and also when training then fails.
    """
    from nnframe.checkpoint import Checkpointer

    notes: list[str] = []

    def note(text: str) -> None:
        notes.append(text)
        if on_note is not None:
            on_note(text)

    try:
        experiment = prepare(config, overrides, plugins, initial_params=resume is None)
    except UserError as exc:
        unknown_type = getattr(exc, "unknown_type", False)
        if resume is not None and unknown_type and (missing := missing_plugins(resume, plugins)):
            exc.args = (f"{exc}. The run was trained with {'; '.join(missing)}",)
        raise
    settings = experiment.settings
    run = RunContext(name=settings.name, config=experiment.config.resolved, run_dir=None,
                     plugin_manager=plugins.pm)
    trainer = Trainer(experiment, run)
    # a new run's directory is made whole before a stop, which training then takes; a second Ctrl-C breaks out
    held = HeldSignals(sigints=1) if resume is None else None
    try:
        run_dir = RunDirectory.open(resume) if resume is not None else RunDirectory.create(runs_dir, settings.name)
        with run_dir.lock() as holding:
            run.run_dir = Path(os.path.abspath(run_dir.path))  # plugins see where the run is wherever they chdir
            trainer.checkpointer = Checkpointer(run_dir.checkpoints, settings.checkpoint, experiment.config,
                                                classification=experiment.classification,
                                                error_measures=experiment.error_measures)
            previous: dict[str, Any] = {}
            if resume is None:
                run_dir.begin_writing(holding)
                _start(trainer, run_dir, overrides)
            else:
                saved = _data_paths_as_now(run_dir.read_config(), experiment.config)
                changes, previous = _restore(trainer, run_dir, overrides, plugins, saved, note)
                if trainer.step >= trainer.total_steps and previous.get("status") == "completed":
                    note(f"the run had already trained all {trainer.step} steps; nothing changed. Raise train.epochs "
                         "or train.max_steps to train it longer")
                    trainer.model.eval()
                    holding.settled = previous.get("steps") == trainer.step  # no killed resume trained past it
                    return RunResult(run_dir.path, previous, notes, trainer.model)
                held = HeldSignals(sigints=1)  # from here the resume is recorded: a stop is taken after a step
                run_dir.begin_writing(holding)
                for text in _record_resume(trainer, run_dir, overrides, changes, saved, plugins):
                    note(text)
            for text in config_notes(experiment):
                note(text)
            progress = make_progress(trainer.total_steps, quiet, stream, str(run_dir.path),
                                     experiment.dataset.summary())
            if progress is not None:
                run.register(progress)
            run.summary.update({"name": settings.name, "run_dir": str(run.run_dir),
                                "versions": environment_versions(plugins.versions())})
            ending, resumed_at = None, trainer.step
            trainer.caller_releases_signals = True
            trainer.held_signals = held
            try:
                trainer.fit()
            except BaseException as exc:
                ending = exc
                if isinstance(exc, (Interrupted, NonFiniteError, PluginStateError)):
                    exc.args = (f"{exc}; the run is in {run_dir.path}",)  # first: a Ctrl-C may cut the hint short
                    exc.args = (exc.args[0] + _resume_hint(exc, experiment, overrides, plugins, run_dir),)
                elif isinstance(exc, SystemExit):
                    exc.add_note(_exit_note(exc, run.summary.get("status"), trainer.step, run_dir)
                                 + _resume_hint(exc, experiment, overrides, plugins, run_dir,
                                                run.summary.get("status")))
                elif isinstance(exc, (KeyboardInterrupt, Terminated)):  # a second Ctrl-C: stopped without saving
                    if run.summary.get("status") == "completed":  # it came while plugins closed their files
                        kept = "it had completed, and its final checkpoint and summary are kept"
                    elif _has_checkpoint(run_dir):
                        kept = "resume it from its last checkpoint with --resume"
                    else:
                        kept = "it had no checkpoint here yet"
                    mention(exc, f"the run is in {run_dir.path}; {kept}")
                raise
            finally:
                try:
                    _record_ending(run_dir, run.summary, ending, _changed_nothing(ending, previous, trainer.step,
                                                                                  resumed_at, run.summary))
                finally:
                    trainer.release_signals(ending)
    finally:
        if held is not None:  # the handlers back; a stop held while an error ended the command goes with it
            held.take()
    stopped = run.summary.get("stopped_early")
    if stopped:
        note(f"stopped early at step {stopped['step']} of {stopped['planned_steps']}: "
             f"{stopped['reason']}")
    skipped = run.summary.get("skipped_steps", 0)
    if skipped:
        note(f"skipped {skipped} of {run.summary['steps']} steps with a non-finite loss or gradient "
             "(train.on_nonfinite: skip_step)")
    trainer.model.eval()
    return RunResult(run_dir.path, run.summary, notes, trainer.model)


def _record_ending(run_dir: RunDirectory, summary: dict[str, Any], ending: BaseException | None,
                   changed_nothing: bool) -> None:
    """Write the summary of how the run ended, unless its directory has gone or a resume changed nothing."""
    if not run_dir.present():
        if ending is None:
            raise RunDirectoryGone(run_dir.path)
        if not isinstance(ending, RunDirectoryGone):
            mention(ending, str(RunDirectoryGone(run_dir.path)))
    elif not changed_nothing:
        _write_summary(run_dir, summary, ending)


def _changed_nothing(ending: BaseException | None, previous: dict[str, Any], step: int, resumed_at: int,
                     summary: dict[str, Any]) -> bool:
    """Whether a resume failed before its first step: the summary then keeps the ending before it (a run stopped
    early, its final metrics). A first step that diverged is an ending of its own, and so is a completion that a
    plugin's ``sys.exit()`` came after."""
    return (ending is not None and bool(previous) and step == resumed_at and not isinstance(ending, NonFiniteError)
            and summary.get("status") != "completed")


def _write_summary(run_dir: RunDirectory, summary: dict[str, Any], ending: BaseException | None) -> None:
    """Write the run's summary; where that fails after another error ended the run (a full disk refused the
    checkpoint first), that error stays the one reported, the summary's failure named under it."""
    try:
        run_dir.write_summary(summary)
    except OSError as failed:
        if ending is None:
            raise
        mention(ending, f"{run_dir.summary_path.name} was not written either: {failed.strerror or failed}")


def missing_plugins(run_path: Path, plugins: Plugins, purpose: str = "resume") -> list[str]:
    """What became of the plugin distributions a run's summary records and that are not loaded now:
    ``["nnframe-probe 0.1.0, not installed now: install it to resume the run"]``."""
    try:
        recorded = (RunDirectory(Path(run_path)).read_summary() or {})["versions"]["plugins"]
        loaded, broken = plugins.versions(), {info.dist for info in plugins.broken}
        return [_missing(dist, version, dist in broken, purpose) for dist, version in recorded.items()
                if dist not in loaded]
    except (UserError, KeyError, TypeError, AttributeError):
        return []


def _missing(dist: str, version: str, broken: bool, purpose: str) -> str:
    if dist == LOCAL:
        return (f"components defined in the process that trained it ({LOCAL}): to {purpose} the run, define them "
                "again and pass plugins=nnframe.get_plugin_manager(plugins=[(name, plugin)])")
    if broken:
        return f"{dist} {version}".strip() + ", which fails to load now (see `nnframe plugins`)"
    return f"{dist} {version}".strip() + f", not installed now: install it to {purpose} the run"


def _keep_the_runs_start(experiment: Experiment, saved: dict[str, Any], note: Callable[[str], None]) -> None:
    """``train.init_from`` acts when a run starts: a resume keeps the run's, whatever the config gives now. A
    run's config of another experiment, or one that no longer validates, is left to the resume's checks."""
    train = experiment.settings.train
    theirs = (saved.get("train") or {}).get("init_from")
    given = train.init_from.model_dump() if train.init_from is not None else None
    if theirs == given or saved.get("name") != experiment.settings.name:
        return
    try:
        kept = None if theirs is None else InitFrom.model_validate(theirs)
    except ValidationError:
        return
    train.init_from = kept
    note("train.init_from applies when a run starts; this resume keeps the run's" if theirs is not None else
         "train.init_from applies when a run starts, and this run started without one")


def _with_fields_added_since(saved: dict[str, Any], plugins: Plugins) -> dict[str, Any]:
    """The run's config with each field that nnframe or a plugin added after the run was written (adam's ``eps``)
    at its default, so that it counts as no change (a note names it: a field must be added with the default that
    keeps what the rule did); as it was where it no longer validates (the refusal then names what differs)."""
    try:
        resolved = load_experiment(saved, [], plugins).resolved
    except UserError:
        return saved
    return _filled(saved, resolved)


def _filled(saved: Any, resolved: Any) -> Any:
    """``saved`` with the keys only ``resolved`` has, at every depth; ``saved``'s own values kept."""
    if isinstance(saved, dict) and isinstance(resolved, dict):
        return {**{key: _filled(value, resolved.get(key)) for key, value in saved.items()},
                **{key: value for key, value in resolved.items() if key not in saved}}
    if isinstance(saved, list) and isinstance(resolved, list) and len(saved) == len(resolved):
        return [_filled(a, b) for a, b in zip(saved, resolved)]
    return saved


def _start(trainer: Trainer, run_dir: RunDirectory, overrides: list[str]) -> None:
    """A new run: its config and first overrides entry."""
    run_dir.write_config(trainer.experiment.config.to_yaml())
    run_dir.write_overrides(overrides)
    trainer.run.summary["started"] = datetime.now().astimezone().isoformat(timespec="seconds")


def _restore(trainer: Trainer, run_dir: RunDirectory, overrides: list[str], plugins: Plugins,
             saved: dict[str, Any], note: Callable[[str], None]) -> tuple[list[Change], dict[str, Any]]:
    """Check the config against the run's (``saved``) and restore the newest checkpoint, writing nothing yet.

    Returns the accepted config changes and the run's summary so far.
    """
    config, run = trainer.experiment.config, trainer.run
    _keep_the_runs_start(trainer.experiment, saved, note)
    completed = _with_fields_added_since(saved, plugins)
    for added in differences(saved, completed):
        note(f"the run's config has no {format_path(added.path)}, added since it was written: it resumes with the "
             f"default, {added.now!r}")
    changes = resume_changes(completed, config.resolved, overrides, config.path, run_dir.path,
                             resolve=partial(_resolve, config.source, plugins))
    try:
        summary = run_dir.read_summary()
    except UserError as exc:  # the checkpoint is the run's state; the summary is written anew at the end
        summary = None
        note(f"{exc}; it is written anew when this resume ends (its wall time and start are taken as unknown)")
        unreadable = True
    else:
        unreadable = False
    previous = summary or {}
    run.summary["wall_time_s"] = _seconds(previous.get("wall_time_s"))
    run.summary["started"] = _first_start(previous, run_dir)
    from nnframe.checkpoint import stop_to_restore

    checkpoint = trainer.checkpointer.restore(trainer)
    try:
        dataset, changed = as_trained(trainer.dataset, checkpoint.scaling)
    except DataError as exc:
        raise with_origin(exc, config) from None
    if changed is not None:
        trainer.dataset = trainer.experiment.dataset = dataset
        note(changed)
    steps = summary.get("steps") if summary is not None else None
    recorded = unreadable or (isinstance(steps, int) and steps >= checkpoint.step)
    run.stop_reason = stop_to_restore(checkpoint, recorded)
    run.resumed = True
    return changes, previous


def _data_paths_as_now(saved: dict[str, Any], config: LoadedConfig) -> dict[str, Any]:
    """The run's config with its data file paths as the config names them where they name the same file.

    A run saved before ``config.yaml`` held them absolute has them relative;
    they are taken against this config's directory. A path to another file,
    or to one that is gone (the project moved), stays a difference, which
    only an override given with ``--resume`` accepts.
    """
    now, data = config.resolved.get("data"), saved.get("data")
    if not isinstance(now, dict) or not isinstance(data, dict):
        return saved
    data = dict(data)
    for name in config.data_path_fields:
        old, new = absolute_paths(data.get(name), config.base_dir), now.get(name)
        if isinstance(old, str) and isinstance(new, str):
            data[name] = new if old == new or _same_file(old, new) else old
        elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
            data[name] = [n if o == n or _same_file(o, n) else o for o, n in zip(old, new)]
    return {**saved, "data": data}


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _first_start(previous: dict[str, Any], run_dir: RunDirectory) -> str:
    """When the run first started: from its summary, else (killed before it wrote one) from ``overrides.yaml``."""
    started = previous.get("started")
    if isinstance(started, str):
        return started
    try:
        first = run_dir.read_overrides()[0]["started"]
    except (OSError, UserError, IndexError, KeyError, TypeError):
        first = None
    if isinstance(first, datetime):  # YAML reads an unquoted timestamp as one
        first = first.isoformat(timespec="seconds")
    return first if isinstance(first, str) else datetime.now().astimezone().isoformat(timespec="seconds")


def _record_resume(trainer: Trainer, run_dir: RunDirectory, overrides: list[str], changes: list[Change],
                   saved: dict[str, Any], plugins: Plugins) -> list[str]:
    """The resume in the run directory: the config it continues under, its overrides entry; returns notes."""
    run_dir.write_overrides(overrides, changed={format_path(c.path): [c.saved, c.now] for c in changes})
    if changes:  # after the overrides entry, which refuses a damaged overrides.yaml before anything is replaced
        run_dir.replace_config(trainer.experiment.config.to_yaml())
    notes = [f"resumed with {change.describe()}" for change in changes]
    if trainer.checkpointer.data_differs and not any(change.path[:1] == ("data",) for change in changes):
        notes.append("the training data differs from the run's, though the data section does not: the file "
                     "changed since, or the dataset draws its examples differently; training goes on with the data "
                     "as it is now")
    notes += _rescheduled(trainer, saved, plugins)
    if trainer.step > trainer.total_steps:
        notes.append(f"the run has already trained {trainer.step} steps, more than the {trainer.total_steps} this "
                     "config plans; it is only evaluated. Raise train.epochs or train.max_steps to train it longer")
    return notes


def _seconds(value: Any) -> float:
    """A summary's ``wall_time_s``; 0 where a damaged summary holds something else, the checkpoint being the state."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if is_number and math.isfinite(value) and value >= 0 else 0.0


def config_notes(experiment: Experiment) -> list[str]:
    """What the config asks for that runs but is likely a mistake: a schedule that does not fit the run, a best
    checkpoint that cannot be kept, a regression loss on class labels, labels of one class, classes only the
    validation examples hold, features or targets far from unit scale, evaluations without a validation set."""
    settings = experiment.settings
    optimizer = settings.optimizer
    notes = [*experiment.notes, *optimizer.schedule.notes(float(optimizer.lr), experiment.total_steps),
             *_checkpoint_notes(experiment), *_decay_notes(experiment)]
    if not experiment.classification and experiment.dataset.classification:
        notes.append(f"loss {settings.loss.type!r} fits values, but the data holds class labels (its task is "
                     "classification), so no accuracy is measured; for classes use a classification loss such as "
                     "softmax_cross_entropy, for values set the dataset's task: regression")
    if experiment.model.differentiable_input is not False:  # a model of indices (an embedding) reads ids
        notes += _scale_notes(experiment.dataset)
    notes += (_one_class_notes(experiment.dataset) + _unseen_class_notes(experiment.dataset)
              + _target_scale_notes(experiment.dataset))
    if settings.train.eval_every and experiment.dataset.x_val is None:
        notes.append(f"train.eval_every is {settings.train.eval_every}, but the run has no validation set, so "
                     "nothing is evaluated; set data.val_fraction, a csv dataset's data.val_path, or give x_val and "
                     "y_val")
    return notes


LARGE_INPUT = 1e3
"""A feature or target with values beyond this is far from the unit scale that initialisations and learning rates
assume."""


def _beyond_unit_scale(values: Any) -> tuple[Any, Any]:
    """Each column's largest magnitude in ``values`` ``(N, D)``, and the columns where it passes ``LARGE_INPUT``."""
    import numpy as np

    largest = np.maximum(np.max(values, axis=0), -np.min(values, axis=0))  # np.abs would copy the whole array
    return largest, np.flatnonzero(largest > LARGE_INPUT)


def _scale_notes(dataset: Any) -> list[str]:
    """A note naming the features whose values reach far beyond unit scale (a price, a count in millions), which
    train at chance with the usual initialisations where the same data standardised trains well."""
    x = dataset.x.reshape(len(dataset.x), -1) if dataset.x.ndim > 1 else dataset.x.reshape(-1, 1)
    if not x.size or x.dtype.kind != "f":
        return []
    largest, large = _beyond_unit_scale(x)
    if not large.size:
        return []
    shown = ", ".join(f"x[:, {i}] up to {largest[i]:.3g}" for i in large[:3]) + (", ..." if large.size > 3 else "")
    if dataset.digest_as_built is not None:  # standardized by other figures than this data's own
        return [f"{large.size} input feature(s) reach far beyond unit scale ({shown}) as standardized by the run's "
                "figures (those of train.init_from's run, or a resumed run's own): this data lies far from the data "
                "they were taken from"]
    if dataset.x_mean is not None:  # by its own: only where a value is rare among millions of examples
        return [f"{large.size} input feature(s) reach far beyond unit scale ({shown}) even standardized: a value "
                "rare among the examples (a feature that is nearly always the same) lies thousands of standard "
                "deviations from the rest"]
    return [f"{large.size} input feature(s) reach far beyond unit scale ({shown}); such inputs usually train "
            "poorly: standardize them (data.standardize: true)"]


def _target_scale_notes(dataset: Any) -> list[str]:
    """A note naming regression targets far beyond unit scale (prices near 200,000): a model initialised for unit
    scale predicts near 0, and training closes little of the distance, where the same targets standardised fit."""
    import numpy as np

    if dataset.classification or not dataset.y.size or dataset.y.dtype.kind not in "fiu":  # whole dollars too
        return []
    y = dataset.y.reshape(len(dataset.y), -1)
    large = _beyond_unit_scale(y)[1]
    if not large.size:
        return []
    mean, std = y[:, large].mean(axis=0, dtype=np.float64), y[:, large].std(axis=0, dtype=np.float64)
    shown = ", ".join(f"y[:, {i}] mean {mean[j]:.3g}, standard deviation {std[j]:.3g}"
                      for j, i in enumerate(large[:3])) + (", ..." if large.size > 3 else "")
    return [f"{large.size} regression target(s) reach far beyond unit scale ({shown}); a model predicts near 0 "
            "at first and such targets usually train poorly: standardize them (subtract each target's mean, "
            "divide by its standard deviation; data.standardize scales the inputs only), and un-standardize the "
            "predictions (multiply by the standard deviation, add the mean)"]


def _one_class_notes(dataset: Any) -> list[str]:
    """A note when every training label is the same class, which a model reaches 100% accuracy on by always
    answering it."""
    y = dataset.y
    if not dataset.classification or not y.size:
        return []
    classes = labels(y)
    if not (classes == classes[0]).all():
        return []
    return [f"the training labels hold only one class, {int(classes[0])} (all {len(y)} examples): a model "
            "reaches 100% training accuracy by always answering it, without learning anything; check the label "
            "column, and that the data holds examples of every class"]


def _unseen_class_notes(dataset: Any) -> list[str]:
    """A note naming the classes the validation examples hold and the training examples do not: no step can
    teach them, so every validation example of theirs counts against the accuracy (a small or imbalanced data
    set split at random)."""
    import numpy as np

    if not dataset.classification or dataset.y_val is None or not dataset.y_val.size or not dataset.y.size:
        return []
    unseen = np.setdiff1d(labels(dataset.y_val), labels(dataset.y))
    if not unseen.size:
        return []
    shown = ", ".join(str(int(c)) for c in unseen[:5]) + (", ..." if unseen.size > 5 else "")
    return [f"the validation examples hold class(es) {shown} that no training example holds: no step can teach "
            "them; with data.val_fraction, another seed or a larger share of the data may bring them into training"]


def _checkpoint_notes(experiment: Experiment) -> list[str]:
    """What a ``checkpoint.best_metric`` the config asks for will not do in this run."""
    checkpoint = experiment.settings.checkpoint
    if not checkpoint.best_metric or "best_metric" not in checkpoint.model_fields_set:
        return []
    metric, classification = checkpoint.best_metric, experiment.classification
    written_out = measured_in_its_place(classification)  # in every run's config.yaml
    if experiment.dataset.x_val is None and metric != written_out:
        return [f"checkpoint.best_metric is {metric}, but the run has no validation set, so no best checkpoint "
                "is kept; set data.val_fraction, a csv dataset's data.val_path, or give x_val and y_val"]
    if is_measured(metric, classification, experiment.error_measures):
        return []
    if metric == "val/accuracy":
        why = "which a regression run has not"
    elif classification:
        why = "which a classification run has not (error measures are a regression run's)"
    else:
        why = "which this run does not measure: its loss makes no predictions of the targets' size (Loss.predictions)"
    return [f"checkpoint.best_metric is {metric}, {why}; the best checkpoint is kept by {written_out}"]


def _decay_notes(experiment: Experiment) -> list[str]:
    """A decoupled decay (adamw) that scales the parameters by 0 or less each step: ``1 - lr * weight_decay``."""
    optimizer, settings = experiment.optimizer, experiment.settings.optimizer
    factor = 1.0 - float(settings.lr) * optimizer.weight_decay
    if not getattr(optimizer, "decoupled_weight_decay", False) or factor > 0:
        return []
    return [f"optimizer.lr times optimizer.weight_decay is {1.0 - factor:g}, so each step multiplies the parameters "
            f"by {factor:g} before the update (1 - lr * weight_decay), zeroing or flipping them; {settings.type}'s "
            "decay is decoupled: keep lr * weight_decay well below 1 (lr 0.001 with weight_decay 0.01 is typical)"]


def _rescheduled(trainer: Trainer, saved: dict[str, Any], plugins: Plugins) -> list[str]:
    """A note when a new training length moves the learning rate (a cosine over the run's steps).

    Only a schedule whose rate depends on the length gets one. The run's rate
    comes from the run's own schedule and ``optimizer.lr``, so that a resume
    changing those too is described against what the run had.
    """
    train, optimizer = saved.get("train", {}), saved.get("optimizer", {})
    try:
        before_total = planned_steps(SimpleNamespace(max_steps=train.get("max_steps"), epochs=train.get("epochs")),
                                     trainer.batches.batches_per_epoch)
        schedule = TypeAdapter(ConfigModels(plugins).schedule).validate_python(
            optimizer.get("schedule") or {"type": "constant"})
        before = schedule.lr_at(trainer.step, float(optimizer["lr"]), before_total)
    except (TypeError, ValueError, KeyError, UserError):
        return []
    now = trainer.schedule.lr_at(trainer.step, trainer.base_lr, trainer.total_steps)
    over_old_length = trainer.schedule.lr_at(trainer.step, trainer.base_lr, before_total)
    if math.isclose(over_old_length, now, rel_tol=1e-9, abs_tol=0.0):  # the length moves nothing (a step schedule)
        return []
    if math.isclose(before, now, rel_tol=1e-9, abs_tol=0.0):
        return []
    has_span = "total_steps" in type(trainer.schedule).model_fields
    span = "; optimizer.schedule.total_steps sets the span" if has_span else ""
    return [f"the {trainer.schedule.type} schedule spans the run's steps, now {trainer.total_steps} "
            f"({before_total} before), so the learning rate at step {trainer.step + 1} is {now:.4g} where the "
            f"run's schedule was at {before:.4g}{span}"]


def _exit_note(exc: SystemExit, status: Any, step: int, run_dir: RunDirectory) -> str:
    """What a plugin's ``sys.exit()`` left of the run, for the command's output."""
    if status == "completed":
        return (f"a plugin called sys.exit({exc.code!r}) as the run completed (step {step}); the run is in "
                f"{run_dir.path}")
    how = "stopped the run" if stops_the_run(exc) else "ended the run"
    return f"a plugin {how} with sys.exit({exc.code!r}) after step {step}; the run is in {run_dir.path}"


def _resume_hint(exc: BaseException, experiment: Experiment, overrides: list[str], plugins: Plugins,
                 run_dir: RunDirectory, status: Any = None) -> str:
    """How to go on: the command that continues the run, or where its good state is."""
    if status == "completed":
        return ""
    if isinstance(exc, (Interrupted, PluginStateError)) or stops_the_run(exc):
        given = experiment.config
        from_mapping = given.mapping is not None  # a notebook's: paths that work from any directory
        config_path = run_dir.config_path if from_mapping else given.path  # the run's holds the mapping's config
        where = os.path.abspath(run_dir.path) if from_mapping else run_dir.path
        command = ["nnframe", "train", str(config_path), "--resume", str(where),
                   *_overrides_from_file(config_path, given.resolved, overrides, plugins)]
        fix = " once the plugin keeps plain values there" if isinstance(exc, PluginStateError) else ""
        return f"; continue it{fix} with: {shlex.join(command)}"
    if _has_checkpoint(run_dir):
        return " (its last good checkpoint is kept)"
    if isinstance(exc, NonFiniteError):
        return " (it diverged before its first checkpoint, so none is kept)"
    return " (it has no checkpoint yet)"


def _has_checkpoint(run_dir: RunDirectory) -> bool:
    """Whether the run has a checkpoint where it was (none where its directory has gone)."""
    try:
        return run_dir.present() and bool(candidates(run_dir.checkpoints))
    except OSError:
        return False


def _overrides_from_file(config_path: Path, config: dict[str, Any], overrides: list[str],
                         plugins: Plugins) -> list[str]:
    """Overrides that make the config file resolve to ``config``, the one the run is under now (which earlier
    starts, this one and edits of the file may all have shaped), checked by resolving them.

    The shorter of one per field that differs from the file alone (a changed
    ``type`` gives its whole section) and this command's, as typed, plus
    those that differ from them; else every section whole, which does not
    depend on the file's content.
    """
    resolve = partial(_resolve, config_path, plugins)
    tries = []
    for given in ([], list(overrides)):
        try:
            tries.append([*given, *overrides_to(resolve(given), config)])
        except UserError:
            continue
    tries.sort(key=lambda candidate: sum(map(len, candidate)))  # stable: the file alone first at a tie
    tries.append([as_override((key,), value) for key, value in config.items()])
    found = first_that_works(tries, lambda candidate: resolve(candidate) == config)
    return tries[-1] if found is None else found


def _resolve(config: ConfigSource, plugins: Plugins, overrides: list[str]) -> dict[str, Any]:
    return load_experiment(config, overrides, plugins).resolved
