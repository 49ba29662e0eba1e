"""The three patch formats of the Kubernetes API, for plain JSON objects.

* ``application/merge-patch+json``: RFC 7386 (``null`` removes a key, lists are replaced).
* ``application/strategic-merge-patch+json``: a merge patch whose lists of objects are merged by
  their key (``name``, else ``type``, ``containerPort``, ``port``) when every item has it, with
  ``{"$patch": "delete", <key>: ...}`` removing an item. An approximation of Kubernetes' schema-driven
  merge keys that is exact for containers, env, volumes, ports and conditions.
* ``application/json-patch+json``: RFC 6902 (add, remove, replace, move, copy, test).
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["JSON_PATCH", "MERGE_PATCH", "STRATEGIC_MERGE_PATCH", "PatchError", "apply_patch"]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
_MERGE_KEYS = ("name", "type", "containerPort", "port")


class PatchError(ValueError):
    """A patch that cannot apply (422 Unprocessable Entity) or a format not served (415)."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.code = code


def apply_patch(target: dict[str, Any], patch: Any, content_type: str) -> dict[str, Any]:
    """A new object: ``target`` (left untouched) with ``patch`` applied."""
    media = content_type.split(";")[0].strip().lower()
    if media == JSON_PATCH:
        if not isinstance(patch, list):
            raise PatchError("a JSON patch is a list of operations")
        return _json_patch(copy.deepcopy(target), patch)
    if media in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
        if not isinstance(patch, dict):
            raise PatchError("a merge patch is an object")
        result = _merge(target, patch, strategic=media == STRATEGIC_MERGE_PATCH)
        assert isinstance(result, dict)
        return result
    raise PatchError(f"the body of the request was in an unknown format - accepted media types include: "
                     f"{JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_MERGE_PATCH}", code=415)  # fmt: skip


def _merge(target: Any, patch: Any, *, strategic: bool) -> Any:
    if not isinstance(patch, dict):
        if strategic and isinstance(patch, list) and isinstance(target, list):
            return _merge_list(target, patch)
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if strategic and key.startswith("$"):
            continue  # directives ($retainKeys, $setElementOrder/...) are not modelled
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value, strategic=strategic)
    return result


def _merge_key(items: list[Any]) -> str | None:
    for key in _MERGE_KEYS:
        if items and all(isinstance(i, dict) and key in i for i in items):
            return key
    return None


def _merge_list(target: list[Any], patch: list[Any]) -> list[Any]:
    key = _merge_key(patch)
    if key is None or _merge_key(target) != key:
        return copy.deepcopy(patch)
    result = copy.deepcopy(target)
    for item in patch:
        at = next((i for i, t in enumerate(result) if t[key] == item[key]), None)
        if item.get("$patch") == "delete":
            if at is not None:
                del result[at]
        elif at is None:
            result.append(copy.deepcopy(item))
        else:
            result[at] = _merge(result[at], item, strategic=True)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> Any:
    for part in parts[:-1]:
        doc = _child(doc, part)
    return doc


def _child(doc: Any, part: str) -> Any:
    try:
        return doc[int(part)] if isinstance(doc, list) else doc[part]
    except (KeyError, IndexError, ValueError, TypeError):
        raise PatchError(f"path element {part!r} not found") from None


def _index(container: list[Any], part: str, *, insert: bool) -> int:
    if insert and part == "-":
        return len(container)
    if not part.isdigit() or int(part) > len(container) - (0 if insert else 1):
        raise PatchError(f"invalid list index {part!r}")
    return int(part)


def _remove(doc: Any, parts: list[str]) -> Any:
    parent, last = _parent(doc, parts), parts[-1]
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, insert=False))
    if not isinstance(parent, dict) or last not in parent:
        raise PatchError(f"path element {last!r} not found")
    return parent.pop(last)


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent, last = _parent(doc, parts), parts[-1]
    if isinstance(parent, list):
        parent.insert(_index(parent, last, insert=True), value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise PatchError(f"cannot add below a scalar at {last!r}")
    return doc


def _json_patch(doc: Any, ops: list[Any]) -> Any:
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid operation: {op!r}")
        kind, parts = op["op"], _pointer(op["path"])
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"{kind} needs a value")
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(doc, parts)
        elif kind == "replace":
            if parts:
                _remove(doc, parts)
            doc = _add(doc, parts, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            source = _pointer(op.get("from", ""))
            value = _remove(doc, source) if kind == "move" else copy.deepcopy(_get(doc, source))
            doc = _add(doc, parts, value)
        elif kind == "test":
            if _get(doc, parts) != op["value"]:
                raise PatchError(f"test failed at {op['path']!r}")
        else:
            raise PatchError(f"unknown operation {kind!r}")
    if not isinstance(doc, dict):
        raise PatchError("the patched document is not an object")
    return doc


def _get(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        doc = _child(doc, part)
    return doc
