"""What a benchmark hands back: Markdown tables, targets met or not, and the formatting of
their cells (``bench/run_all.py`` puts the sections together into BENCHMARKS.md)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Table:
    """A Markdown table: a header row and rows of already formatted cells."""

    header: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(cell) for cell in cells])

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


@dataclass
class Target:
    """One target of the issue, and whether this run met it."""

    section: str
    what: str
    target: str
    measured: str
    met: bool | None  # None: could not be measured in this run

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "**no**", None: "not measured"}[self.met]


@dataclass
class Section:
    """What one benchmark hands back: its tables, its targets and notes on method."""

    title: str
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def markdown(self) -> str:
        parts = [f"## {self.title}", ""]
        for table in self.tables:
            parts += [table.markdown(), ""]
        parts += [f"- {note}" for note in self.notes]
        if self.notes:
            parts.append("")
        parts.append(f"_Section time: {self.seconds:.0f} s._")
        return "\n".join(parts)


def verdict(met: bool | None) -> str:
    """The "met?" cell."""
    return {True: "yes", False: "**no**", None: "n/a"}[met]


def fmt_ms(seconds: float) -> str:
    """Seconds as milliseconds, for a cell."""
    return "—" if seconds != seconds else f"{seconds * 1000:.0f} ms"


def fmt_s(seconds: float) -> str:
    """Seconds, for a cell."""
    return "—" if seconds != seconds else f"{seconds:.3f} s"


def fmt_ratio(value: float) -> str:
    """A ratio, for a cell."""
    return "—" if value != value else f"{value:.2f}×"
