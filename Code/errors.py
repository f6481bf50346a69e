"""The one exception type that reaches the user as a single line.

Every check on user input (files, flags, feature shapes, weight shapes) raises
``UserError`` with a message that names the file or flag and what is wrong.
``main.py`` prints it as ``error: <message>`` and exits with status 2; nothing
else in the project prints tracebacks for bad input.
"""


class UserError(Exception):
    """Bad input that the user can fix; the message is shown as one line."""
