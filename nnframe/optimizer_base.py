"""The base of every optimizer: binding to the parameters, state, weight decay and how a rule is applied.

An optimizer is bound once to the model's parameters (``bind(names, params)``),
which allocates its state (momentum, squared-gradient averages) and one shared
scratch buffer. ``update(params, grads)`` then changes the parameters in place
with ``out=`` arithmetic, so a training step allocates no parameter-sized array.

Weight decay is the coupled L2 form: the rule sees ``g + weight_decay * p``;
a rule that sets ``decoupled_weight_decay`` (AdamW) gets the plain gradient,
and the parameters shrink by ``1 - lr * weight_decay`` before its step.

Parameters that tile one buffer (a built model's, see :mod:`nnframe.flat_params`)
get their state in buffers of the same layout and are updated in one go; a
large buffer or parameter is updated in cache-sized blocks, split between
threads (see :mod:`nnframe.threads`). The rules themselves are in
:mod:`nnframe.optimizers`.
"""

from __future__ import annotations

import copy
import inspect
import math
import operator
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from numbers import Real
from typing import Any, ClassVar

import numpy as np
from pydantic import ValidationError

from nnframe import arrays, threads
from nnframe.errors import CheckpointError, ConfigError, NNFrameError, not_written
from nnframe.flat_params import OneBufferUpdate, buffer_of, seed_copies, view_like
from nnframe.optimizer_params import OptimizerParams
from nnframe.unset_none import unset_nones

STEP_KEY = "t"
BLOCK = 1 << 17
"""Elements per block when a large parameter is updated in pieces (512 KiB of float32).
A parameter is updated in blocks when it holds more than two.

mlp-large's Adam step (1.8 M float32 parameters), timed alone after warm-up:
5.5 ms on whole arrays, 3.25 ms in blocks of 2**17, 3.3 ms of 2**16 and
3.8 ms of 2**18."""


_UNSET: Any = object()
_OWN_ATTRIBUTES = frozenset({"config", "state", "step", "names"})


class Optimizer:
    """Base of the update rules: binding, weight decay, step counting and state (de)serialisation.

    Construct with keyword arguments (validated by the class's ``params_model``)
    or from a validated model with :meth:`from_params`. ``lr`` is the learning
    rate of the next step; a schedule sets it before every ``update``. ``step``
    counts the updates taken. State arrays live in ``state[name][slot]``.
    A subclass names its state ``slots`` and implements :meth:`_update_one`.
    It sets ``parallel_blocks`` when its ``_update_one`` may run on several
    threads at once, on disjoint blocks of one parameter (it keeps nothing
    of a call on ``self``), and is long enough to gain from it; every
    built-in rule but SGD does. A rule may instead write the loop over a
    part's blocks, :meth:`_update_each`, under the same conditions, with
    :func:`one_block_of_update_each` as its ``_update_one``, and take its
    constants from :func:`scalars_per_block`, as the built-in rules but SGD
    do (see ``Momentum``).
    """

    params_model: ClassVar[type[OptimizerParams]] = OptimizerParams
    slots: ClassVar[tuple[str, ...]] = ()
    parallel_blocks: ClassVar[bool] = False
    elementwise: ClassVar[bool] = True
    """Whether the rule treats each element on its own, so that ``_update_one`` may be given the whole model's
    buffer at once, or a large parameter in 1-D blocks. A rule that reads a parameter's shape or norm (LARS,
    Adafactor, "no decay for biases") sets it False and gets each parameter whole, at the cost of speed."""
    decoupled_weight_decay: ClassVar[bool] = False
    """True for a rule whose weight decay is apart from its gradient (AdamW, arXiv:1711.05101): each step first
    scales the parameters by ``1 - lr * weight_decay``, and the rule sees ``g`` itself. False (the default) feeds
    the rule ``g + weight_decay * p``, which an adaptive rule divides by its running scale, as L2 does."""
    updates_every_step: ClassVar[bool] = True
    """False for a rule that may leave the parameters as they are on a step (one that accumulates gradients
    over several): the trainer then does not take a first update that changes nothing for a rebinding bug."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse an ``_update_one`` that cannot take ``(p, g, tmp)`` and one array per slot, when the class is
        made (a plugin's import), rather than at its first step."""
        super().__init_subclass__(**kwargs)
        _check_update_arity(cls)
        for name in cls.params_model.model_fields:
            if name in _OWN_ATTRIBUTES:
                raise TypeError(f"{cls.__module__}.{cls.__qualname__}: its params_model's field {name!r} is the name "
                                "of an attribute every optimizer keeps; rename the field")
            if name != "lr" and not hasattr(cls, name):  # lr is each step's own (a schedule sets it)
                setattr(cls, name, _config_field(name))

    def __init__(self, lr: Any = _UNSET, **kwargs: Any) -> None:
        """``SGD(0.1)``, ``SGD(lr=0.1)`` or ``Adam(lr=0.001, beta1=0.9)``: the fields of ``params_model``."""
        if lr is not _UNSET:
            kwargs["lr"] = lr
        self.config = _validate(self.params_model, kwargs, type(self).__name__)
        self.lr: float = self.config.lr
        self.step = 0
        self.names: list[str] | None = None
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self._per_param: list[tuple[np.ndarray, ...]] = []
        self._decayed: list[np.ndarray] = []
        self._in_blocks: list[bool] = []
        self._threads = 1
        self._flat: OneBufferUpdate | None = None
        self._block_plans: dict[int, BlockPlan] = {}
        self._bound: tuple[np.ndarray, ...] = ()

    @classmethod
    def from_params(cls, params: OptimizerParams) -> Optimizer:
        return cls(**_settings(params))

    @property
    def weight_decay(self) -> float:
        return self.config.weight_decay

    @weight_decay.setter
    def weight_decay(self, value: Any) -> None:
        """Checked as in a config. Turning a coupled decay on or off once bound is refused: the scratch for the
        decayed gradients is allocated by :meth:`bind` only when it is on."""
        config = _validate(self.params_model, {**_settings(self.config), "weight_decay": value}, self.name)
        if self.names is not None and not self.decoupled_weight_decay and (config.weight_decay > 0) != (
                self.config.weight_decay > 0):
            raise NNFrameError(f"{self.name}: weight_decay can be turned on or off only before the optimizer is "
                               "bound to its parameters (by its first update, or a run's start), which sizes its "
                               "scratch by it; make a new optimizer, or give it from the start")
        self.config = config

    @property
    def _coupled_decay(self) -> float:
        """The decay added to the gradient the rule sees: none where the rule's decay is decoupled."""
        return 0.0 if self.decoupled_weight_decay else self.weight_decay

    # ---------------------------------------------------------------- binding

    def bind(self, names: list[str], params: list[np.ndarray]) -> None:
        """Allocate state and scratch for ``params``, keyed by ``names`` (same order as ``update``)."""
        if isinstance(params, Mapping):
            raise NNFrameError(f"{self.name}: the parameters are a dict; an update takes lists of arrays, the "
                               "gradients in the same order: update(list(params.values()), "
                               "[grads[key] for key in params])")
        names = list(names)
        if len(names) != len(params):
            raise NNFrameError(f"{self.name}.bind: {len(names)} names for {len(params)} parameters")
        _check_arrays(self.name, names, params)
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise NNFrameError(f"{self.name}.bind: duplicate parameter names {duplicates}")
        self.names = names
        self._bound = tuple(params)
        self._block_plans = {}
        count = threads.thread_count()  # read by every rule, so a bad setting is reported whatever the rule
        self._threads = count if self.parallel_blocks else 1
        flat = buffer_of(params) if self.elementwise else None
        self.state, slot_buffers = self._allocate_state(names, params, flat)
        rows = 1 + (self._coupled_decay > 0)
        flat_rows = (self._flat_scratch_size(flat) if rows == 1 else flat.size) if flat is not None else 0
        buffers, scratch = _scratch_views(params, rows, at_least=flat_rows)
        self._per_param = [(views[0], *self.state[name].values()) for name, views in zip(names, scratch)]
        self._decayed = [views[1] for views in scratch] if self._coupled_decay > 0 else []
        self._in_blocks = [self.elementwise and p.size > 2 * BLOCK and all(a.flags.c_contiguous for a in (p, *buffers))
                           for p, buffers in zip(params, self._per_param)]
        self._flat = self._one_buffer_update(params, flat, slot_buffers, buffers) if flat is not None else None

    def _allocate_state(self, names: list[str], params: list[np.ndarray],
                        flat: np.ndarray | None) -> tuple[dict[str, dict[str, np.ndarray]], tuple[np.ndarray, ...]]:
        """Zeroed state per parameter and slot; where the parameters tile one buffer, views of one buffer per slot."""
        if flat is None:
            return {name: {slot: arrays.zeros_like(p) for slot in self.slots} for name, p in zip(names, params)}, ()
        buffers = {slot: arrays.zeros((flat.size,), flat.dtype) for slot in self.slots}
        state = {name: {slot: view_like(buffers[slot], flat, p) for slot in self.slots}
                 for name, p in zip(names, params)}
        return state, tuple(buffers.values())

    # ----------------------------------------------------------- copies

    def __deepcopy__(self, memo: dict[int, Any]) -> Optimizer:
        """A copy whose parameters, gradients and state tile copies of the buffers the original's tile (see
        :func:`~nnframe.flat_params.seed_copies`), so that it still updates them in one go."""
        flat = self._flat
        if flat is not None:
            seed_copies(memo, flat.params, flat.bound)
            if flat.grads is not None:
                seed_copies(memo, flat.grads, flat.grads_seen)
            for views, buffer in zip(self._slot_views(), flat.buffers[1:]):
                seed_copies(memo, buffer, views)
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        clone.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return clone

    def __getstate__(self) -> dict[str, Any]:
        """Everything but the block plans: their views of the arrays would be copied as arrays of their own,
        which the copy's update would then write into; the copy makes its own."""
        return {**self.__dict__, "_block_plans": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """An unpickled or copied optimizer whose arrays no longer tile its buffers updates them one by one."""
        self.__dict__.update(state)
        if self._flat is not None and not self._flat.still_tiles(self._slot_views()):
            self._flat = None

    def _slot_views(self) -> list[list[np.ndarray]]:
        """The state arrays of every parameter, slot by slot."""
        return [[self.state[name][slot] for name in self.names or ()] for slot in self.slots]

    # ----------------------------------------------------------------- update

    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        """One step: change each parameter in place from its gradient.

        Binds on first use with positional names ``"0"``, ``"1"``, ... when
        :meth:`bind` was not called (the book's usage).
        """
        if not (type(self.lr) is float and 0.0 <= self.lr < math.inf):  # a schedule's rate passes at a comparison
            self.lr = _checked_lr(self.name, self.lr)
        if self.names is None:
            self.bind([str(i) for i in range(len(params))], params)
        if len(params) != len(self._per_param) or len(grads) != len(params):
            raise NNFrameError(f"{self.name}.update: bound to {len(self._per_param)} parameters, "
                               f"got {len(params)} parameters and {len(grads)} gradients")
        flat = self._flat
        if flat is not None and flat.covers(params, grads):
            self.step += 1
            self._begin_step()
            self._update_param(flat.params, flat.grads, flat.decayed, flat.buffers, flat.in_blocks)
            return
        self._check_bound(params, grads)  # before anything moves: a refused update changes nothing
        self.step += 1
        self._begin_step()
        decayed = self._decayed or [None] * len(params)
        for p, g, out, buffers, in_blocks in zip(params, grads, decayed, self._per_param, self._in_blocks):
            self._update_param(p, g, out, buffers, in_blocks)

    def _check_bound(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        for p, g, then in zip(params, grads, self._bound):
            if p is not then and not _same_place(p, then):
                raise NNFrameError(f"{self.name}.update: a parameter of shape {np.shape(p)} that is not the one "
                                   f"of shape {then.shape} it was bound to, whose state it holds; write new values "
                                   "into a parameter (p[...] = values) rather than replace it in the list, and give "
                                   "a new model a new optimizer")
            if getattr(g, "shape", None) != p.shape:
                raise NNFrameError(f"{self.name}.update: a gradient of shape {np.shape(g)} for a parameter of "
                                   f"shape {p.shape}")

    def _one_buffer_update(self, params: list[np.ndarray], flat: np.ndarray, state: tuple[np.ndarray, ...],
                           scratch: dict[np.dtype, np.ndarray]) -> OneBufferUpdate:
        """The update of the whole buffer, on the first elements of the per-parameter scratch rows."""
        rows = scratch[flat.dtype]
        decayed = rows[1, :flat.size] if self._coupled_decay > 0 else None
        tmp = rows[0, :self._flat_scratch_size(flat)]
        return OneBufferUpdate(tuple(params), flat, (tmp, *state), decayed, in_blocks=flat.size > 2 * BLOCK)

    def _flat_scratch_size(self, flat: np.ndarray) -> int:
        """The whole buffer, or one block per part when it is updated in blocks."""
        return min(flat.size, self._threads * BLOCK) if flat.size > 2 * BLOCK else flat.size

    def _update_param(self, p: np.ndarray, g: np.ndarray, out: np.ndarray | None,
                      buffers: tuple[np.ndarray, ...], in_blocks: bool) -> None:
        if out is not None:
            g = _decayed_grad(out, p, g, self.weight_decay)
        elif self.decoupled_weight_decay and self.weight_decay > 0:
            p *= 1.0 - self.lr * self.weight_decay
        if in_blocks and g.flags.c_contiguous:
            self._update_blocks(p, g, buffers)
        else:
            self._update_one(p, g, *buffers)

    def _update_blocks(self, p: np.ndarray, g: np.ndarray, buffers: tuple[np.ndarray, ...]) -> None:
        """Update a large parameter one cache-sized block at a time, its blocks split between threads.

        A rule is a dozen passes over its arrays; block by block the arrays
        are read from memory once instead of a dozen times, and each part
        reuses one block of the scratch, which so stays in its core's cache
        (mlp-large's Adam timed alone: 3.6 ms with the scratch streamed,
        3.25 ms reused). What is left is memory traffic, which a second core
        shares (see :mod:`nnframe.threads`), and the parts' turns at the GIL
        between numpy calls (see :class:`BlockPlan`). The blocks are
        independent, so the result does not depend on the number of parts.
        """
        arrays = (p, g, *buffers)
        plan = self._block_plans.get(id(buffers))  # the optimizer's own per-parameter tuple: one plan per parameter
        if plan is None or not plan.made_for(arrays):
            plan = self._block_plans[id(buffers)] = BlockPlan.of(arrays, min(self._threads, p.size // BLOCK))
        own_loop = getattr(self._update_one, "__func__", None) is one_block_of_update_each
        loop = self._update_each if own_loop else partial(Optimizer._update_each, self)
        threads.run_parts([partial(loop, blocks) for blocks in plan.parts])

    def _update_each(self, blocks: Sequence[tuple[np.ndarray, ...]]) -> None:
        """One part's blocks in turn, each a ``(p, g, tmp, *state)`` of :meth:`_update_one`.

        A rule may write its own loop here (see ``Adam``): the parts share the
        GIL between their numpy calls, and Python work in one part is time
        the other may spend waiting for it. Its loop is used only while its
        ``_update_one`` is :func:`one_block_of_update_each`; a subclass that
        rewrites ``_update_one`` gets this loop, which calls it per block.
        """
        update = self._update_one
        for block in blocks:
            update(*block)

    def _begin_step(self) -> None:
        """Per-step scalars shared by every parameter (Adam's bias correction)."""

    def _reconfigured(self, before: OptimizerParams) -> None:
        """Called after a field of the config was set on the object (``optimizer.beta2 = 0.99``), with the config
        before: a rule whose state depends on its settings (Adam's sums) brings it to the new ones."""

    def _update_one(self, p: np.ndarray, g: np.ndarray, tmp: np.ndarray, *state: np.ndarray) -> None:
        raise not_written(self, f"_update_one(p, g, tmp{''.join(', ' + slot for slot in self.slots)}), its update rule",
                          "nnframe.Optimizer")

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, np.ndarray]:
        """A flat copy of the state, e.g. ``{"affine1/W.v": ..., "t": array(3)}``, for ``np.savez``."""
        flat = {f"{name}.{slot}": array.copy() for name, slots in self.state.items() for slot, array in slots.items()}
        flat[STEP_KEY] = np.array(self.step, dtype=np.int64)
        return flat

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy ``state`` (from :meth:`state_dict`) into the bound state arrays, in place."""
        if self.names is None:
            raise NNFrameError(f"{self.name}.load_state_dict: bind the optimizer to the parameters first")
        expected = {f"{name}.{slot}": self.state[name][slot] for name in self.names for slot in self.slots}
        self._check_keys(set(state), set(expected) | {STEP_KEY})
        for key, array in expected.items():
            found = np.shape(state[key])
            if found != array.shape:
                raise CheckpointError(f"optimizer state {key!r} has shape {found}; "
                                      f"the parameter it belongs to has shape {array.shape}")
        for key, array in expected.items():
            array[...] = state[key]
        self.step = int(state[STEP_KEY])

    def _check_keys(self, found: set[str], expected: set[str]) -> None:
        missing = sorted(expected - found)
        if missing:
            raise CheckpointError(f"{self.name} state is missing {_listing(missing)}; "
                                  f"it was saved by another optimizer or model")
        unexpected = sorted(found - expected)
        if unexpected:
            raise CheckpointError(f"{self.name} state has unexpected {_listing(unexpected)}; "
                                  f"it was saved by another optimizer or model")

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in self.config.model_dump().items() if key != "lr")
        bound = f", params={len(self.names)}" if self.names is not None else ""
        return f"{self.name}(lr={self.lr!r}, {fields}, step={self.step}{bound})"


@dataclass(frozen=True)
class BlockPlan:
    """A large parameter's update cut into blocks of ``BLOCK`` elements, dealt to ``len(parts)`` threads.

    The views of every block are made once, when the optimizer first meets
    the arrays, and reused while the arrays are the same objects. Slicing
    five arrays per block on every step held the GIL, which the other part
    then waited for: whole mlp-large steps took 0.985 and 0.974 of their
    time with the views made each step (two in-process A/B runs, 24 rounds).
    """

    arrays: tuple[np.ndarray, ...]
    block: int
    parts: tuple[PlanPart, ...]

    @classmethod
    def of(cls, arrays: tuple[np.ndarray, ...], count: int) -> BlockPlan:
        """``arrays`` are ``(p, g, tmp, *state)``; each part gets its own block of ``tmp``."""
        p, g, tmp, *state = (a.reshape(-1) for a in arrays)
        starts = range(0, p.size, BLOCK)
        parts = []
        for k in range(count):
            scratch = tmp[k * BLOCK:(k + 1) * BLOCK]
            blocks = []
            for start in starts[k * len(starts) // count:(k + 1) * len(starts) // count]:
                stop = min(start + BLOCK, p.size)
                blocks.append((p[start:stop], g[start:stop], scratch[:stop - start], *(s[start:stop] for s in state)))
            parts.append(PlanPart(blocks))
        return cls(arrays, BLOCK, tuple(parts))

    def made_for(self, arrays: tuple[np.ndarray, ...]) -> bool:
        return (self.block == BLOCK and len(arrays) == len(self.arrays)
                and all(map(operator.is_, arrays, self.arrays)))


class PlanPart(tuple):
    """One thread's share of a :class:`BlockPlan`: its blocks, each ``(p, g, tmp, *state)``, in order."""

    def __new__(cls, blocks: Sequence[tuple[np.ndarray, ...]]) -> PlanPart:
        part = super().__new__(cls, blocks)
        part._scalar_rows = {}
        return part

    def scalars(self, key: object, values: tuple[float, ...]) -> Sequence[tuple[Any, ...]]:
        """``values`` for each block, as arrays of the block's length that read one element (stride 0).

        numpy works out the type of a scalar operand on every call; an array
        of the other operands' dtype skips that (0.25 against 0.37 us a
        call). That is time a part holds the GIL, which the other part then
        waits for: with these arrays in Adam's loop instead of numpy scalars
        of the dtype, mlp-large's update timed alone took 4-6.5 % less time
        (0.09-0.14 ms; six in-process A/B runs of 30 rounds).
        The values are the very same under numpy 2, which casts a Python
        float operand to the array's dtype (NEP 50) as the row here does.
        Where the blocks' arrays differ in dtype, ``values`` themselves are
        given for every block.

        Each ``key`` (a rule passes its class) has a row of its own, which the
        next call with that key refills, so a rule's loop that calls another
        rule's loop keeps its own values.
        """
        made = self._scalar_rows.get(key)
        if made is None or made[0] != len(values):
            made = self._scalar_rows[key] = (len(values), *self._scalar_views(len(values)))
        _, row, views = made
        if row is None:
            return [values] * len(self)
        row[:] = values
        return views

    def _scalar_views(self, count: int) -> tuple[np.ndarray | None, list[tuple[np.ndarray, ...]]]:
        """A row of ``count`` scalars and, per block, a view of each of them as long as the block.

        Blocks of one length share their views, so a plan made anew on every
        step (new gradient arrays each time) pays for two sets at most. Every
        block is a slice of the same arrays, so the first tells the dtypes.
        """
        dtypes = {a.dtype for a in self[0]} if self else set()
        if len(dtypes) != 1:
            return None, []
        row = np.empty(count, dtypes.pop())
        by_length: dict[int, tuple[np.ndarray, ...]] = {}
        for block in self:
            length = len(block[0])
            if length not in by_length:
                by_length[length] = tuple(np.broadcast_to(row[:, np.newaxis], (count, length)))
        return row, [by_length[len(block[0])] for block in self]


def _checked_lr(rule: str, lr: Any) -> float:
    """A rate set from outside (``optimizer.lr = ...``) as a float: a real number, finite and at least 0 (a
    schedule may end at 0). The run's schedules give floats already; this is for code that sets it by hand."""
    value = float(lr) if isinstance(lr, Real) and not isinstance(lr, bool) else math.nan
    if not 0.0 <= value < math.inf:
        raise NNFrameError(f"{rule}: lr must be a finite number, at least 0; found {lr!r}")
    return value


def scalars_per_block(blocks: Sequence[tuple[np.ndarray, ...]], key: object,
                      values: tuple[float, ...]) -> Sequence[tuple[Any, ...]]:
    """:meth:`PlanPart.scalars` for a part of a plan; ``values`` for every block of any other sequence."""
    if isinstance(blocks, PlanPart):
        return blocks.scalars(key, values)
    return [values] * len(blocks)


def _check_update_arity(cls: type[Optimizer]) -> None:
    update = getattr(cls, "_update_one")
    try:
        signature = inspect.signature(update)
    except (TypeError, ValueError):  # a builtin or a callable object: nothing to read
        return
    bound = isinstance(inspect.getattr_static(cls, "_update_one"), types.FunctionType)  # called with self
    wanted = 3 + bound + len(cls.slots)  # (self,) p, g, tmp, then one array per slot
    try:
        signature.bind(*range(wanted))
    except TypeError:
        shown = ", ".join(["p", "g", "tmp", *cls.slots])
        raise TypeError(f"{cls.__module__}.{cls.__qualname__}._update_one{signature} cannot take ({shown}): it "
                        f"is called with p, g, tmp and one array per slot {tuple(cls.slots)}") from None


def one_block_of_update_each(self: Optimizer, p: np.ndarray, g: np.ndarray, tmp: np.ndarray,
                             *state: np.ndarray) -> None:
    """The ``_update_one`` of a rule that writes its step as a loop over blocks: that loop on one block.

    The rule's ``_update_each`` must then not call :meth:`Optimizer._update_each`,
    which would hand each block back here.
    """
    self._update_each(((p, g, tmp, *state),))


def _decayed_grad(out: np.ndarray, p: np.ndarray, g: np.ndarray, weight_decay: float) -> np.ndarray:
    """``g + weight_decay * p`` written into ``out``; the gradient itself is left as it was.

    ``out`` is shared by every parameter of a dtype, so it is filled just
    before that parameter's update, never for several parameters at once.
    """
    np.multiply(p, weight_decay, out=out)
    out += g
    return out


def _scratch_views(params: list[np.ndarray], count: int,
                   at_least: int = 0) -> tuple[dict[np.dtype, np.ndarray], list[list[np.ndarray]]]:
    """One buffer of ``count`` rows per dtype, and ``count`` views of it per parameter, shaped like it.

    Parameters are updated one after another, so they can share the buffers:
    the scratch memory is ``count`` times the largest parameter (or
    ``at_least``, what the update of a whole buffer needs), not the model.
    """
    sizes: dict[np.dtype, int] = {}
    for p in params:
        sizes[p.dtype] = max(sizes.get(p.dtype, at_least), p.size)
    buffers = {dtype: arrays.zeros((count, size), dtype) for dtype, size in sizes.items()}
    return buffers, [[buffers[p.dtype][k, : p.size].reshape(p.shape) for k in range(count)] for p in params]


def _check_arrays(owner: str, names: list[str], params: Sequence[Any]) -> None:
    """Every parameter an array of its own: a list would not be changed in place, and an array given twice
    (a weight two nodes share, as the book's CBOW) would take two steps with two states. The book sums its
    gradients and gives it once (``remove_duplicate``)."""
    for name, p in zip(names, params):
        if not isinstance(p, np.ndarray):
            raise NNFrameError(f"{owner}: parameter {name!r} is a {type(p).__name__}, not a numpy array that an "
                               "update can change in place")
        if not np.issubdtype(p.dtype, np.floating):
            raise NNFrameError(f"{owner}: parameter {name!r} holds {p.dtype}, which an update cannot change by a "
                               "fraction of a step; make it float32 or float64")
    by_base: dict[int, list[tuple[str, np.ndarray]]] = {}
    for name, p in zip(names, params):
        same_base = by_base.setdefault(id(p if p.base is None else p.base), [])
        for other, q in same_base:
            if np.may_share_memory(p, q) and np.shares_memory(p, q):
                raise NNFrameError(f"{owner}: parameters {other!r} and {name!r} share their memory (one weight given "
                                   "twice), so it would take two steps; give it once, with the sum of its "
                                   "gradients, as the book's remove_duplicate does")
        same_base.append((name, p))


def _same_place(p: Any, then: np.ndarray) -> bool:
    """Whether ``p`` is a new view of the very memory of ``then`` (a slice made again for each update)."""
    return (isinstance(p, np.ndarray) and p.shape == then.shape and p.strides == then.strides
            and p.__array_interface__["data"][0] == then.__array_interface__["data"][0])


def _config_field(name: str) -> property:
    """``optimizer.momentum``, read from and written to its config, checked as the config is: the book sets
    these on the object, and an attribute of its own would be silently ignored by the rule."""

    def read(self: Optimizer) -> Any:
        return getattr(self.config, name)

    def write(self: Optimizer, value: Any) -> None:
        before = self.config
        self.config = _validate(self.params_model, {**_settings(self.config), name: value}, type(self).__name__)
        self._reconfigured(before)

    return property(read, write, doc=f"The config's ``{name}``; setting it takes effect from the next update.")


def _settings(params: OptimizerParams) -> dict[str, Any]:
    """The values to validate ``params`` again with: those left at a ``None`` default their type refuses are left
    out (see :mod:`nnframe.unset_none`)."""
    return params.model_dump(exclude=unset_nones(params) or None)


def _validate(model: type[OptimizerParams], kwargs: dict[str, Any], owner: str) -> OptimizerParams:
    try:
        return model(**kwargs)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or owner}: {e['msg']} (found {e.get('input')!r})"
                             for e in exc.errors())
        raise ConfigError(f"{owner}: {problems}") from None


def _listing(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(key) for key in keys[:limit])
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"key{'s' if len(keys) > 1 else ''} {shown}{more}"
