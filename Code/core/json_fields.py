"""The one check of the fields of the program's own JSON records (a run's run.json, a results record): which field
is missing or of another type, in the words of JSON, for the one-line "damaged ... file" errors."""

from __future__ import annotations

NUMBER = (int, float)
# JSON's word for each Python type a record holds; NUMBER is an int or a float
_NAMES = {str: "string", dict: "object", list: "array", int: "integer", float: "number", NUMBER: "number"}


def _article(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def expected(kind) -> str:
    """What a field of ``kind`` must be, in JSON's words: ``a JSON integer``; ``true or false`` for a bool."""
    return "true or false" if kind is bool else f"a JSON {_NAMES[kind]}"


def found(value) -> str:
    """What a field holds, in JSON's words: ``missing`` (null too), ``true or false``, ``an array`` ..."""
    if value is None or isinstance(value, bool):
        return "missing" if value is None else "true or false"
    return _article(_NAMES[type(value)]) if type(value) in _NAMES else type(value).__name__


def wrong_field(table, fields: dict, where: str = "") -> str | None:
    """The first of ``fields`` ({name: type}) missing from ``table`` or of another type, as ``'<where><name>' must be
    a JSON <type>, it is <what>``; None where each is right. true and false are never a number."""
    for name, kind in fields.items():
        value = table.get(name) if isinstance(table, dict) else None
        if value is None or isinstance(value, bool) or not isinstance(value, kind):
            return f"'{where}{name}' must be {expected(kind)}, it is {found(value)}"
    return None


def wrong_predictions(fold: dict, classes: int, where: str = "") -> str | None:
    """A fold's ``y_true`` and ``y_pred`` (checked as arrays first, ``wrong_field``) must hold one class index, 0
    to ``classes`` - 1, per each of its ``n`` test utterances: what the report pools and a run's results copy."""
    for key in ("y_true", "y_pred"):
        values = fold[key]
        if len(values) != fold["n"] or not all(type(v) is int and 0 <= v < classes for v in values):
            return f"'{where}{key}' must hold its {fold['n']} utterances' class indices, 0 to {classes - 1}"
    return None
