"""The plugin manager: loads ``nnframe`` entry points one at a time and builds the registries.

Built-in components arrive through nnframe's own entry points, by the same code
path as any third-party plugin. A plugin that fails to import, raises inside a
registration hook or implements a hook that does not exist is recorded as
*broken* with its distribution, version and error, and everything else keeps
working; in strict mode (``NNFRAME_STRICT_PLUGINS=1`` or ``--strict-plugins``)
they are an error instead, one naming every broken plugin, raised when the
registries are built.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType

import pluggy
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from nnframe import hookspecs
from nnframe.components import KINDS, Component, Kind
from nnframe.errors import PluginError, Terminated, UnknownComponentError, close_match, did_you_mean
from nnframe.held_signals import signals_held
from nnframe.hook_checks import IMPL_MARK, hook_names, hook_problems, marked_functions, unmarked_hooks
from nnframe.plugin_distributions import GROUP, SELF_DIST, plugin_packages

LOCAL = "(local)"
"""The distribution of plugins registered in the process itself (a notebook's), from no installed package."""
AUTOLOAD_OFF_ENV = "NNFRAME_DISABLE_PLUGIN_AUTOLOAD"
STRICT_ENV = "NNFRAME_STRICT_PLUGINS"
REGISTER_HOOKS: dict[Kind, str] = {
    "node": "nnframe_register_nodes",
    "loss": "nnframe_register_losses",
    "optimizer": "nnframe_register_optimizers",
    "dataset": "nnframe_register_datasets",
    "callback": "nnframe_register_callbacks",
    "schedule": "nnframe_register_schedules",
}


@dataclass(frozen=True)
class PluginInfo:
    """Where a registered plugin comes from."""

    name: str
    dist: str
    version: str

    @property
    def origin(self) -> str:
        """``'scale' from nnframe-scale 0.2.0``."""
        return f"{self.name!r} from {f'{self.dist} {self.version}'.strip()}"


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that could not be used, and why; ``kinds`` are the kinds of component it has registration hooks
    for, where its hooks could be read (not where its import failed)."""

    name: str
    dist: str
    version: str
    error: str
    kinds: frozenset[str] | None = None

    def may_register(self, kind: str) -> bool:
        """Whether this plugin could have registered a component of ``kind`` (it has its hook, or it could not
        be read)."""
        return self.kinds is None or kind in self.kinds

    @property
    def origin(self) -> str:
        """``'scale' from nnframe-scale 0.2.0``."""
        return PluginInfo(self.name, self.dist, self.version).origin

    def describe(self) -> str:
        return f"plugin {self.origin}: {self.error}"


@dataclass(frozen=True)
class Registered:
    """A component in a registry, with the plugin that registered it."""

    component: Component
    plugin: PluginInfo


@dataclass
class Registry:
    """Components of one kind by name, each with the plugin that registered it."""

    kind: Kind
    entries: dict[str, Registered] = field(default_factory=dict)
    shadowed: list[Registered] = field(default_factory=list)
    """Later registrations of a name already registered: the first is kept, and the clash is an error (see
    :meth:`Plugins.build_registries`), but ``nnframe plugins`` lists them all."""

    @property
    def clashes(self) -> list[str]:
        """Each name registered twice, described with both plugins."""
        described = []
        for later in self.shadowed:
            first, plugin, name = self.entries[later.component.name].plugin, later.plugin, later.component.name
            described.append(f"two plugins register the {self.kind} {name!r}: {_dist(first)} (plugin {first.name!r}) "
                             f"and {_dist(plugin)} (plugin {plugin.name!r}); "
                             + _clash_remedy(self.kind, name, first, plugin))
        return described

    def get(self, name: str) -> Component:
        try:
            return self.entries[name].component
        except KeyError:
            raise UnknownComponentError(self.kind, name, self.entries) from None

    def plugin_of(self, name: str) -> PluginInfo:
        return self.entries[name].plugin

    def names(self) -> list[str]:
        return sorted(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[Component]:
        return (self.entries[name].component for name in self.names())

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, component: Component, plugin: PluginInfo) -> None:
        if component.name in self.entries:
            self.shadowed.append(Registered(component, plugin))
            return
        self.entries[component.name] = Registered(component, plugin)


def _clash_remedy(kind: Kind, name: str, first: PluginInfo, later: PluginInfo) -> str:
    """Uninstalling nnframe is no remedy: a plugin that takes a built-in name must take another; nor is it for a
    plugin registered in the process, which is no installed distribution, nor for two entry points of one
    distribution."""
    other = [info for info in (first, later) if info.dist != SELF_DIST]
    if len(other) == 1:
        return (f"{name!r} is one of nnframe's own, so {_who(other[0])} must register its {kind} under another "
                "name")
    if any(info.dist == LOCAL for info in other) or first.dist == later.dist:
        return "register one of them under another name"
    return "uninstall one of them"


def _dist(info: PluginInfo) -> str:
    return f"{info.dist} {info.version}".strip()


def _who(info: PluginInfo) -> str:
    return f"plugin {info.name!r}" if info.dist == LOCAL else info.dist


class Plugins:
    """A pluggy plugin manager with nnframe's registries built from it.

    Make one with :func:`get_plugin_manager`; tests get a fresh one each.
    """

    def __init__(self, strict: bool = False, allow_clashes: bool = False) -> None:
        self.pm = pluggy.PluginManager("nnframe")
        self.pm.add_hookspecs(hookspecs)
        self.strict = strict
        self.allow_clashes = allow_clashes
        self.infos: dict[str, PluginInfo] = {}
        self.broken: list[BrokenPlugin] = []
        self.left_out: dict[tuple[Kind, str], str] = {}  # why each component a plugin offered was left out
        self._registries: dict[Kind, Registry] | None = None

    def __repr__(self) -> str:
        return f"Plugins({len(self.infos)} plugins, {len(self.broken)} broken, strict={self.strict})"

    def register(self, plugin: object, name: str, dist: str = LOCAL, version: str = "") -> bool:
        """Register one plugin module or object; returns False (and records why) if it is broken, which strict mode
        raises instead."""
        registered = self._register(plugin, name, dist, version)
        if not registered:
            self._raise_if_strict()
        return registered

    def _register(self, plugin: object, name: str, dist: str, version: str) -> bool:
        info = PluginInfo(name, dist, version)
        if self.pm.has_plugin(name):
            taken = self.infos.get(name)
            by = ("another plugin given in this process" if taken is None or taken.dist == LOCAL
                  else f"the plugin of {_dist(taken)}")
            self._record_broken(info, f"the name {name!r} is taken by {by}; register this one under another", plugin)
            return False
        problems = hook_problems(plugin)
        if problems:
            self._record_broken(info, "; ".join(problems), plugin)
            return False
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy rejects malformed hook implementations
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._record_broken(info, f"{type(exc).__name__}: {exc}", plugin)
            return False
        self.infos[name] = info
        self._registries = None
        return True

    def load_entry_points(self, group: str = GROUP) -> None:
        """Import and register every entry point of ``group``, one at a time; in strict mode the broken ones are
        raised together when the registries are built."""
        seen: set[tuple[str, str]] = set()
        for ep in metadata.entry_points(group=group):
            if (ep.name, ep.value) in seen:
                continue
            seen.add((ep.name, ep.value))
            dist = ep.dist.name if ep.dist else "(unknown)"
            version = ep.dist.version if ep.dist else ""
            try:
                plugin = ep.load()
            except STOPS:
                raise
            except BaseException as exc:  # SystemExit, and pytest's Skipped from an importorskip, as any error
                self._record_broken(PluginInfo(ep.name, dist, version),
                                    f"import failed: {type(exc).__name__}: {exc}{_failure_site(exc, ep.module)}"
                                    f"{_entry_point_hint(exc, ep)}")
                continue
            if self.pm.is_registered(plugin):
                continue
            name = ep.name if ep.name not in self.infos else f"{dist}:{ep.name}"
            if self._register(plugin, name, dist, version) and not self.pm.get_hookcallers(plugin):
                self.pm.unregister(plugin)
                del self.infos[name]
                self._record_broken(PluginInfo(ep.name, dist, version), _no_hooks(ep))

    def registry(self, kind: Kind) -> Registry:
        return self.build_registries()[kind]

    def build_registries(self) -> dict[Kind, Registry]:
        """Call the registration hooks (once) so their errors are reported, or raised in strict mode, now.

        A name that two plugins register raises, all such names in one error,
        unless the manager was made to list them (``allow_clashes``, for
        ``nnframe plugins``).
        """
        if self._registries is None:
            self._registries = self._build_registries()
        self._raise_if_strict()
        if self.clashes and not self.allow_clashes:
            raise PluginError("; ".join(self.clashes))
        return self._registries

    @property
    def clashes(self) -> list[str]:
        """Every name two plugins register, described (empty before the registries are built)."""
        return [clash for registry in (self._registries or {}).values() for clash in registry.clashes]

    @property
    def nodes(self) -> Registry:
        return self.registry("node")

    @property
    def losses(self) -> Registry:
        return self.registry("loss")

    @property
    def optimizers(self) -> Registry:
        return self.registry("optimizer")

    @property
    def datasets(self) -> Registry:
        return self.registry("dataset")

    @property
    def callbacks(self) -> Registry:
        return self.registry("callback")

    @property
    def schedules(self) -> Registry:
        return self.registry("schedule")

    def versions(self) -> dict[str, str]:
        """Distribution versions of every loaded plugin, for run summaries."""
        return {info.dist: info.version for info in self.infos.values()}

    def _build_registries(self) -> dict[Kind, Registry]:
        """Every plugin's components by kind. A plugin whose registration hook raises, or returns something that
        is not a list of components, is left out whole, as one that fails to import: none of its components
        are registered and none of its hooks run. A component that is faulty itself is left out alone."""
        offered: list[tuple[Kind, str, Component, str]] = []
        failed: set[str] = set()
        for kind, hook_name in REGISTER_HOOKS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                components = self._call_register_hook(impl, hook_name, self._info(impl.plugin_name))
                if components is None:
                    failed.add(impl.plugin_name)
                else:
                    offered += [(kind, hook_name, component, impl.plugin_name) for component in components]
        for name in failed:
            self.pm.unregister(name=name)
            self.infos.pop(name, None)
        registries = {kind: Registry(kind) for kind in KINDS}
        for kind, hook_name, component, plugin_name in offered:
            if plugin_name in failed:
                continue
            info = self._info(plugin_name)
            problem = _component_problem(component, kind, hook_name)
            if problem:
                self._record_broken(info, problem, self.pm.get_plugin(plugin_name))
                if isinstance(component, Component) and isinstance(component.name, str):
                    self.left_out[component.kind, component.name] = (
                        f"the {component.kind} {component.name!r} of plugin {info.origin} was left out: {problem}")
            else:
                registries[kind].add(component, info)
        return registries

    def _info(self, plugin_name: str) -> PluginInfo:
        return self.infos.get(plugin_name, PluginInfo(plugin_name, LOCAL, ""))

    def _call_register_hook(self, impl: pluggy.HookImpl, hook_name: str, info: PluginInfo) -> list | None:
        """The hook's components, or ``None`` (the plugin recorded as broken) where it fails or returns no list."""
        try:
            returned = impl.function()
            problem = _not_a_list(returned, hook_name)
            if problem:
                self._record_broken(info, problem, impl.plugin)
                return None
            return list(returned or [])  # a generator may raise part-way
        except STOPS:
            raise
        except BaseException as exc:
            site = _failure_site(exc, getattr(impl.function, "__module__", None) or "")
            self._record_broken(info, f"{hook_name} raised {type(exc).__name__}: {exc}{site}", impl.plugin)
            return None

    def _record_broken(self, info: PluginInfo, error: str, plugin: object = None) -> None:
        """Record a plugin left out; ``plugin``, where given, is read for the kinds it has registration hooks
        for, so that an unknown type of another kind does not send the user to it."""
        kinds = None if plugin is None else frozenset(
            kind for kind, hook_name in REGISTER_HOOKS.items() if hook_name in _registering_hooks(plugin))
        broken = BrokenPlugin(info.name, info.dist, info.version, error, kinds)
        if broken not in self.broken:
            self.broken.append(broken)

    def _raise_if_strict(self) -> None:
        """In strict mode, every broken plugin found so far in one error: fixing one should not just reveal the
        next."""
        if self.strict and self.broken:
            raise PluginError(f"{'; '.join(broken.describe() for broken in self.broken)} (strict plugin mode is on)")


STOPS = (KeyboardInterrupt, Terminated, GeneratorExit)
"""What a plugin's import or registration passes on: Ctrl-C and SIGTERM stop the command; any other exception,
``BaseException`` too, is the plugin's failure."""
COMPONENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

RESERVED_FIELDS: dict[Kind, tuple[str, ...]] = {
    "node": ("type", "name", "inputs"),
    "loss": ("type",),
    "optimizer": ("type", "schedule"),
    "dataset": ("type",),
    "callback": ("type", "name"),
    "schedule": (),
}
"""Config keys nnframe itself reads in each kind's section; a component's params may not take them. A schedule
may declare its ``type`` (``type: Literal["cosine"] = "cosine"``), as the default schedule a section without one
runs under must know its own; the config's ``type`` replaces it."""


BUILD_ARGUMENTS: dict[Kind, tuple[str, ...]] = {
    "node": ("params", "ctx"), "loss": ("params",), "optimizer": ("params",), "dataset": ("params", "ctx"),
    "callback": ("params", "ctx"), "schedule": ("params",),
}
"""What nnframe passes each kind's ``build``, positionally."""


def _not_a_list(returned: object, hook_name: str) -> str | None:
    """A registration hook returns a list of components (or nothing); one component alone is the usual slip."""
    if isinstance(returned, Component):
        return (f"{hook_name} returned the {returned.kind} {returned.name!r} itself, not a list of components; "
                f"return [{returned.kind}(...)]")
    if returned is None or (isinstance(returned, Iterable) and not isinstance(returned, (str, bytes, Mapping))):
        return None
    return f"{hook_name} returned {returned!r}, not a list of components"


PARAMS_BASE: dict[Kind, str] = {"optimizer": "nnframe.OptimizerParams", "schedule": "nnframe.Schedule"}
"""The class a kind's params subclass, where it is more than ``nnframe.Params``."""


def _component_problem(component: object, kind: Kind, hook_name: str) -> str | None:
    if not isinstance(component, Component) or component.kind != kind:
        return f"{hook_name} returned {component!r}, not a {kind} Component"
    if not isinstance(component.name, str) or not COMPONENT_NAME.fullmatch(component.name):
        return (f"{kind} name {component.name!r} is not letters, digits and underscores from a letter: configs "
                "give it as a type, and node names and TensorBoard tags are made from it")
    if not (isinstance(component.params, type) and issubclass(component.params, BaseModel)):
        base = PARAMS_BASE.get(kind, "nnframe.Params")
        return (f"{kind} {component.name!r}: its params are {component.params!r}, not a class of settings; give a "
                f"subclass of {base}" + ("" if kind in PARAMS_BASE else f" ({base} itself for a {kind} without any)"))
    taken = [field for field in RESERVED_FIELDS[kind] if field in component.params.model_fields]
    if taken:
        return (f"{kind} {component.name!r} declares the parameter(s) {', '.join(map(repr, taken))}, which "
                f"nnframe reserves in a {kind} section; rename them")
    return (_schedule_problem(component) or _default_problem(component) or _unwritable_problem(component)
            or _build_problem(component)
            or _path_fields_problem(component))


def _schedule_problem(component: Component) -> str | None:
    from nnframe.schedules import Schedule

    if component.kind != "schedule" or (isinstance(component.params, type) and issubclass(component.params, Schedule)):
        return None
    return (f"schedule {component.name!r}: its params {component.params!r} do not subclass nnframe.Schedule, "
            "whose lr_at gives the rate of each step")


def _path_fields_problem(component: Component) -> str | None:
    """A ``relative_paths`` entry that names no field would leave the real one relative, so that a run's
    ``config.yaml`` points elsewhere once it is resumed from another directory."""
    fields = component.params.model_fields
    unknown = [name for name in getattr(component.params, "relative_paths", ()) if name not in fields]
    if not unknown:
        return None
    return (f"{component.kind} {component.name!r}: relative_paths names {', '.join(map(repr, unknown))}, which "
            f"is not one of its parameters ({', '.join(fields)})"
            + did_you_mean(close_match(unknown[0], list(fields))))


def _default_problem(component: Component) -> str | None:
    """A default its own field refuses (``alpha: int = 0.01``) would fail every config that leaves the field
    out, with an error that blames the config; pydantic does not check defaults itself.

    The defaults go through the model's own validator, once, so its field
    and model validators judge them as they judge a config; a ``None``
    default (an old idiom for "unset"), the required fields and aliased ones
    (configs name fields by name) are left out.
    """
    model = component.params
    defaults = {name: spec.default for name, spec in model.model_fields.items()
                if not spec.is_required() and spec.default_factory is None and spec.default is not None
                and spec.alias is None and spec.validation_alias is None}
    try:
        with signals_held():  # pydantic's core only: a plugin's registration hook stays interruptible
            model.model_validate(defaults)
    except ValidationError as exc:
        for error in exc.errors():
            key = error["loc"][0] if error["loc"] else None
            if key in defaults and error["type"] != "missing":
                reason = error["msg"].removeprefix("Value error, ")
                return (f"{component.kind} {component.name!r}: the default of its parameter {key!r}, "
                        f"{defaults[key]!r}, fails the parameter's own validation: {reason[:1].lower()}{reason[1:]}")
    except Exception:  # a model validator that needs the required fields: the config will be judged as a whole
        return None
    return None


UNWRITABLE_SCHEMAS = frozenset({"is-instance", "is-subclass", "callable"})
"""pydantic's core schemas of values that no YAML gives: an arbitrary class's instances, classes, functions.
Only as a field's own schema: a ``Path`` or a ``Sequence`` holds one inside, for the values it takes as they are."""
WRAPPING_SCHEMAS = frozenset({"default", "nullable", "custom-error"})
WRITABLE_HINT = "; parameters are what a YAML config holds: numbers, strings, booleans, and lists and mappings of them"


def _unwritable_problem(component: Component) -> str | None:
    """Params that a config cannot give, or a run's ``config.yaml`` hold (a numpy array, a function), fail every
    config that uses the component, or ``nnframe schema``, with a serializer's traceback that names neither.

    The defaults are written as the model writes them (its serializers
    included), and the fields' types read from pydantic's core schema, which
    is built already: a JSON schema for each component took 30 ms of every
    command's start.
    """
    model, where = component.params, f"{component.kind} {component.name!r}"
    defaults = {key for key, spec in model.model_fields.items() if not spec.is_required()}
    if defaults:
        try:
            made = model.model_construct()
        except Exception:  # a default factory that needs the other fields: the config will be judged as a whole
            made = None
        for key in sorted(defaults) if made is not None else ():
            try:
                made.model_dump(mode="json", include={key}, warnings=False)  # a default its validator converts
            except PydanticSerializationError as exc:
                return (f"{where}: the default of its parameter {key!r} cannot be written to a config: {exc}"
                        f"{WRITABLE_HINT}")
            except Exception:  # a serializer of the whole model, which needs the fields a config gives
                break
    for key, field_schema in _core_fields(model.__pydantic_core_schema__).items():
        if _own_schema_type(field_schema) in UNWRITABLE_SCHEMAS:
            annotation = model.model_fields[key].annotation
            named = annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")
            return f"{where}: its parameter {key!r} ({named}) takes values that no config can give{WRITABLE_HINT}"
    return None


def _core_fields(schema: object) -> dict[str, object]:
    """The field schemas of a model's core schema, by name (empty where its shape is not the usual one)."""
    if isinstance(schema, dict):
        if schema.get("type") == "model-fields" and isinstance(schema.get("fields"), dict):
            return schema["fields"]
        return _core_fields(schema.get("schema"))
    return {}


def _own_schema_type(field_schema: object) -> str | None:
    """The type of a field's core schema below its default, ``None`` and error wrappings."""
    schema = field_schema.get("schema") if isinstance(field_schema, dict) else None
    while isinstance(schema, dict) and schema.get("type") in WRAPPING_SCHEMAS:
        schema = schema.get("schema")
    return schema.get("type") if isinstance(schema, dict) else None


def _build_problem(component: Component) -> str | None:
    """A ``build`` that cannot take what nnframe passes it would fail at every use, looking like a config error."""
    arguments = BUILD_ARGUMENTS[component.kind]
    try:
        signature = inspect.signature(component.build)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*arguments)
    except TypeError:
        return (f"{component.kind} {component.name!r}: its build{signature} cannot be called as "
                f"build({', '.join(arguments)})")
    return None


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def get_plugin_manager(autoload: bool | None = None, strict: bool | None = None,
                       plugins: Iterable[tuple[str, ModuleType | object]] = (), allow_clashes: bool = False) -> Plugins:
    """A fresh plugin manager.

    ``autoload`` (default: on unless ``NNFRAME_DISABLE_PLUGIN_AUTOLOAD`` is set)
    loads every ``nnframe`` entry point, the built-ins included; with it off, no
    components are registered except ``plugins``, given as ``(name, plugin)``.
    The registries are built before it returns, so :attr:`Plugins.broken` already
    lists plugins whose registration hooks fail (and ``strict`` raises for them).
    """
    if autoload is None:
        autoload = not env_flag(AUTOLOAD_OFF_ENV)
    if strict is None:
        strict = env_flag(STRICT_ENV)
    manager = Plugins(strict=strict, allow_clashes=allow_clashes)
    if autoload:
        manager.load_entry_points()
    for entry in plugins:
        name, plugin = _named_plugin(entry)
        manager._register(plugin, name, LOCAL, "")  # a broken one is raised below, with the others in strict mode
    manager.build_registries()
    given = [broken.describe() for broken in manager.broken if broken.dist == LOCAL]
    if given:  # asked for by name in this process: not left out with a warning, as a broken installed one is
        raise PluginError("; ".join(given))
    return manager


def _named_plugin(entry: object) -> tuple[str, object]:
    """A ``(name, plugin)`` pair of ``get_plugin_manager(plugins=...)``, its plugin an object or a module."""
    if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[0], str)):
        raise TypeError(f"plugins are (name, plugin) pairs, such as [('mine', Mine())]; found {entry!r}")
    name, plugin = entry
    if isinstance(plugin, type) and any(_takes_self(getattr(plugin, attr, None)) for attr in dir(plugin)):
        raise TypeError(f"plugin {name!r} is the class {plugin.__name__}, whose hooks are methods: register an "
                        f"instance, ({name!r}, {plugin.__name__}())")
    return name, plugin


def _takes_self(function: object) -> bool:
    if getattr(function, IMPL_MARK, None) is None:
        return False
    try:
        first = next(iter(inspect.signature(function).parameters), None)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return first == "self"


def plugin_origin(exc: BaseException, group: str = GROUP) -> str | None:
    """``(raised in my_package.loss, line 12, of the plugin distribution my-package 0.1)``, or ``None``.

    For a bug raised in plugin code outside a graph's nodes and the builds,
    which note their own origin: a loss, an optimizer, a logger's hook. The
    innermost frame in a package that an installed distribution registers
    under ``group`` names the distribution, other than nnframe itself.
    """
    packages = plugin_packages(group)
    found = innermost_frame_in(exc, packages)
    if found is None:
        return None
    module, line = found
    dist, version = packages[module.split(".")[0]]
    return f"(raised in {module}, line {line}, of the plugin distribution {dist} {version})"


def innermost_frame_in(exc: BaseException, packages: Iterable[str]) -> tuple[str, int] | None:
    """``(module, line)`` of the innermost frame of ``exc``'s traceback in one of the top-level ``packages``."""
    tops = set(packages)
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    for tb in reversed(frames):
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module.split(".")[0] in tops:
            return module, tb.tb_lineno
    return None


def _failure_site(exc: BaseException, module: str) -> str:
    """`` (raised in my_plugin.nodes, line 12)``: where in the plugin's own package its import, or a registration
    hook, failed.

    A ``SyntaxError`` names its line and its file's name itself, to which its
    path is added; a failure with no frame of the package in its traceback (a
    missing module) says enough alone.
    """
    if isinstance(exc, SyntaxError):
        return f" (in {exc.filename})" if exc.filename else ""
    found = innermost_frame_in(exc, [module.split(".")[0]])
    return f" (raised in {found[0]}, line {found[1]})" if found else ""


def _registering_hooks(plugin: object) -> set[str]:
    """The hooks ``plugin`` has or meant to have: its marked functions' hooks and its unmarked hook-named
    functions, a name that is no hook read as the hook it is closest to (``nnframe_register_node``)."""
    known = hook_names()
    names = [hook for _, hook in marked_functions(plugin)] + unmarked_hooks(plugin)
    return {name if name in known else close_match(name, known) or name for name in names}


def _entry_point_hint(exc: BaseException, ep: metadata.EntryPoint) -> str:
    """Where the module missing is the entry point's own (or a package above it), not one it imports: the entry
    point names a module that is not there, which a missing dependency would not explain."""
    missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    if not missing or not (ep.module == missing or ep.module.startswith(f"{missing}.")):
        return ""
    return (f"; the entry point {ep.name} = {ep.value!r} names that module: fix it under "
            f"[project.entry-points.{ep.group}] in the plugin's pyproject.toml, then install the plugin again "
            f"(pip install -e for one of your own)")


def _no_hooks(ep: metadata.EntryPoint) -> str:
    """A plugin that implements no hook does nothing; most often its entry point names a function, not its module."""
    module = sys.modules.get(ep.module)
    if ep.attr and module is not None and any(getattr(getattr(module, name, None), IMPL_MARK, None)
                                              for name in dir(module)):
        hint = (f"; an entry point names the module that holds the @nnframe.hookimpl functions: {ep.module!r}, not "
                f"{ep.value!r}")
    else:
        hint = "; mark its hook functions with @nnframe.hookimpl"
    return f"implements no nnframe hook, so it adds nothing{hint}"
