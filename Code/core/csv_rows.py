"""The one reader of the CSV files a user writes by hand or saves from a spreadsheet: an extraction manifest, a
prediction's list of files, a label map. UTF-8 with or without the byte-order mark that spreadsheet programs put
first (which would otherwise be part of the first column's name), lines that are empty or start with # skipped;
a file that cannot be read as such is one line naming it."""

from __future__ import annotations

import csv

from .errors import UserError


def csv_rows(path: str, named: str) -> list[tuple[int, list[str]]]:
    """(line number from 1, its cells stripped) of every line of ``path`` that is not empty or a # comment; a
    ``UserError`` that begins with ``named`` (the file, or the flag and the file) where it cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [(number, [cell.strip() for cell in row]) for number, row in enumerate(csv.reader(f), start=1)]
    except UnicodeDecodeError as exc:
        raise UserError(f"{named}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); save it as CSV UTF-8") \
            from None
    except (OSError, csv.Error) as exc:
        raise UserError(f"{named}: not a readable CSV file ({exc})") from None
    return [(number, row) for number, row in rows if any(row) and not row[0].startswith("#")]
