"""The typed configuration: webbo.toml decoded into msgspec Structs and validated.

Three rules shape this module:

* **One source of truth.** The TOML file is the config; the web UI and the API are editors of it.
  Every programmatic change goes through :mod:`webbo.agent.core.config_edit`, which validates
  the *whole* new config (with :func:`parse_config`, here) before anything touches the disk.
* **Errors name the key path.** Every problem is reported as ``path: reason`` where the path is
  the TOML key path, e.g. ``outputs.influxdb[0].urls[1]: not an http(s) URL``. Unknown keys are
  errors, never silently ignored.
* **Secrets stay out of the file.** ``${VAR}`` and ``${VAR:-default}`` in string values are
  replaced from the environment when the file is loaded; the file keeps the placeholders.

Plugin sections (``[[inputs.NAME]]``, ``[[outputs.NAME]]``) are decoded with the config Struct the
plugin registered (see :mod:`webbo.agent.core.hookspecs`), so a third-party plugin's options are
checked exactly like the built-in ones.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
import tomllib
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeVar

import msgspec

__all__ = [
    "AgentSection",
    "CheckAll",
    "Config",
    "ConfigError",
    "Duration",
    "IPRange",
    "IPRangeGroup",
    "InputConfig",
    "NetworkSection",
    "OutputConfig",
    "PluginSection",
    "Schemas",
    "SectionType",
    "Size",
    "WebSection",
    "load_config",
    "output_buffer_dir",
    "parse_config",
]


class ConfigError(ValueError):
    """A config problem: ``path: reason``. Several problems are joined one per line."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)


class ConfigErrors(ConfigError):
    """Several problems found in one pass (the message lists them all, one per line)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.path, first.reason)
        self.args = ("\n".join(str(e) for e in errors),)

    def __str__(self) -> str:
        return self.args[0]


# --------------------------------------------------------------------------------------------
# Value types
# --------------------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    None: 1.0,
}


class Duration(float):
    """A time span in seconds, written in TOML as ``"10s"``, ``"500ms"``, ``"2m"`` or a number."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Duration:
        if isinstance(value, bool):
            raise ValueError("expected a duration like \"10s\", got a boolean")
        if isinstance(value, int | float):
            if value < 0:
                raise ValueError("a duration cannot be negative")
            return cls(float(value))
        if isinstance(value, str):
            match = _DURATION.match(value)
            if not match:
                raise ValueError(f'expected a duration like "10s" or "500ms", got {value!r}')
            return cls(float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
        raise ValueError(f"expected a duration like \"10s\", got {type(value).__name__}")

    def __repr__(self) -> str:
        return f"Duration({float(self)!r})"


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.I)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2,
               "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
               "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2,
               "gi": 1024**3, "gib": 1024**3, "ti": 1024**4, "tib": 1024**4}


class Size(int):
    """A number of bytes, written in TOML as ``"512MB"``, ``"2GiB"`` or a plain integer
    (``MB`` is 1,000,000 bytes, ``MiB`` 1,048,576)."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Size:
        if isinstance(value, bool):
            raise ValueError('expected a size like "512MB", got a boolean')
        if isinstance(value, int):
            if value < 0:
                raise ValueError("a size cannot be negative")
            return cls(value)
        if isinstance(value, str):
            match = _SIZE.match(value)
            if not match:
                raise ValueError(f'expected a size like "512MB" or "2GiB", got {value!r}')
            unit = (match.group(2) or "").lower()
            return cls(int(float(match.group(1)) * _SIZE_UNITS[unit]))
        raise ValueError(f'expected a size like "512MB", got {type(value).__name__}')

    def __repr__(self) -> str:
        return f"Size({int(self)})"


def _enc_hook(value: Any) -> Any:
    if isinstance(value, float):  # Duration and other float subclasses
        return float(value)
    if isinstance(value, int):  # Size
        return int(value)
    if isinstance(value, PluginInstance):
        return [value.kind, value.name, value.index, value.config]
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


_KEY_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook, order="deterministic")


_JSON_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook)


def to_json(value: Any) -> bytes:
    """JSON for config-bearing values (Durations become plain seconds)."""
    return _JSON_ENCODER.encode(value)


def config_key(value: Any) -> bytes:
    """A stable byte string for any config value (Structs, Durations, lists): equal settings,
    equal keys. Reload diffs compare these."""
    return _KEY_ENCODER.encode(value)


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is Duration:
        return Duration.parse(value)
    if kind is Size:
        return Size.parse(value)
    raise NotImplementedError


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every config Struct: unknown keys are errors; :meth:`check` adds value checks."""

    def check(self) -> Iterator[ConfigError]:
        """Yield problems with *relative* key paths (``urls[1]``). Override to add checks."""
        return iter(())


class AgentSection(Section, kw_only=True):
    """``[agent]``: the loop's timing, buffering and sweep limits."""

    interval: Duration = Duration(10.0)
    """How often each input gathers (an input may override it)."""
    jitter: Duration = Duration(0.0)
    """Each gather starts up to this much later than its tick, spread at random."""
    flush_interval: Duration = Duration(10.0)
    """How often outputs write what is buffered (earlier when a batch is full)."""
    flush_jitter: Duration = Duration(0.0)
    metric_batch_size: int = 1000
    metric_buffer_limit: int = 100_000
    retry_max_backoff: Duration = Duration(30.0)
    """Longest wait between two attempts of a failing output."""
    internal_metrics: bool = True
    """Write the ``webbo_internal`` self-metrics."""
    concurrency: int = 1024
    """Most addresses the miner sweep talks to at once (each is at most one open socket)."""
    connect_timeout: Duration = Duration(1.0)
    timeout: Duration = Duration(5.0)
    """Default time limit of one request to a device."""
    dead_address_backoff: Duration = Duration(60.0)
    """An address that answers nothing is left alone this long (the manual's minute)."""
    max_addresses: int = 262_144
    """Cap on the total number of addresses of all ranges."""
    control_concurrency: int = 256
    """Most devices one control task acts on at once."""
    watch_config: bool = True
    """Reload when the config file changes on disk."""

    def check(self) -> Iterator[ConfigError]:
        for name in ("metric_batch_size", "metric_buffer_limit", "concurrency", "max_addresses",
                     "control_concurrency"):
            if getattr(self, name) < 1:
                yield ConfigError(name, "must be at least 1")
        if self.metric_buffer_limit < self.metric_batch_size:
            yield ConfigError("metric_buffer_limit", "must not be smaller than metric_batch_size")
        if self.interval <= 0:
            yield ConfigError("interval", "must be longer than 0s")
        if self.flush_interval <= 0:
            yield ConfigError("flush_interval", "must be longer than 0s")
        if self.connect_timeout <= 0 or self.timeout <= 0:
            yield ConfigError("timeout" if self.timeout <= 0 else "connect_timeout",
                              "must be longer than 0s")


class WebSection(Section, kw_only=True):
    """``[web]``: the web UI and API server."""

    enabled: bool = True
    listen: str = "127.0.0.1:8000"
    """HOST:PORT. 127.0.0.1 keeps it on this machine; 0.0.0.0:80 opens it to the farm network."""
    state_dir: str = ""
    """Users, API keys, inventory, audit log. Empty: $XDG_STATE_HOME/webbo (~/.local/state/webbo).
    A relative path is relative to the config file."""
    task_ttl: Duration = Duration(3600.0)
    """A finished task that nobody read is forgotten after this long."""
    session_ttl: Duration = Duration(12 * 3600.0)
    login_attempts: int = 5
    """Failed logins allowed per address and user within login_window."""
    login_window: Duration = Duration(300.0)
    metrics: bool = True
    """Serve Prometheus's ``/metrics``: the fleet's current readings and the agent's figures."""
    metrics_listen: str = ""
    """Also serve ``/metrics`` alone on this HOST:PORT (e.g. "127.0.0.1:9273"); empty: only on
    ``listen``."""
    metrics_token: str = ""
    """The bearer token Prometheus sends. On ``listen``, /metrics takes it or an API key (never
    nothing); on ``metrics_listen``, nothing is asked when this is empty."""

    def check(self) -> Iterator[ConfigError]:
        for key in ("listen", "metrics_listen"):
            value = getattr(self, key)
            if key == "metrics_listen" and not value:
                continue
            host, sep, port = value.rpartition(":")
            if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
                yield ConfigError(key, f'expected "HOST:PORT", got {value!r}')
        if self.metrics_listen and self.metrics_listen == self.listen:
            yield ConfigError("metrics_listen", "must differ from listen (leave it empty to "
                              "serve /metrics on listen)")
        if self.login_attempts < 1:
            yield ConfigError("login_attempts", "must be at least 1")


class IPRange(Section, kw_only=True):
    """One range of addresses (a rack, in the manual's words)."""

    first: str
    last: str
    name: str = ""
    uuid: str = ""

    def check(self) -> Iterator[ConfigError]:
        yield from _check_uuid4(self.uuid)
        bounds = []
        for key in ("first", "last"):
            value = getattr(self, key)
            try:
                bounds.append(ipaddress.IPv4Address(value))
            except ValueError:
                yield ConfigError(key, f"not an IPv4 address: {value!r}")
        if len(bounds) == 2 and bounds[0] > bounds[1]:
            yield ConfigError("last", f"{self.last} is before first {self.first}")

    @property
    def size(self) -> int:
        return int(ipaddress.IPv4Address(self.last)) - int(ipaddress.IPv4Address(self.first)) + 1


class IPRangeGroup(Section, kw_only=True):
    """A group of ranges (a room)."""

    name: str = ""
    uuid: str = ""
    ip_ranges: list[IPRange] = msgspec.field(default_factory=list)

    def check(self) -> Iterator[ConfigError]:
        yield from _check_uuid4(self.uuid)


class NetworkSection(Section, kw_only=True):
    """``[network]``: the manual's Network object — what the miner sweep covers."""

    ip_range_groups: list[IPRangeGroup] = msgspec.field(default_factory=list)


def _check_uuid4(value: str) -> Iterator[ConfigError]:
    if not value:
        return
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        yield ConfigError("uuid", f"not a UUID: {value!r}")
        return
    if parsed.version != 4 or str(parsed) != value.lower():
        yield ConfigError("uuid", f"not a UUID4: {value!r}")


class PluginSection(Section, kw_only=True):
    """Options every ``[[inputs.*]]`` and ``[[outputs.*]]`` table accepts."""

    alias: str = ""
    """A name for this instance in logs and self-metrics."""


class InputConfig(PluginSection, kw_only=True):
    """Base of every input's config Struct."""

    interval: Duration | None = None
    """Overrides [agent] interval for this input."""
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    """Extra tags added to every metric of this input."""




BufferKind = Literal["memory", "disk"]

MIN_DISK_BUFFER = 1_000_000
"""The smallest ``buffer_max_bytes`` (16 segments of 64 kB)."""


class OutputConfig(PluginSection, kw_only=True):
    """Base of every output's config Struct."""

    metric_batch_size: int | None = None
    metric_buffer_limit: int | None = None
    """Metrics kept in memory; with ``buffer = "disk"``, metrics waiting to be written to the
    disk (a second's worth, unless the disk stalls)."""
    flush_interval: Duration | None = None
    buffer: BufferKind = "memory"
    """Where unsent metrics wait: "memory" (lost on restart) or "disk" (see docs/deploy.md)."""
    buffer_dir: str = ""
    """The disk buffer's folder. Empty: <state_dir>/buffers/<output>-<alias or index>."""
    buffer_max_bytes: Size = Size(1024**3)
    """The disk buffer's size; when full, its oldest segment is dropped (counted, logged)."""
    namepass: list[str] = msgspec.field(default_factory=list)
    """Only metrics whose name matches one of these globs go to this output."""
    namedrop: list[str] = msgspec.field(default_factory=list)
    """Metrics whose name matches one of these globs never go to this output."""


@dataclass(frozen=True)
class PluginInstance:
    """One ``[[inputs.NAME]]`` or ``[[outputs.NAME]]`` table, decoded."""

    kind: str  # "inputs" | "outputs"
    name: str
    index: int
    config: Any  # the plugin's Struct

    @property
    def path(self) -> str:
        return f"{self.kind}.{self.name}[{self.index}]"

    @property
    def key(self) -> bytes:
        """Identity for reload diffs: same plugin, same settings."""
        return self.name.encode() + b"\0" + config_key(self.config)

    @property
    def label(self) -> str:
        alias = getattr(self.config, "alias", "")
        return f"{self.name}:{alias}" if alias else self.path


S = TypeVar("S", bound="Section")

CheckAll = Callable[[list[Any], "Config"], Iterable[ConfigError]]
"""Checks across all instances of one plugin, or across a section and the rest of the config
(e.g. two meters on one address, a rule naming a range that does not exist)."""


@dataclass(frozen=True)
class SectionType:
    """A top-level section that a room or a plugin adds to webbo.toml (``[alerts]``, ...):
    decoded with ``config`` (a :class:`Section`), then checked with ``check`` against the whole
    config. Registered through the ``webbo_config_sections`` hook."""

    name: str
    config: type[Section]
    check: Callable[[Any, Config], Iterable[ConfigError]] | None = None
    description: str = ""


class PluginSchema(Protocol):
    """What decoding needs of an input or output type (its config Struct, its cross-checks)."""

    @property
    def config(self) -> type: ...

    @property
    def check_all(self) -> CheckAll | None: ...


class Schemas(Protocol):
    """Where the config finds the Structs of plugin tables and added sections (the plugin
    registry, :class:`~webbo.agent.core.plugins.PluginRegistry`)."""

    sections: Mapping[str, SectionType]

    def lookup(self, kind: str, name: str) -> PluginSchema | None: ...

    def names(self, kind: str) -> list[str]: ...


class Config(msgspec.Struct, kw_only=True):
    """The whole, validated config. Treat as read-only; change it with :func:`edit_config`."""

    agent: AgentSection = msgspec.field(default_factory=AgentSection)
    web: WebSection = msgspec.field(default_factory=WebSection)
    network: NetworkSection = msgspec.field(default_factory=NetworkSection)
    inputs: list[PluginInstance] = msgspec.field(default_factory=list)
    outputs: list[PluginInstance] = msgspec.field(default_factory=list)
    sections: dict[str, Any] = msgspec.field(default_factory=dict)
    """The sections that rooms above the core and plugins add (``[alerts]``, ``[power]``, ...):
    name → decoded Struct, every registered one present (its defaults when the file has none).
    Read them with :meth:`section`."""
    path: str | None = None
    """Where it was read from (None when built from text alone)."""
    generated_uuids: bool = False
    """True when some group or range had no uuid and one was assigned at load."""

    TOP_LEVEL: ClassVar[tuple[str, ...]] = ("agent", "web", "network", "inputs", "outputs")

    def instances(self, kind: str, name: str) -> list[Any]:
        """The decoded config Structs of every ``[[kind.name]]`` table."""
        return [i.config for i in getattr(self, kind) if i.name == name]

    def section(self, kind: type[S]) -> S:
        """The registered section decoded as ``kind`` (its defaults if the file has none)."""
        for value in self.sections.values():
            if isinstance(value, kind):
                return value
        return kind()

    @property
    def state_dir(self) -> Path:
        raw = self.web.state_dir
        if not raw:
            base = os.environ.get("XDG_STATE_HOME") or os.path.join(
                os.path.expanduser("~"), ".local", "state"
            )
            return Path(base) / "webbo"
        path = Path(os.path.expanduser(raw))
        if not path.is_absolute() and self.path:
            path = Path(self.path).resolve().parent / path
        return path


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------

_MSGSPEC_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<key>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<key>[^`]*)`$")
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]*)`, got `(?P<got>[^`]*)`$")
_RELATIVE = re.compile(r"^(?P<path>[A-Za-z0-9_\-\[\]\.]+): (?P<reason>.+)$", re.S)


def _join(prefix: str, rel: str) -> str:
    if not prefix:
        return rel.lstrip(".")
    if not rel:
        return prefix
    return prefix + rel if rel.startswith("[") else f"{prefix}.{rel.lstrip('.')}"


def validation_error(prefix: str, error: msgspec.ValidationError) -> ConfigError:
    """Turn msgspec's ``reason - at `$.a[0].b``` into ``prefix.a[0].b: reason``."""
    match = _MSGSPEC_AT.match(str(error))
    assert match is not None
    msg, rel = match.group("msg"), match.group("path") or ""
    path = _join(prefix, rel)
    if m := _UNKNOWN.match(msg):
        return ConfigError(_join(path, m.group("key")), "unknown key")
    if m := _MISSING.match(msg):
        return ConfigError(_join(path, m.group("key")), "required key is missing")
    if m := _EXPECTED.match(msg):
        want = m.group("want").replace("array", "list").replace("object", "table")
        return ConfigError(path, f"expected {want}, got {m.group('got')}")
    if m := _RELATIVE.match(msg):
        return ConfigError(_join(path, m.group("path")), m.group("reason"))
    return ConfigError(path, msg[0].lower() + msg[1:] if msg else "invalid value")


def _decode(prefix: str, raw: Any, kind: type) -> Any:
    try:
        return msgspec.convert(raw, kind, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise validation_error(prefix, exc) from None


_ENV = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def _substitute(value: Any, path: str, env: Mapping[str, str]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of ``value``."""
    if isinstance(value, str):
        if "${" not in value:
            return value

        def repl(match: re.Match[str]) -> str:
            name, default = match.group("name"), match.group("default")
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(path, f"environment variable {name} is not set")

        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, _join(path, k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    return value


def _walk_checks(obj: Any, path: str) -> Iterator[ConfigError]:
    """Run :meth:`Section.check` on ``obj`` and every Section nested in it."""
    if isinstance(obj, Section):
        for err in obj.check():
            yield ConfigError(_join(path, err.path), err.reason)
        for field in msgspec.structs.fields(obj):
            yield from _walk_checks(getattr(obj, field.name), _join(path, field.encode_name))
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from _walk_checks(item, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for key, item in obj.items():
            if isinstance(item, Section | list | dict):
                yield from _walk_checks(item, _join(path, str(key)))


def _stable_uuid4(*parts: str) -> str:
    """A UUID4-shaped id derived from ``parts``: the same unnamed range gets the same id on every
    load, even when the file cannot be written back."""
    digest = uuid.uuid5(uuid.NAMESPACE_URL, "webbo:" + "\0".join(parts)).bytes
    return str(uuid.UUID(bytes=digest, version=4))


def _assign_uuids(network: NetworkSection) -> bool:
    changed = False
    for gi, group in enumerate(network.ip_range_groups):
        if not group.uuid:
            group.uuid = _stable_uuid4("group", str(gi), group.name)
            changed = True
        for range_ in group.ip_ranges:
            if not range_.uuid:
                range_.uuid = _stable_uuid4("range", group.uuid, range_.first, range_.last)
                changed = True
    return changed


def check_network(network: NetworkSection, max_addresses: int) -> Iterator[ConfigError]:
    """Cross-range rules: no two ranges overlap, ids are unique, the total stays under the cap."""
    spans: list[tuple[int, int, str, str]] = []
    seen_ids: dict[str, str] = {}
    total = 0
    for gi, group in enumerate(network.ip_range_groups):
        gpath = f"network.ip_range_groups[{gi}]"
        if group.uuid in seen_ids:
            yield ConfigError(f"{gpath}.uuid", f"duplicate id, also used by {seen_ids[group.uuid]}")
        seen_ids.setdefault(group.uuid, gpath)
        for ri, range_ in enumerate(group.ip_ranges):
            rpath = f"{gpath}.ip_ranges[{ri}]"
            if range_.uuid in seen_ids:
                yield ConfigError(f"{rpath}.uuid",
                                  f"duplicate id, also used by {seen_ids[range_.uuid]}")
            seen_ids.setdefault(range_.uuid, rpath)
            try:
                first = int(ipaddress.IPv4Address(range_.first))
                last = int(ipaddress.IPv4Address(range_.last))
            except ValueError:
                continue  # reported by IPRange.check
            if first > last:
                continue
            name = f'"{range_.name}" ' if range_.name else ""
            label = f"range {name}{range_.first}-{range_.last} ({rpath})"
            spans.append((first, last, rpath, label))
            total += last - first + 1
    spans.sort()
    for (_, a_last, _, a_label), (b_first, _, b_path, b_label) in itertools.pairwise(spans):
        if b_first <= a_last:
            yield ConfigError(b_path, f"{b_label} overlaps {a_label}")
    if total > max_addresses:
        yield ConfigError(
            "network",
            f"the ranges hold {total} addresses, more than agent.max_addresses = {max_addresses}",
        )


def parse_config(
    text: str,
    registry: Schemas,
    *,
    path: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Decode and validate config text. Raises :class:`ConfigError` naming the key path."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"not valid TOML: {exc}") from None
    env = os.environ if env is None else env
    errors: list[ConfigError] = []

    for key in raw:
        if key not in Config.TOP_LEVEL and key not in registry.sections:
            errors.append(ConfigError(key, "unknown key"))
    if errors:
        raise ConfigErrors(errors)

    def section(name: str, kind: type) -> Any:
        data = _substitute(raw.get(name, {}), name, env)
        return _decode(name, data, kind)

    agent = section("agent", AgentSection)
    web = section("web", WebSection)
    network = section("network", NetworkSection)
    added: dict[str, Any] = {}
    for name, stype in registry.sections.items():
        try:
            added[name] = section(name, stype.config)
        except ConfigError as exc:
            errors.append(exc)

    instances: dict[str, list[PluginInstance]] = {"inputs": [], "outputs": []}
    for kind in ("inputs", "outputs"):
        block = raw.get(kind, {})
        if not isinstance(block, dict):
            raise ConfigError(kind, f"expected tables like [[{kind}.NAME]]")
        for name, tables in block.items():
            plugin = registry.lookup(kind, name)
            if plugin is None:
                known = ", ".join(registry.names(kind)) or "none"
                errors.append(ConfigError(f"{kind}.{name}", f"unknown plugin (loaded: {known})"))
                continue
            if isinstance(tables, dict):
                tables = [tables]
            if not isinstance(tables, list):
                errors.append(ConfigError(f"{kind}.{name}", f"expected [[{kind}.{name}]] tables"))
                continue
            for index, table in enumerate(tables):
                ipath = f"{kind}.{name}[{index}]"
                try:
                    decoded = _decode(ipath, _substitute(table, ipath, env), plugin.config)
                except ConfigError as exc:
                    errors.append(exc)
                    continue
                instances[kind].append(PluginInstance(kind, name, index, decoded))

    if errors:
        raise ConfigErrors(errors)

    generated = _assign_uuids(network)
    config = Config(
        agent=agent,
        web=web,
        network=network,
        inputs=instances["inputs"],
        outputs=instances["outputs"],
        sections=added,
        path=path,
        generated_uuids=generated,
    )
    errors.extend(_walk_checks(agent, "agent"))
    errors.extend(_walk_checks(web, "web"))
    errors.extend(_walk_checks(network, "network"))
    errors.extend(check_network(network, agent.max_addresses))
    errors.extend(check_output_buffers(config))
    for name, value in added.items():
        errors.extend(_walk_checks(value, name))
    for inst in config.inputs + config.outputs:
        errors.extend(_walk_checks(inst.config, inst.path))
    for kind in ("inputs", "outputs"):
        for name in {i.name for i in getattr(config, kind)}:
            plugin = registry.lookup(kind, name)
            if plugin is not None and plugin.check_all is not None:
                errors.extend(plugin.check_all(config.instances(kind, name), config))
    if not errors:  # cross-checks of added sections may rely on the rest being valid
        for name, stype in registry.sections.items():
            if stype.check is not None:
                errors.extend(ConfigError(_join(name, e.path), e.reason)
                              for e in stype.check(added[name], config))
    if errors:
        raise ConfigErrors(errors)
    return config


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def output_buffer_dir(config: Config, inst: PluginInstance) -> Path:
    """The disk buffer folder of an output: ``buffer_dir``, or one under the state folder named
    after the plugin and its alias (else its index among the tables of that plugin). The URL is
    not part of it, so an output whose server moves keeps its buffered metrics."""
    raw = getattr(inst.config, "buffer_dir", "")
    if raw:
        path = Path(os.path.expanduser(raw))
        if not path.is_absolute() and config.path:
            path = Path(config.path).resolve().parent / path
        return path
    alias = getattr(inst.config, "alias", "")
    name = _UNSAFE_NAME.sub("_", alias) if alias else str(inst.index)
    return config.state_dir / "buffers" / f"{inst.name}-{name}"


def check_output_buffers(config: Config) -> Iterator[ConfigError]:
    """A disk buffer has a usable size, and no two outputs share one folder."""
    seen: dict[Path, str] = {}
    for inst in config.outputs:
        if getattr(inst.config, "buffer", "memory") != "disk":
            continue
        if int(inst.config.buffer_max_bytes) < MIN_DISK_BUFFER:
            yield ConfigError(f"{inst.path}.buffer_max_bytes",
                              f"must be at least {MIN_DISK_BUFFER} bytes (1MB)")
        folder = output_buffer_dir(config, inst).resolve()
        if folder in seen:
            yield ConfigError(f"{inst.path}.buffer_dir",
                              f"{folder} is already the buffer of {seen[folder]}")
        seen.setdefault(folder, inst.path)


def load_config(path: str | os.PathLike[str], registry: Schemas) -> Config:
    """Read and validate a config file."""
    path = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_config(text, registry, path=path)
