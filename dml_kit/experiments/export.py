"""A report's tables as files: CSV (for a spreadsheet or a plotting script), Markdown (for a
README, an issue or a notebook cell) and LaTeX (for a paper or slides).

Every format carries the same numbers as :meth:`~dml_kit.experiments.report.Report.to_text`:

* **the accuracy table**: per condition ``(k, n)`` and method, the mean query accuracy with
  its 95% interval and the number of replications (CSV: one tidy row per cell with
  ``mean``, ``low``, ``high``, ``replications``, ``winner``; Markdown and LaTeX: one row per
  condition, ``"90.6 [88.1, 92.9]"`` per method, the condition's best in bold);
* **the claims**: per pooled comparison of each of the paper's conclusions, its mean
  difference in accuracy points with interval and the verdict (CSV: a second file,
  ``<name>_claims.csv``).

The kit writes them itself (no ``tabulate``/``jinja2`` needed); files are written
atomically (:func:`dml_kit.data.paths.atomic_write`). ``python -m dml_kit report --format``
uses these functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from dml_kit.data.paths import atomic_write

if TYPE_CHECKING:
    from dml_kit.experiments.report import Report

#: the formats :func:`export_report` writes, by file suffix
FORMATS = {".csv": "csv", ".md": "markdown", ".markdown": "markdown", ".tex": "latex"}
#: LaTeX's special characters and their escaped forms
_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
          "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
          "^": r"\textasciicircum{}"}


def accuracy_rows(report: Report) -> pd.DataFrame:
    """The accuracy table as tidy rows: ``dataset, k, n, method, mean, low, high,
    replications, winner`` (accuracies as fractions; ``winner`` is True for the
    condition's best mean)."""
    rows = []
    for (k, n), acc in report.accuracy.iterrows():
        for method, mean in acc.items():
            if pd.isna(mean):
                continue
            rows.append({"dataset": report.dataset, "k": int(k), "n": int(n),
                         "method": method, "mean": float(mean),
                         "low": float(report.low.loc[(k, n), method]),
                         "high": float(report.high.loc[(k, n), method]),
                         "replications": int(report.replications.loc[(k, n), method]),
                         "winner": report.winner.loc[(k, n)] == method})
    return pd.DataFrame(rows)


def claim_rows(report: Report) -> pd.DataFrame:
    """One row per pooled comparison of each conclusion: ``conclusion, comparison,
    conditions, replications, mean, low, high, verdict, conclusion_verdict`` (differences
    as fractions of accuracy)."""
    rows = []
    for claim in report.claims:
        for _, c in claim.comparisons.iterrows():
            rows.append({"conclusion": claim.number, "comparison": c["comparison"],
                         "conditions": int(c["conditions"]), "replications": int(c["n"]),
                         "mean": float(c["mean"]), "low": float(c["low"]),
                         "high": float(c["high"]), "verdict": c["verdict"],
                         "conclusion_verdict": claim.verdict})
    return pd.DataFrame(rows, columns=["conclusion", "comparison", "conditions",
                                       "replications", "mean", "low", "high", "verdict",
                                       "conclusion_verdict"])


def _cell(mean: float, low: float, high: float) -> str:
    """An accuracy in percent with its interval, shown clipped to [0, 100] (the raw
    t-interval of 2-3 replications can reach past it; the report's verdicts use it
    unclipped, as :class:`dml_kit.stats.Estimate` does)."""
    if pd.isna(low):
        return f"{100 * mean:.1f}"
    return f"{100 * mean:.1f} [{100 * max(low, 0.0):.1f}, {100 * min(high, 1.0):.1f}]"


def _wide_text(report: Report, bold: tuple[str, str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the condition x method table, the winner wrapped in ``bold``."""
    methods = list(report.accuracy.columns)
    rows = []
    for (k, n), acc in report.accuracy.iterrows():
        cells = [str(int(k)), str(int(n))]
        for m in methods:
            if pd.isna(acc[m]):
                cells.append("-")
                continue
            text = _cell(acc[m], report.low.loc[(k, n), m], report.high.loc[(k, n), m])
            cells.append(f"{bold[0]}{text}{bold[1]}" if report.winner.loc[(k, n)] == m
                         else text)
        rows.append(cells)
    return ["k", "n", *methods], rows


def _claim_line(row: pd.Series) -> str:
    diff = (f"{100 * row['mean']:+.1f} [{100 * row['low']:+.1f}, {100 * row['high']:+.1f}]"
            if pd.notna(row["low"]) else f"{100 * row['mean']:+.1f}")
    return (f"{row['comparison']}: {diff} points over {row['conditions']} conditions "
            f"(n = {row['replications']}): {row['verdict']}")


def to_markdown(report: Report) -> str:
    """The report as Markdown: the accuracy table (percent, 95% intervals, the best per
    condition in bold) and each conclusion with its comparisons and verdict."""
    header, rows = _wide_text(report, ("**", "**"))
    lines = [f"### {report.dataset}: mean query accuracy (%) with 95% intervals", "",
             "| " + " | ".join(header) + " |",
             "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    claims = claim_rows(report)
    for claim in report.claims:
        lines += ["", f"**Conclusion {claim.number}** ({claim.verdict or 'not checked'}): "
                      f"*{claim.quote}*", ""]
        lines += [f"- {_claim_line(r)}" for _, r in
                  claims[claims["conclusion"] == claim.number].iterrows()]
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (``_`` -> ``\\_``, ...)."""
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def to_latex(report: Report) -> str:
    """The accuracy table as a LaTeX ``table`` (``booktabs`` rules; the best per condition
    in bold) followed by the conclusions as an ``itemize`` list."""
    header, rows = _wide_text(report, ("\x00", "\x01"))

    def cell(text: str) -> str:
        return latex_escape(text).replace("\x00", r"\textbf{").replace("\x01", "}")

    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             r"\begin{tabular}{rr" + "r" * (len(header) - 2) + "}", r"\toprule",
             " & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(cell(c) for c in r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}",
              r"\caption{" + latex_escape(f"{report.dataset}: mean query accuracy (%) with 95% "
                                          "intervals over replications") + "}",
              r"\end{table}"]
    claims = claim_rows(report)
    if not claims.empty:
        lines += ["", r"\begin{itemize}"]
        lines += [r"\item " + latex_escape(f"Conclusion {r['conclusion']}, {_claim_line(r)}")
                  for _, r in claims.iterrows()]
        lines.append(r"\end{itemize}")
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path) as handle:
        handle.write(text.encode("utf-8"))


def export_report(report: Report, path: str | os.PathLike[str],
                  format: str | None = None) -> list[Path]:
    """Write ``report`` to ``path`` as CSV, Markdown or LaTeX (``format``: ``"csv"``,
    ``"markdown"``, ``"latex"``; default: from the suffix, ``.csv``/``.md``/``.tex``).

    CSV writes two files: ``path`` (:func:`accuracy_rows`) and ``<stem>_claims.csv``
    (:func:`claim_rows`). Returns the paths written. An unknown suffix or format raises
    ``ValueError`` naming it and the choices."""
    path = Path(path).expanduser()
    if format is None:
        if path.suffix.lower() not in FORMATS:
            raise ValueError(f"path={str(path)!r}: cannot tell the format from the suffix "
                             f"{path.suffix!r}; use one of {', '.join(FORMATS)} or pass "
                             "format='csv'|'markdown'|'latex'")
        format = FORMATS[path.suffix.lower()]
    if format not in set(FORMATS.values()):
        raise ValueError(f"unknown format {format!r}; choose one of: csv, markdown, latex")
    if path.is_dir():
        raise ValueError(f"path={str(path)!r} is a folder: give a file name")
    if format == "csv":
        claims = path.with_name(f"{path.stem}_claims.csv")
        _write_text(path, accuracy_rows(report).to_csv(index=False))
        _write_text(claims, claim_rows(report).to_csv(index=False))
        return [path, claims]
    _write_text(path, to_markdown(report) if format == "markdown" else to_latex(report))
    return [path]
