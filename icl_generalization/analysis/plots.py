"""Leaderboard figures in the paper's style: per family, bars grouped by test split, one bar per condition
(row), standard-error bars, and a dashed line at chance for each split."""

from __future__ import annotations

import io

from icl_generalization.analysis.leaderboard import Leaderboard, Row

# One hue per condition, as the paper's figures keep a condition's colour across panels.
CONDITION_COLOURS = {"pretrained": "#9e9e9e", "ICL": "#1f77b4", "FT": "#ff7f0e", "augmented FT": "#2ca02c"}
OTHER_COLOUR = "#9467bd"
HATCHES = ("", "//", "..", "xx", "\\\\", "++")


def mathtext_literal(text: str) -> str:
    """Matplotlib reads text between two ``$`` as mathtext (and fails on bad syntax); names from results
    files are shown as they are."""
    return text.replace("$", r"\$")


def _styles(rows: list[Row]) -> dict[Row, tuple[str, str]]:
    """Colour by condition; rows sharing a condition (several models or checkpoints) differ by hatching."""
    seen: dict[str, int] = {}
    styles = {}
    for row in rows:
        index = seen.get(row.condition, 0)
        seen[row.condition] = index + 1
        styles[row] = (CONDITION_COLOURS.get(row.condition, OTHER_COLOUR), HATCHES[index % len(HATCHES)])
    return styles


def family_figure(board: Leaderboard, family: str) -> bytes:
    """The family's figure as PNG bytes (rendered off-screen with the Agg backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = board.columns_of(family)
    rows = [r for r in board.rows if any((r, c) in board.cells for c in cols)]
    styles = _styles(rows)
    # The object API with an explicit Agg canvas needs no global pyplot state or display.
    fig = Figure(figsize=(max(5.0, 1.2 + 1.5 * len(cols) + 0.25 * len(rows)), 4.0), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    group = 0.8
    width = group / max(1, len(rows))
    for i, row in enumerate(rows):
        xs, heights, errors = [], [], []
        for j, col in enumerate(cols):
            cell = board.cells.get((row, col))
            if cell is not None:
                xs.append(j - group / 2 + width * (i + 0.5))
                heights.append(cell.value)
                errors.append(cell.stderr or 0.0)
        colour, hatch = styles[row]
        label = row.condition if not row.checkpoint else f"{row.condition} ({row.checkpoint})"
        if len({r.model for r in rows}) > 1:
            label = f"{row.model}: {label}"
        label = mathtext_literal(label)
        ax.bar(xs, heights, width * 0.95, yerr=errors, capsize=3, color=colour, hatch=hatch,
               edgecolor="white" if not hatch else "#333333", linewidth=0.6, label=label,
               error_kw={"elinewidth": 1, "ecolor": "#222222"})
    chance_labelled = False
    for j, col in enumerate(cols):
        chance = board.chance.get(col)
        if chance is not None:
            # Matplotlib leaves labels starting with "_" out of the legend: one "chance" entry in all.
            ax.hlines(chance, j - group / 2 - 0.05, j + group / 2 + 0.05, colors="black", linestyles="dashed",
                      linewidth=1.2, label="_chance" if chance_labelled else "chance")
            chance_labelled = True
    ax.set_xticks(range(len(cols)), [mathtext_literal(c.split.replace("_", " ")) for c in cols])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"accuracy ({board.metric})")
    ax.set_title(mathtext_literal(family.replace("_", " ")))
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    # No software/date metadata: the same leaderboard gives the same bytes.
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
