"""Field helpers shared by every frozen configuration dataclass (no physics here).

:func:`param` declares a field with its unit, meaning and the source of its default
(read back by the generated parameter tables); :func:`check_field_names` rejects names
that are not fields; :class:`ConfigFields` gives a config ``replace`` and ``to_dict``.
The wireless, learning, scenario and agent configs all build on this module, so none of
them depends on another only for these helpers. Value checks (ranges, choices) live in
:mod:`qfl_gym.validation`.

An unknown keyword argument is a :class:`TypeError` worded as Python words its own
(``f() got an unexpected keyword argument 'x'``), followed by the valid names: tools that
probe optional constructor keywords (TorchRL passes ``frameskip``) recognise it and drop
the keyword. A bad value for a known field stays a :class:`ValueError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import field
from typing import Any, Self


def param(default: Any, unit: str, doc: str, source: str = "") -> Any:
    """A dataclass field carrying its unit, meaning and the source of its default.

    Parameters
    ----------
    default : Any
        The field's default value (immutable: tuples, not lists).
    unit : str
        Unit of the value ("dBm", "Hz", "s", "bit", "-" for dimensionless).
    doc : str
        One-line meaning of the field.
    source : str, optional
        Where the default comes from (standard, paper), "" when it is a free choice.
    """
    return field(default=default, metadata={"unit": unit, "doc": doc, "source": source})


def flat_fields(cfg: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Dotted field name -> ``(value, dataclasses.Field)`` of a (nested) config dataclass."""
    out: dict[str, tuple[Any, Any]] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flat_fields(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = (value, f)
    return out


def part(factory: Callable[[], Any], doc: str) -> Any:
    """A dataclass field holding a whole sub-configuration (made by ``factory``)."""
    return field(default_factory=factory, metadata={"unit": "-", "doc": doc, "source": ""})


def preset(scenario: Any, presets: Mapping[str, Any], cls: type) -> Any:
    """``scenario`` itself if it is a ``cls``, else the preset it names.

    Raises
    ------
    ValueError
        For a name that is not a preset (the message lists the presets).
    """
    if isinstance(scenario, cls):
        return scenario
    base = presets.get(scenario) if isinstance(scenario, str) else None
    if base is None:
        raise ValueError(f"unknown scenario {scenario!r}; valid: {', '.join(map(repr, presets))}")
    return base


class UnexpectedKeywordError(TypeError):
    """An unknown keyword argument, worded like Python's own :class:`TypeError`.

    Constructed like any exception from its message (Gymnasium re-raises a constructor's
    ``TypeError`` as ``type(e)(message)``, and pickling does the same), so the names are
    in the message only; :func:`check_keywords` builds it.
    """


def unexpected_keyword_message(caller: str, unexpected: Sequence[str], valid: Iterable[str]) -> str:
    """``"<caller>() got an unexpected keyword argument 'x'; valid: a, b"``.

    Parameters
    ----------
    caller : str
        The function that received the keywords, as Python names it (``"f"``,
        ``"Cls.replace"``).
    unexpected : sequence of str
        The unknown names, in the order given (at least one).
    valid : iterable of str
        Every name the caller accepts.
    """
    first, *others = unexpected
    message = f"{caller}() got an unexpected keyword argument {first!r}"
    if others:
        message += f" (also unexpected: {', '.join(map(repr, others))})"
    return f"{message}; valid: {', '.join(valid)}"


def check_keywords(caller: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """Raise :class:`UnexpectedKeywordError` if a name of ``given`` is not in ``valid``.

    Parameters
    ----------
    caller : str
        Name of the function receiving the keywords, used in the message.
    given : iterable of str
        The keyword names received (order kept in the message).
    valid : iterable of str
        The accepted names, listed in the message.
    """
    valid = tuple(valid)
    accepted = set(valid)
    unexpected = [name for name in given if name not in accepted]
    if unexpected:
        raise UnexpectedKeywordError(unexpected_keyword_message(caller, unexpected, valid))


def field_names(cls: type) -> tuple[str, ...]:
    """Names of the fields of dataclass ``cls``, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls))


def check_field_names(cls: type, changes: Mapping[str, Any], caller: str | None = None) -> None:
    """Raise :class:`UnexpectedKeywordError` for keys of ``changes`` not fields of ``cls``.

    Parameters
    ----------
    cls : type
        A dataclass.
    changes : mapping
        Field name -> new value.
    caller : str, optional
        Function named in the message; default ``"<cls name>.replace"``.
    """
    check_keywords(caller or f"{cls.__name__}.replace", changes, field_names(cls))


class ConfigFields:
    """``replace`` and ``to_dict`` for a frozen, validated configuration dataclass.

    A subclass that must adjust related fields when one changes (e.g. an explicit list
    that a count override should clear) overrides :meth:`_related_changes`.
    """

    def replace(self, **changes: Any) -> Self:
        """A validated copy with ``changes`` applied; an unknown name lists the valid ones.

        Raises
        ------
        TypeError
            A name is not a field (:class:`UnexpectedKeywordError`).
        ValueError
            A value is out of range for its field.
        """
        check_field_names(type(self), changes)
        return dataclasses.replace(self, **self._related_changes(dict(changes)))  # type: ignore[type-var]

    def _related_changes(self, changes: dict[str, Any]) -> dict[str, Any]:
        """``changes`` plus the fields they imply (none by default)."""
        return changes

    def to_dict(self) -> dict[str, Any]:
        """Plain field values (for reports and JSON)."""
        return {name: getattr(self, name) for name in field_names(type(self))}
