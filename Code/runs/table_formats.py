"""A report's tables as text: Markdown (cells escaped), CSV (cells safe in a spreadsheet) and LaTeX (characters
LaTeX reads as commands escaped)."""

from __future__ import annotations

import pandas as pd

from ..core.atomic_file import spreadsheet_safe


def to_markdown(table: pd.DataFrame) -> str:
    def cell(value) -> str:  # a | split the row, and HTML in a name ran where the Markdown was rendered
        return (str(value).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
                .replace("\n", " ").replace("\r", " "))
    lines = ["| " + " | ".join(map(cell, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def to_csv(table: pd.DataFrame) -> str:
    """``table`` as CSV, every cell ``spreadsheet_safe``."""
    return table.map(spreadsheet_safe).rename(columns=spreadsheet_safe).to_csv(index=False)


# every character LaTeX reads as a command (under the default OT1 encoding < and > print as ¡ and ¿), in one pass
_LATEX = str.maketrans({"\\": "\\textbackslash{}", "{": "\\{", "}": "\\}", "$": "\\$", "&": "\\&", "#": "\\#",
                        "%": "\\%", "_": "\\_", "~": "\\textasciitilde{}", "^": "\\textasciicircum{}",
                        "<": "\\textless{}", ">": "\\textgreater{}", "±": "$\\pm$"})


def to_latex(table: pd.DataFrame, caption: str, label: str = "tab:ser-results") -> str:
    def escape(value) -> str:  # Markdown's `code` (in the notes) as \texttt, the rest escaped
        parts = str(value).split("`")
        if len(parts) % 2 == 0:  # a last backtick without its pair opens no code span
            parts[-2:] = ["'".join(parts[-2:])]
        return "".join(part.translate(_LATEX) if i % 2 == 0 else f"\\texttt{{{part.translate(_LATEX)}}}"
                       for i, part in enumerate(parts))
    lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{escape(caption)}}}", f"\\label{{{label}}}",
             "\\begin{tabular}{" + "l" * len(table.columns) + "}", "\\hline",
             " & ".join(escape(c) for c in table.columns) + " \\\\", "\\hline"]
    lines += [" & ".join(escape(v) for v in row) + " \\\\" for row in table.itertuples(index=False)]
    lines += ["\\hline", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)
