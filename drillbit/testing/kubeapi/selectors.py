"""Label and field selectors, as the Kubernetes API reads them.

Label selectors in their string form (``app=api,tier!=db,zone in (a,b),env notin (x),canary,!legacy``;
``==`` is ``=``) and their object form (``matchLabels`` and ``matchExpressions`` with ``In``, ``NotIn``,
``Exists``, ``DoesNotExist``). Field selectors are ``path=value``, ``path==value`` or ``path!=value`` over
any dotted path (``metadata.name``, ``status.phase``, ``spec.nodeName``, ``spec.unschedulable``); a path
absent from the object reads as ``""`` and booleans as ``true``/``false``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FieldSelector", "LabelSelector", "Query", "Requirement", "SelectorError"]

_KEY = r"[A-Za-z0-9][A-Za-z0-9._/-]*"
_VALUE = r"[A-Za-z0-9._-]*"
_SET_RE = re.compile(rf"^(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EQ_RE = re.compile(rf"^(?P<key>{_KEY})\s*(?P<op>==|!=|=)\s*(?P<value>{_VALUE})$")
_EXISTS_RE = re.compile(rf"^(?P<neg>!?)\s*(?P<key>{_KEY})$")
_FIELD_RE = re.compile(r"^(?P<path>[A-Za-z0-9._-]+)\s*(?P<op>==|!=|=)\s*(?P<value>[^,]*)$")


class SelectorError(ValueError):
    """A selector the API would refuse (400 Bad Request)."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "in" | "notin" | "exists" | "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values  # notin


def _split_top_level(text: str) -> list[str]:
    """Split on the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()
    selects_nothing: bool = False  # a null selector where one is required (a PDB's) selects no pod

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        if not text or not text.strip():
            return cls()
        reqs: list[Requirement] = []
        for part in _split_top_level(text):
            if m := _SET_RE.match(part):
                values = frozenset(v.strip() for v in m["values"].split(",") if v.strip())
                reqs.append(Requirement(m["key"], m["op"], values))
            elif m := _EQ_RE.match(part):
                reqs.append(Requirement(m["key"], "notin" if m["op"] == "!=" else "in", frozenset({m["value"]})))
            elif m := _EXISTS_RE.match(part):
                reqs.append(Requirement(m["key"], "!exists" if m["neg"] else "exists"))
            else:
                raise SelectorError(f"unable to parse requirement: {part!r}")
        return cls(tuple(reqs))

    @classmethod
    def from_dict(cls, sel: Mapping[str, Any] | None) -> LabelSelector:
        """The object form (``metav1.LabelSelector``); None selects nothing, ``{}`` everything."""
        if sel is None:
            return cls(selects_nothing=True)
        reqs = [Requirement(k, "in", frozenset({str(v)})) for k, v in (sel.get("matchLabels") or {}).items()]
        ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
        for expr in sel.get("matchExpressions") or []:
            if expr.get("operator") not in ops:
                raise SelectorError(f"unsupported operator: {expr.get('operator')!r}")
            reqs.append(Requirement(str(expr["key"]), ops[expr["operator"]], frozenset(expr.get("values") or ())))
        return cls(tuple(reqs))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.selects_nothing:
            return False
        return all(r.matches(labels or {}) for r in self.requirements)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[tuple[str, bool, str], ...] = ()  # (path, equal, value)

    @classmethod
    def parse(cls, text: str | None) -> FieldSelector:
        if not text or not text.strip():
            return cls()
        terms = []
        for part in text.split(","):
            m = _FIELD_RE.match(part.strip())
            if not m:
                raise SelectorError(f"invalid field selector: {part!r}")
            terms.append((m["path"], m["op"] != "!=", m["value"].strip()))
        return cls(tuple(terms))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all((_field_value(obj, path) == value) == equal for path, equal, value in self.terms)


@dataclass(frozen=True)
class Query:
    """Which objects a list or a watch sees: a namespace (None: all), a label and a field selector."""

    namespace: str | None = None
    labels: LabelSelector = LabelSelector()
    fields: FieldSelector = FieldSelector()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return self.labels.matches(meta.get("labels")) and self.fields.matches(obj)
