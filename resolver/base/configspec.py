"""Declaring config options once: type, default, help, check.

Every config section is a frozen dataclass whose fields are made with
:func:`option`. From those declarations this module builds the section from a
YAML node (with file and line for every error), the reference documentation
and the commented example file. Nothing about an option is written twice.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from dataclasses import MISSING, dataclass, field
from typing import Any, Callable, Optional, Union

import yaml


class ConfigError(Exception):
    """One or more problems in a config file, each ``FILE:LINE: dotted.key: what``."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key}: {self.message}"


def option(default: Any, help: str, *, check: Optional[Callable[[Any], Any]] = None,
           choices: Optional[tuple] = None, minimum: Optional[float] = None,
           maximum: Optional[float] = None, duration: bool = False, example: Any = MISSING,
           related: str = "") -> Any:
    """A config field. ``check`` may normalise the value or raise ValueError.

    ``duration`` accepts numbers of seconds or strings like ``30s``, ``5m``, ``6h``, ``1d``.
    """
    meta = {"help": help, "check": check, "choices": choices, "minimum": minimum,
            "maximum": maximum, "duration": duration, "example": example, "related": related}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: _copy(d), metadata=meta)
    if dataclasses.is_dataclass(default):
        return field(default_factory=lambda d=default: d, metadata=meta)
    return field(default=default, metadata=meta)


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``"30s"``, ``"5m"``, ``"6h"``, ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 5m, 6h or 1d")
    if isinstance(value, (int, float)):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"bad duration {value!r} (use e.g. 30s, 5m, 6h, 1d)")
    return float(m.group(1)) * _UNIT[m.group(2)]


def format_duration(seconds: float) -> str:
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNIT[unit] == 0:
            return f"{int(seconds // _UNIT[unit])}{unit}"
    return f"{seconds:g}s"


# ---------------------------------------------------------------- building

class _Builder:
    def __init__(self, filename: str):
        self.filename = filename
        self.problems: list[Problem] = []
        self._constructor = yaml.SafeLoader("")

    def problem(self, node: Optional[yaml.Node], key: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 0
        self.problems.append(Problem(self.filename, line, key or "(top level)", message))

    def scalar(self, node: yaml.Node) -> Any:
        return self._constructor.construct_object(node, deep=True)

    def section(self, cls: type, node: Optional[yaml.Node], path: str) -> Any:
        """Build dataclass ``cls`` from a mapping node (None = all defaults)."""
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"):
            return cls()
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, "expected a mapping of keys")
            return cls()
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(self.scalar(key_node))
            dotted = f"{path}.{key}" if path else key
            if key in seen:
                self.problem(key_node, dotted, "key given twice")
                continue
            seen.add(key)
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(fields)}"
                self.problem(key_node, dotted, f"unknown key{hint}")
                continue
            f = fields[key]
            value = self.value(hints[key], f, value_node, dotted)
            if value is not _BAD:
                values[key] = value
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:  # cross-field checks in __post_init__
            self.problem(node, path, str(exc))
            return cls()

    def value(self, hint: Any, f: dataclasses.Field, node: yaml.Node, dotted: str) -> Any:
        meta = f.metadata
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin is Union and type(None) in args:  # Optional[X]
            if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
                return None
            hint = next(a for a in args if a is not type(None))
            origin, args = typing.get_origin(hint), typing.get_args(hint)
        try:
            if dataclasses.is_dataclass(hint):
                return self.section(hint, node, dotted)
            if origin is list:
                if not isinstance(node, yaml.SequenceNode):
                    raise ValueError("expected a list")
                item = args[0] if args else Any
                out = []
                for i, child in enumerate(node.value):
                    sub = f"{dotted}[{i}]"
                    if dataclasses.is_dataclass(item):
                        out.append(self.section(item, child, sub))
                    else:
                        v = self.checked(meta, self.convert(item, meta, self.scalar(child), child, sub), child, sub)
                        if v is not _BAD:
                            out.append(v)
                return out
            raw = self.scalar(node)
            return self.checked(meta, self.convert(hint, meta, raw, node, dotted), node, dotted)
        except ValueError as exc:
            self.problem(node, dotted, str(exc))
            return _BAD

    def convert(self, hint: Any, meta: Any, raw: Any, node: yaml.Node, dotted: str) -> Any:
        try:
            if meta.get("duration"):
                value = parse_duration(raw)
            elif hint is bool:
                if not isinstance(raw, bool):
                    raise ValueError(f"expected true or false, got {raw!r}")
                value = raw
            elif hint is int:
                if isinstance(raw, bool) or not isinstance(raw, int):
                    raise ValueError(f"expected a whole number, got {raw!r}")
                value = raw
            elif hint is float:
                if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                    raise ValueError(f"expected a number, got {raw!r}")
                value = float(raw)
            elif hint is str:
                if isinstance(raw, (dict, list)) or raw is None:
                    raise ValueError(f"expected a string, got {raw!r}")
                value = str(raw)
            else:
                value = raw
            choices = meta.get("choices")
            if choices and value not in choices:
                raise ValueError(f"must be one of {', '.join(map(str, choices))}, got {value!r}")
            lo, hi = meta.get("minimum"), meta.get("maximum")
            if lo is not None and value < lo:
                raise ValueError(f"must be at least {lo}, got {value!r}")
            if hi is not None and value > hi:
                raise ValueError(f"must be at most {hi}, got {value!r}")
            return value
        except ValueError as exc:
            self.problem(node, dotted, str(exc))
            return _BAD

    def checked(self, meta: Any, value: Any, node: yaml.Node, dotted: str) -> Any:
        if value is _BAD:
            return _BAD
        check = meta.get("check")
        if check is None:
            return value
        try:
            return check(value)
        except ValueError as exc:
            self.problem(node, dotted, str(exc))
            return _BAD


_BAD = object()


def load_section_file(cls: type, path: Optional[str]) -> Any:
    """Read ``path`` and build dataclass ``cls`` from it (None: ``cls()``, the embedded defaults); a file that
    cannot be read or is not UTF-8 is a ConfigError like any other."""
    if path is None:
        return cls()
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError([f"{path}:0: (file): cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}:0: (file): not UTF-8 text: {exc}"]) from None
    return build_section(cls, text, path)


def build_section(cls: type, text: str, filename: str) -> Any:
    """Parse YAML ``text`` into dataclass ``cls``; raise ConfigError naming file, line and key."""
    builder = _Builder(filename)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        raise ConfigError([f"{filename}:{line}: (syntax): {getattr(exc, 'problem', None) or exc}"]) from None
    result = builder.section(cls, node, "")
    if builder.problems:
        raise ConfigError([str(p) for p in builder.problems])
    return result


# ---------------------------------------------------------------- documentation

def _type_name(hint: Any, meta: Any) -> str:
    if meta.get("duration"):
        return "duration"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        inner = [a for a in args if a is not type(None)]
        return _type_name(inner[0], meta) + " or null"
    if origin is list:
        item = args[0] if args else Any
        return f"list of {item.__name__ if dataclasses.is_dataclass(item) else _type_name(item, {})}"
    if dataclasses.is_dataclass(hint):
        return "section"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(hint, str(hint))


def _default_text(f: dataclasses.Field, meta: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _yaml_value(value: Any, meta: Any) -> str:
    if meta.get("duration") and isinstance(value, (int, float)):
        return format_duration(value)
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1000).strip()
    return text[:-4].strip() if text.endswith("...") else text


def iter_options(cls: type, prefix: str = ""):
    """Yield (dotted_key, field, type_hint, is_section) for every option, depth first."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}{f.name}"
        hint = hints[f.name]
        section = dataclasses.is_dataclass(hint)
        yield dotted, f, hint, section
        if section:
            yield from iter_options(hint, dotted + ".")


def reference_markdown(cls: type, title: str, intro: str) -> str:
    """The config reference page: every key with type, default, effect."""
    out = [f"# {title}", "", intro.strip(), ""]
    for dotted, f, hint, section in iter_options(cls):
        meta = f.metadata
        depth = dotted.count(".")
        if section:
            out += [f"{'#' * min(2 + depth, 4)} `{dotted}`", "", meta.get("help", ""), ""]
            continue
        default = _yaml_value(_default_text(f, meta), meta)
        out.append(f"- **`{dotted}`** ({_type_name(hint, meta)}, default `{default}`)  ")
        out.append(f"  {meta.get('help', '')}")
        if meta.get("choices"):
            out.append(f"  One of: {', '.join(f'`{c}`' for c in meta['choices'])}.")
        if meta.get("related"):
            out.append(f"  See also: {meta['related']}.")
        item = typing.get_args(hint)[0] if typing.get_origin(hint) is list and typing.get_args(hint) else None
        if item is not None and dataclasses.is_dataclass(item):
            out.append("  Each item has these keys:")
            for sub, sf, shint, _ in iter_options(item):
                sub_default = _yaml_value(_default_text(sf, sf.metadata), sf.metadata)
                out.append(f"  - `{sub}` ({_type_name(shint, sf.metadata)}, default `{sub_default}`): "
                           f"{sf.metadata.get('help', '')}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def example_yaml(cls: type, header: str) -> str:
    """A commented YAML file with every option at its default (examples where given)."""
    out = [f"# {line}" if line else "#" for line in header.strip().splitlines()] + [""]

    def emit(section_cls: type, indent: int) -> None:
        hints = typing.get_type_hints(section_cls)
        for f in dataclasses.fields(section_cls):
            meta = f.metadata
            pad = "  " * indent
            for line in _wrap(meta.get("help", "")):
                out.append(f"{pad}# {line}")
            hint = hints[f.name]
            if dataclasses.is_dataclass(hint):
                out.append(f"{pad}{f.name}:")
                emit(hint, indent + 1)
                continue
            value = meta.get("example", MISSING)
            if value is MISSING:
                value = _default_text(f, meta)
            item = typing.get_args(hint)[0] if typing.get_origin(hint) is list and typing.get_args(hint) else None
            if item is not None and dataclasses.is_dataclass(item) and value:
                out.append(f"{pad}{f.name}:")
                for entry in value:
                    data = {k: v for k, v in entry.items()} if isinstance(entry, dict) else dataclasses.asdict(entry)
                    first = True
                    for k, v in data.items():
                        out.append(f"{pad}  {'- ' if first else '  '}{k}: {_yaml_value(v, {})}")
                        first = False
            else:
                out.append(f"{pad}{f.name}: {_yaml_value(value, meta)}")
        out.append("")

    emit(cls, 0)
    return "\n".join(out).rstrip() + "\n"


def _wrap(text: str, width: int = 88) -> list[str]:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    if line:
        lines.append(line)
    return lines
