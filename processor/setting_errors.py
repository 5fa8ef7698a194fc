"""Settings problems in the operator's words: unknown names with a "did you mean", JSON
where JSON is expected, invalid values with the place they came from (processor/origins.py).

processor/config.py calls these before and after pydantic validates the settings; nothing
here knows the settings model, it gets the field names and types passed in.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from processor.errors import UsageError
from processor.origins import ENV_PREFIX, NESTED, Origins

README = "README.md lists every setting under Configuration"


class ConfigError(UsageError):
    """A configuration problem, reported to the user without a traceback (exit 2)."""


def did_you_mean(name: str, candidates: Iterable[str], render: str = "{}") -> str:
    """`did you mean X?` for the closest candidate, or ""."""
    pool = list(candidates)
    lowered = {c.lower(): c for c in pool}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f"did you mean {render.format(lowered[close[0]])}?" if close else ""


def problem(what: str, *path: str, hint: str = "") -> PydanticCustomError:
    """A validator's error that keeps its setting path and advice for the failure line."""
    # The message is a template: pass the text through the context so braces stay literal.
    return PydanticCustomError("setting", "{what}", {"what": what, "path": path, "hint": hint})


# -- the environment ----------------------------------------------------------------------------

# Kubernetes injects `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT_8080_TCP_ADDR`, ... for every
# Service in the namespace: a Service named tmf-events-* yields TMF_EVENTS_* names that are
# no typo of a setting.
_SERVICE_LINK = re.compile(r".+_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT_\d+_(TCP|UDP|SCTP)(_\w+)?)")
_SERVICE_URL = re.compile(r"(tcp|udp|sctp)://[^\s]+:\d+")


def _service_link(name: str, value: str) -> bool:
    upper = name.upper()
    if _SERVICE_LINK.fullmatch(upper):
        return True
    return upper.endswith("_PORT") and bool(_SERVICE_URL.fullmatch(value))


def kind_of(field: FieldInfo) -> str | None:
    """ "list" or "object" for settings given as JSON in the environment, else None."""
    annotation: Any = field.annotation
    candidates = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) not in (typing.Union, None) or not candidates:
        candidates = [annotation]
    for candidate in candidates:
        origin = typing.get_origin(candidate) or candidate
        if origin is list:
            return "list"
        if origin is dict or (isinstance(origin, type) and issubclass(origin, BaseModel)):
            return "object"
    return None


def check_environment(origins: Origins, fields: Mapping[str, FieldInfo]) -> None:
    """Refuse `TMF_EVENTS_*` variables that name no setting, and settings that must be JSON
    in the environment but are not."""
    known = {name.upper(): name for name in fields}
    for var, value in sorted(origins.env.items()):
        top = var[len(ENV_PREFIX) :].split(NESTED, 1)[0]
        if top.upper() in known or _service_link(var, value):
            continue
        guess = did_you_mean(var.split(NESTED, 1)[0], (ENV_PREFIX + k for k in known))
        raise ConfigError(
            f"unknown setting {top.lower()}",
            (f"{guess} " if guess else "") + f"Fix or unset the variable; {README}",
            origin=f"{top.lower()} from environment variable {var}",
        )
    for name, field in fields.items():
        kind = kind_of(field)
        given = origins.env_name(name)
        if kind is None or given is None or given.upper() != ENV_PREFIX + name.upper():
            continue
        var, value = given, origins.env[given]
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ConfigError(
                f"{var} must be a JSON {kind}, not {value!r}",
                f"write it as {var}='{_example(kind, name, value)}'"
                + (f" or one member at a time as {var}{NESTED}<name>" if kind == "object" else ""),
                origin=f"{name} from environment variable {var}",
            ) from None


def _example(kind: str, name: str, value: str) -> str:
    if kind == "list":
        return orjson.dumps([part.strip() for part in value.split(",") if part.strip()]).decode()
    if name == "kafka":
        return '{"security.protocol": "SSL"}'
    return '{"name": "value"}'


# -- validation errors ------------------------------------------------------------------------


_HINTS = {
    "int_parsing": "use a whole number",
    "int_from_float": "use a whole number",
    "float_parsing": "use a number",
    "bool_parsing": "use true or false",
    "list_type": "use a list",
    "dict_type": "use a mapping",
    "string_type": "use a text value",
    "model_type": "use a mapping",
    "missing": "set it",
}
_SECRET = re.compile(r"secret|password|kafka", re.IGNORECASE)


def from_validation(
    exc: ValidationError, origins: Origins, fields: Mapping[str, FieldInfo]
) -> ConfigError:
    """The first problem of a failed validation as one failure line, the rest counted."""
    problems = [_problem(error, origins, fields) for error in exc.errors()]
    first, rest = problems[0], problems[1:]
    if rest:
        others = ", ".join(p.origin.split(" from ")[0] if p.origin else p.what for p in rest)
        first.hint += f"; also wrong: {others}"
    return first


def _problem(
    error: Mapping[str, Any], origins: Origins, fields: Mapping[str, FieldInfo]
) -> ConfigError:
    ctx = error.get("ctx") or {}
    path = tuple(ctx["path"]) if ctx.get("path") else tuple(str(p) for p in error["loc"])
    dotted = ".".join(path)
    origin = origins.describe(*path) if path else None
    kind = error["type"]
    if kind == "extra_forbidden":
        prefix = "".join(f"{part}." for part in path[:-1])
        guess = did_you_mean(path[-1], _names_at(path[:-1], fields), prefix + "{}")
        return ConfigError(
            f"unknown setting {dotted}",
            (f"{guess} " if guess else "") + f"Fix or remove it; {README}",
            origin=origin,
        )
    if kind == "setting":
        return ConfigError(str(ctx["what"]), str(ctx.get("hint") or ""), origin=origin)
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = error.get("input")
    shown = (
        f", got {value!r}"
        if isinstance(value, str | int | float | bool) and not _SECRET.search(dotted)
        else ""
    )
    what = f"invalid {dotted}: {message[:1].lower()}{message[1:]}{shown}" if path else message
    if kind == "literal_error":
        hint = f"use {ctx.get('expected')}"
    elif "ge" in ctx or "gt" in ctx:
        hint = f"use a value of at least {ctx.get('ge', ctx.get('gt'))}"
    elif "le" in ctx or "lt" in ctx:
        hint = f"use a value of at most {ctx.get('le', ctx.get('lt'))}"
    else:
        hint = _HINTS.get(kind, f"fix the value; {README}")
    return ConfigError(what, hint, origin=origin)


def _names_at(path: tuple[str, ...], fields: Mapping[str, FieldInfo]) -> list[str]:
    """The setting names allowed at `path` (top level, or inside a nested settings model)."""
    names: Mapping[str, FieldInfo] = fields
    for part in path:
        field = names.get(part)
        annotation: Any = None if field is None else field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        names = annotation.model_fields
    return list(names)
