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
