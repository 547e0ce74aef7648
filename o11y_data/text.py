"""Text for people: the one clip of hostile or long values, and the one aligned text table.

A foundation of the package (no other part imported): alerts, the CLI, the SQL console and the UI
all shorten and tabulate text the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

ELLIPSIS = "…"


def clip(
    value: object, n: int | None = 40, *, keep_end: bool = False, one_line: bool = True
) -> str:
    """``value`` as text of at most ``n`` characters (``None``: no limit), ending in ``…`` when cut.

    ``one_line`` folds every run of whitespace (line breaks too) into one space, so a value from
    outside cannot break the line it is quoted in; ``keep_end`` cuts the middle instead of the end,
    so the start and the end both stay readable (a DID, a path)."""
    text = " ".join(str(value).split()) if one_line else str(value)
    if n is None or len(text) <= n:
        return text
    if keep_end:
        tail = max(n // 3, 1)
        return text[: n - tail - 1] + ELLIPSIS + text[-tail:]
    return text[: n - 1] + ELLIPSIS


def aligned_table(
    names: Sequence[str], rows: Sequence[Sequence[str]], *, align_right: Collection[int] = ()
) -> str:
    """An aligned plain-text table: the header, a rule of dashes, the rows; columns two spaces
    apart, those in ``align_right`` (indexes) right-aligned; no trailing spaces."""
    cells = [list(names), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(names))]

    def line(row: Sequence[str]) -> str:
        parts = (
            c.rjust(w) if i in align_right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        return "  ".join(parts).rstrip()

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])])
