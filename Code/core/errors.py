"""The one exception type that reaches the user as a single line.

Every check on user input (files, flags, feature shapes, weight shapes) raises
``UserError`` with a message that names the file or flag and what is wrong.
``main.py`` prints it as ``error: <message>`` and exits with status 2; nothing
else in the project prints tracebacks for bad input.
"""


import unicodedata
from typing import Optional


class UserError(Exception):
    """Bad input that the user can fix; the message is shown as one line."""


class DiskFull(UserError):
    """A file could not be written for want of space (or a file-size limit); nothing was written under its name."""


class Diverged(UserError):
    """A fold's weights became NaN or infinite in training (a learning rate too large, float16 overflow): the fold
    was not saved, and its run's settings would diverge again."""


class InterruptedAfterWriting(KeyboardInterrupt):
    """Ctrl-C or SIGTERM that arrived while a set of files was renamed into place (core/atomic_file.one_commit),
    held back until the set was written: the command stops, its files are complete (its text names them)."""


class TrainingInterrupted(Exception):
    """Ctrl-C during training: the folds on disk are kept; its text (``main.py`` prints it, the API raises it) says
    how to continue.

    Args:
        runs: per run of the command that has yet to write its results: (its folder as the console shows it, its
            finished folds (from 0), its fold count, the exact command that continues it).
        later: a line on what else the command had yet to do (the seeds whose runs had not started), or "".
    """

    def __init__(self, runs: list, later: str = ""):
        super().__init__()
        self.runs, self.later = list(runs), later

    def __str__(self) -> str:
        lines = [f"{'and' if turn else 'interrupted'}: finished folds ({', '.join(str(i + 1) for i in done) or 'none'} "
                 f"of {k}) are saved in {folder}; continue with:\n  {command}"
                 for turn, (folder, done, k, command) in enumerate(self.runs)]
        return "\n".join(lines + ([self.later] if self.later else []))


def printable(text: str) -> str:
    """``text`` as the console shows it: every control or format character (a newline, an escape sequence's ESC, a
    right-to-left override), which only a file's name brings into a message, written as its escape (``\\x1b``),
    so that a file named with one can neither forge a line nor rewrite the screen."""
    return "".join(c.encode("unicode_escape").decode() if unicodedata.category(c) in ("Cc", "Cf") else c
                   for c in text)


def named_twice(values):
    """The first of ``values`` that an earlier one equals (a seed, a grid axis value, a class name given twice), or
    None: one command of the user's names each once."""
    return next((value for k, value in enumerate(values) if value in values[:k]), None)


def named_twice_in_any_case(names) -> Optional[tuple[str, str]]:
    """The first two of ``names`` that are one name whatever their case (``'Angry'`` and ``'angry'``: one class
    written two ways, which would train as two), or None."""
    folded = [name.casefold() for name in names]
    twice = named_twice(folded)
    return None if twice is None else tuple([name for name in names if name.casefold() == twice][:2])


def first_few(items, separator: str = ", ", count: int = 3) -> str:
    """The first ``count`` of ``items`` (texts) joined by ``separator``, and ``...`` where more follow: how one line
    names what it found many of."""
    items = list(items)
    return separator.join(items[:count] + (["..."] if len(items) > count else []))


def did_you_mean(value: str, choices) -> str:
    """' (did you mean X?)' for a near miss of one of ``choices`` (compared case-insensitively), or for a value of 3
    or more characters that begins exactly one of them (``DCNN`` for ``DCNN_BLSTMwA``, too short a part of it for a
    near miss), else ''."""
    import difflib
    word = str(value).upper()
    starts = [c for c in choices if len(word) >= 3 and c.upper().startswith(word) and c.upper() != word]
    if len(starts) == 1:
        return f" (did you mean {starts[0]}?)"
    close = difflib.get_close_matches(word, [c.upper() for c in choices], n=1, cutoff=0.6)
    if not close:
        return ""
    [match] = [c for c in choices if c.upper() == close[0]]
    return f" (did you mean {match}?)"


def named(setting: str, value, api: bool = False, quoted: bool = True) -> str:
    """How a message names a setting and its value: the command line's flag (``--data 'X'``, or ``--data X``
    unquoted) or, for the Python API, its argument (``data='X'``)."""
    if api:
        return f"{setting}={value!r}"
    return f"--{setting} {value!r}" if quoted else f"--{setting} {value}"


def interrupt_behind(exc: BaseException) -> bool:
    """Whether ``exc`` was raised for a Ctrl-C (or SIGTERM, which this program's handler turns into one) that struck
    while a library's C code was calling back into Python: TensorFlow, binding a tf.function's NumPy inputs, reports
    it as a TypeError ("... returned a result with an exception set"), the interrupt in its chain of causes; it
    ended a training in a traceback and exit status 1, the finished folds unsaid."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        # followed even where `from None` hides it: TensorFlow's error handler re-raises every error so
        # (tensorflow/python/util/traceback_utils.py), which clears the cause and leaves the context
        exc = exc.__cause__ or exc.__context__
    return False

