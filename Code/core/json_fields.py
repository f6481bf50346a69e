"""The one check of the fields of the program's own JSON records (a run's run.json, a results record): which field
is missing or of another type, in the words of JSON, for the one-line "damaged ... file" errors."""

from __future__ import annotations

NUMBER = (int, float)
_NAMES = {str: "string", dict: "object", list: "array", int: "integer", NUMBER: "number"}
_FOUND = {str: "a string", dict: "an object", list: "an array", int: "an integer", float: "a number",
          bool: "true or false"}


def wrong_field(table, fields: dict, where: str = "") -> str | None:
    """The first of ``fields`` ({name: type}) missing from ``table`` or of another type, as ``'<where><name>' must be
    a JSON <type>, it is <what>``; None where each is right. true and false are never a number."""
    for name, kind in fields.items():
        value = table.get(name) if isinstance(table, dict) else None
        if value is None or isinstance(value, bool) or not isinstance(value, kind):
            found = "missing" if value is None else _FOUND.get(type(value), type(value).__name__)
            return f"'{where}{name}' must be a JSON {_NAMES[kind]}, it is {found}"
    return None


def wrong_predictions(fold: dict, classes: int, where: str = "") -> str | None:
    """A fold's ``y_true`` and ``y_pred`` (checked as arrays first, ``wrong_field``) must hold one class index, 0
    to ``classes`` - 1, per each of its ``n`` test utterances: what the report pools and a run's results copy."""
    for key in ("y_true", "y_pred"):
        values = fold[key]
        if len(values) != fold["n"] or not all(type(v) is int and 0 <= v < classes for v in values):
            return f"'{where}{key}' must hold its {fold['n']} utterances' class indices, 0 to {classes - 1}"
    return None
