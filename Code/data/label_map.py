"""Which class of another corpus is which class of a run: the label map of a cross-corpus test.

By default a class of the other corpus ("theirs") maps onto the run's class ("ours") of the same name, compared
case-insensitively (RAVDESS ``angry`` is EMO-DB ``angry``); their classes without a namesake are dropped. A label
map file says it explicitly, for every class of theirs that is scored; a class it leaves out, or maps to nothing,
is dropped:

- TOML: ``calm = "neutral"`` (their class = our class), ``surprise = ""`` (dropped);
- CSV: one ``their class,our class`` per line (``surprise,`` drops it; lines starting with ``#`` are comments).

One file can map several corpora: a TOML table ``[RAVDE]`` (CSV lines ``RAVDE,calm,neutral``) holds the entries of
that corpus only, the entries outside any table those of every corpus. A cross-corpus test reads the entries for
every corpus and the other corpus' table; a run on several corpora (data/corpus_set.py) all of them.

Only utterances of a mapped class are scored. A map naming a class that neither corpus has, or a map (or the
names) under which no class is shared, is one clear line naming the file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from typing import Optional, Union

from ..core.csv_rows import csv_rows
from ..core.errors import UserError


@dataclass(frozen=True)
class LabelMap:
    """Their class -> our class for the mapped classes; what is left unmapped on either side; where it came from."""

    pairs: dict  # their class name -> our class name, in their class order
    dropped: list  # their classes that are not scored
    unmapped_ours: list  # our classes that no class of theirs maps onto
    source: str  # "class names" or the label map file

    def describe(self, ours: str, theirs: str) -> list[str]:
        """The printout's lines: the map, then the unmapped classes on both sides."""
        lines = [f"label map ({self.source}): {theirs} class -> {ours} class"]
        lines += [f"  {their} -> {our}" for their, our in self.pairs.items()]
        lines.append(f"  unmapped {theirs} classes (their utterances are not scored): "
                     f"{', '.join(self.dropped) or 'none'}")
        lines.append(f"  unmapped {ours} classes (never true, still predictable): "
                     f"{', '.join(self.unmapped_ours) or 'none'}")
        return lines

    def as_dict(self) -> dict:
        return {"pairs": dict(self.pairs), "dropped": list(self.dropped), "unmapped_ours": list(self.unmapped_ours),
                "source": self.source}


def _entries(table: dict, flag: str, path: str, where: str = "") -> dict[str, Optional[str]]:
    """Their class -> our class (None: dropped) of one TOML table; a value that is no class name is refused, and so
    is a class named twice (names compare case-insensitively: ``Boredom`` and ``boredom`` are one)."""
    bad = [key for key, value in table.items() if not isinstance(value, (str, bool)) or value is True]
    if bad:
        raise UserError(f"{flag} {path}: {where}{bad[0]!r} must map to a class name (a string) or \"\" to drop it")
    _check_once([str(key) for key in table], flag, path, where)
    return {str(key): (value or None) for key, value in table.items()}


def _check_once(names: list, flag: str, path: str, where: str = "") -> None:
    """One line for a class the map names twice: the later entry won without a word."""
    seen = {}
    for name in names:
        if name.strip().lower() in seen:
            raise UserError(f"{flag} {path}: {where}{name!r} is mapped twice (also as {seen[name.strip().lower()]!r}); "
                            "keep one entry")
        seen[name.strip().lower()] = name


def read_map_file(path: str, flag: str) -> dict[Optional[str], dict[str, Optional[str]]]:
    """A label map file as {corpus or None: {their class: our class or None (dropped)}}: None holds the entries
    for every corpus (``calm = "neutral"``, CSV ``calm,neutral``), a corpus key those of its own TOML table
    (``[RAVDE]`` then ``calm = "neutral"``) or CSV lines ``RAVDE,calm,neutral``. Errors name ``flag`` and ``path``."""
    if not os.path.isfile(path):
        raise UserError(f"{flag} {path}: no such file")
    try:
        if path.lower().endswith(".toml"):
            with open(path, "rb") as f:
                table = tomllib.load(f)
            tables = {key: value for key, value in table.items() if isinstance(value, dict)}
            entries = {None: _entries({k: v for k, v in table.items() if k not in tables}, flag, path)}
            for key, values in tables.items():
                entries[str(key)] = _entries(values, flag, path, f"[{key}] ")
            return _not_empty(entries, flag, path)
        if path.lower().endswith(".csv"):
            rows = [row for _, row in csv_rows(path, f"{flag} {path}") if row[0]]
            bad = [row for row in rows if len(row) > 3]
            if bad:
                raise UserError(f"{flag} {path}: line {','.join(bad[0])!r} has more than three fields "
                                "(their class,our class or corpus,their class,our class)")
            lines: dict = {None: []}  # corpus or None: its (their class, our class) lines
            for row in rows:
                corpus, their, our = row if len(row) == 3 else (None, row[0], row[1] if len(row) > 1 else "")
                lines.setdefault(corpus, []).append((their, our or None))
            for corpus, pairs in lines.items():
                _check_once([their for their, _ in pairs], flag, path, f"[{corpus}] " if corpus else "")
            return _not_empty({corpus: dict(pairs) for corpus, pairs in lines.items()}, flag, path)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{flag} {path}: cannot be read ({exc})") from None
    except RecursionError:  # tables nested tens of thousands deep
        raise UserError(f"{flag} {path}: cannot be read (nested too deep to be a label map)") from None
    raise UserError(f"{flag} {path}: expected a .toml or .csv file (their class = our class)")


def _not_empty(entries: dict, flag: str, path: str) -> dict:
    """The entries of a map that has any; one line for an empty file, which matched the classes by name while the
    output said they were matched by the file."""
    if not any(entries.values()):
        raise UserError(f"{flag} {path}: holds no entries (their class = our class); leave the flag out to match "
                        "the classes by name")
    return entries


def lookup(name: str, classes: list) -> Optional[str]:
    """The class of ``classes`` called ``name``, compared case-insensitively; None if there is none."""
    return next((c for c in classes if c.lower() == name.strip().lower()), None)


# how the API names features given as arrays without data= (Run.evaluate((x, y, classes))): no corpus key
GIVEN_FEATURES = "the given features"


def build_label_map(ours: list, theirs: list, given: Union[str, dict, None], our_name: str,
                    their_name: str, api: bool = False) -> LabelMap:
    """The map of ``theirs`` (the other corpus' classes) onto ``ours`` (the run's): by name when ``given`` is
    None, else from a label map file (path) or a dict {their class: our class or None}. Errors name the flags
    (``--label_map``, ``--data``), or with ``api`` the arguments of ``Run.evaluate`` (``label_map=``, ``data=``)."""
    map_name, data_name = ("label_map=", "data=") if api else ("--label_map", "--data")
    if given is None:
        pairs = {their: lookup(their, ours) for their in theirs}
        source = "class names, case-insensitive"
        where = their_name if their_name == GIVEN_FEATURES else f"{data_name} {their_name}"  # no data= was given
    elif not isinstance(given, (str, os.PathLike, dict)):  # only the API can give another type
        raise UserError(f"label_map={given!r}: give a label map file (TOML or CSV), a dict {{their class: our class, "
                        "or None to drop it}, or None to match the classes by name")
    else:
        # the entries for every corpus, then those of their own table (or the API's dict, for theirs alone); an entry
        # for every corpus may name a class of the run's that theirs lacks (the file serves other corpora too)
        shared = {}
        if isinstance(given, (str, os.PathLike)):
            tables = read_map_file(os.fspath(given), map_name)
            shared, entries = tables[None], {**tables[None], **tables.get(their_name, {})}
        else:
            entries = dict(given)
        source = os.fspath(given) if isinstance(given, (str, os.PathLike)) else "label_map argument"
        where = f"{map_name} {source}" if isinstance(given, (str, os.PathLike)) else "label_map (the dict given)"
        pairs = dict.fromkeys(theirs)
        for key, value in entries.items():
            their, one_of_ours = lookup(str(key), theirs), lookup(str(key), ours) is not None
            if their is None and key in shared and shared[key] == value and one_of_ours:
                continue  # boredom = "neutral" for a corpus without boredom: the entry serves another corpus
            if their is None:
                neither = f" nor of the run trained on {our_name}" if key in shared and not one_of_ours else ""
                raise UserError(f"{where}: {key!r} is not a class of {their_name} ({', '.join(theirs)}){neither}")
            our = None if value in (None, "", False) else lookup(str(value), ours)
            if value not in (None, "", False) and our is None:
                raise UserError(f"{where}: maps {key!r} to {value!r}, which is not a class of the run trained on "
                                f"{our_name} ({', '.join(ours)})")
            pairs[their] = our
    mapped = {their: our for their, our in pairs.items() if our is not None}
    if not mapped:
        raise UserError(f"{where}: no class of {their_name} ({', '.join(theirs)}) maps onto a class of the run "
                        f"trained on {our_name} ({', '.join(ours)})"
                        + (f"; give {map_name} FILE (their class = our class)" if given is None else ""))
    return LabelMap(mapped, [t for t in theirs if t not in mapped], [o for o in ours if o not in mapped.values()],
                    source)
