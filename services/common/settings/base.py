"""The settings layer's machinery: typed models read from environment variables (pydantic-settings).

A setting is a field declared once, with ``setting(default, env="VAR", doc="...")``,
on one model: a shared part (``parts.py``: MongoDB, Redis, Meta budget, freshness,
auth, logging) or a service's own model, which inherits the parts it needs::

    class GatewaySettings(MongoSettings, RedisSettings, FreshnessSettings, ...):
        l1_max_bytes: int = setting(50 * 1024 * 1024, env="L1_MAX_BYTES", doc="...", ge=0)

    settings = GatewaySettings.from_env()                 # os.environ, then checks
    settings = GatewaySettings.from_env(env, port=50051)  # a mapping; keyword values (flags) win
    settings = GatewaySettings(port=0)                    # defaults and keywords only (tests)

Values are parsed and checked by pydantic; an empty variable counts as unset.
Anything invalid raises ``SettingsError`` (a ValueError) whose message names the
variable, the value given (``(hidden)`` for secrets) and what is allowed, one
line per problem, e.g.::

    META_RETRIES='many' is invalid: expected an integer >= 0 (default 3)

Servers call ``parse_service_args`` so a bad value ends the process at start-up
(exit status 2, the message on stderr) before anything is opened.
"""

from __future__ import annotations

import argparse
import os
import typing
from contextvars import ContextVar
from typing import Any, Mapping

import annotated_types
from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

#: The environment ``from_env`` reads, visible to the settings source while the model is built.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("adfatigue_settings_environ", default=None)


class SettingsError(ValueError):
    """Settings a person must fix; each line names the variable, the value and what is allowed."""


def setting(default: Any, *, env: str, doc: str, secret: bool = False, allowed: str | None = None,
            **constraints: Any) -> Any:
    """A field read from environment variable ``env``.

    ``doc``: what it is, with its unit (the README's settings table shows it);
    ``secret``: never shown (repr, errors, the table's default column);
    ``allowed``: how to describe valid values when the type and ``constraints``
    (pydantic's ``gt``, ``ge``, ``lt``, ``le``...) do not say it well.
    """
    extra = {"env": env, "secret": secret}
    if allowed:
        extra["allowed"] = allowed
    return Field(default, description=doc, repr=not secret, json_schema_extra=extra, **constraints)


def env_name(field: FieldInfo) -> str | None:
    """The environment variable of a field declared with ``setting`` (None for others)."""
    extra = field.json_schema_extra
    return extra.get("env") if isinstance(extra, dict) else None


def is_secret(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return bool(isinstance(extra, dict) and extra.get("secret"))


class _EnvironmentSource(PydanticBaseSettingsSource):
    """Reads each field's own variable from the mapping given to ``from_env`` (nothing otherwise).

    Values are stripped; an empty one counts as unset. Variables no field declares are ignored.
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        super().__init__(settings_cls)
        self.environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        var = env_name(field)
        raw = self.environ.get(var) if var else None
        return (raw.strip() if isinstance(raw, str) else raw), field_name, False

    def __call__(self) -> dict[str, Any]:
        values = {}
        for name, field in self.settings_cls.model_fields.items():
            raw, _, _ = self.get_field_value(field, name)
            if raw not in (None, ""):
                values[name] = raw
        return values


class SettingsModel(BaseSettings):
    """Base of every settings model: frozen, unknown keywords refused, NaN/inf refused."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, validate_default=True)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(explain(type(self), exc)) from None

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        # keywords first (flags, tests), then the mapping of from_env; never os.environ implicitly,
        # so ``Model(x=1)`` means defaults plus x whatever the shell exports
        return init_settings, _EnvironmentSource(settings_cls, _ENVIRON.get() or {})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any):
        """Settings from ``env`` (default ``os.environ``), then ``overrides`` (None values ignored).

        Keywords that are not fields of this model are ignored too, so ``**vars(args)`` works.
        Raises SettingsError.
        """
        given = {k: v for k, v in overrides.items() if v is not None and k in cls.model_fields}
        token = _ENVIRON.set(os.environ if env is None else env)
        try:
            return cls(**given)
        finally:
            _ENVIRON.reset(token)

    def replace(self, **changes: Any):
        """A checked copy with ``changes`` applied."""
        return type(self)(**{**self.model_dump(), **changes})

    def is_set(self, name: str) -> bool:
        """Whether the setting ``name`` was given (its variable or a keyword), not left at its default."""
        return name in self.model_fields_set

    def require(self, name: str, hint: str) -> None:
        """Raise SettingsError when the setting ``name`` is empty: '<VAR> is not set: <hint>'."""
        if not getattr(self, name):
            field = type(self).model_fields[name]
            raise SettingsError(f"{env_name(field) or name} is not set: {hint}")


def describe_allowed(field: FieldInfo) -> str:
    """What a field accepts, in words: 'an integer >= 1 (default 200)'."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    text = extra.get("allowed") or _describe_type(field.annotation)
    bounds = []
    for rule in field.metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(rule, attr, None)
            if isinstance(rule, (annotated_types.Gt, annotated_types.Ge, annotated_types.Lt, annotated_types.Le,
                                 annotated_types.Interval)) and bound is not None:
                bounds.append(f"{sign} {bound}")
    if bounds:
        text += " " + " and ".join(bounds)
    default = field.default
    if default not in (None, "") and not is_secret(field):
        text += f" (default {default})"
    return text


def _describe_type(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if args and typing.get_origin(annotation) is not typing.Literal:
        return _describe_type(args[0])
    return {int: "an integer", float: "a number", bool: "true or false (1/0, yes/no, on/off)",
            str: "text"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


def explain(model: type[BaseSettings], error: ValidationError) -> str:
    """One line per problem of ``error``: variable, value, what is wrong and what is allowed."""
    lines = []
    for item in error.errors(include_url=False):
        name = item["loc"][0] if item["loc"] else None
        field = model.model_fields.get(name) if isinstance(name, str) else None
        message = item["msg"].removeprefix("Value error, ")
        if field is None:
            # a check across settings (the message names them) or an unknown keyword
            lines.append(f"unknown setting {name!r}" if item["type"] == "extra_forbidden" else message)
            continue
        var = env_name(field) or name
        if item["type"] == "missing":
            lines.append(f"{var} is not set: expected {describe_allowed(field)}")
            continue
        shown = "(hidden)" if is_secret(field) else repr(item["input"])
        problem = f"{message}; expected" if item["type"] in ("value_error", "setting") else "expected"
        lines.append(f"{var}={shown} is invalid: {problem} {describe_allowed(field)}")
    return "\n".join(lines)


def parse_service_args(parser: argparse.ArgumentParser, model: type[SettingsModel], argv: list[str] | None,
                       env: Mapping[str, str] | None = None) -> argparse.Namespace:
    """Parse flags, then build ``model`` from ``env`` with every flag whose ``dest`` is a field as an override.

    Returns the namespace with ``args.settings``; a bad setting exits with status 2 and the message
    (``parser.error``). Flags for settings should default to None so the environment shows through.
    """
    args = parser.parse_args(argv)
    try:
        args.settings = model.from_env(env, **vars(args))
    except SettingsError as exc:
        parser.error(str(exc))
    return args
