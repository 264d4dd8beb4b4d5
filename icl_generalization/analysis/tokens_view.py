"""Accuracy against tokens added: how far each knowledge-injection method gets per token of training text.

Every finetuned checkpoint records what its augmentation added to the training data (tokens under the base
model's tokenizer; 0 for plain FT) and, for ``reproduce``'s strategies, the matched budget. This view puts
those rows side by side: one table per family (tokens added, then accuracy per split) and one figure per
family (a panel per split, accuracy against tokens added, a marker per row, chance dashed).
Rows whose checkpoint recorded nothing (pretrained, ICL, older manifests) are not in it.
"""

from __future__ import annotations

import io

from icl_generalization.analysis.leaderboard import Leaderboard, Row, format_cell
from icl_generalization.analysis.plots import mathtext_literal
from icl_generalization.analysis.safe_text import markdown_text


def rows_with_tokens(board: Leaderboard, family: str) -> list[Row]:
    """The family's rows that recorded tokens added, fewest tokens first (plain FT leads)."""
    cols = board.columns_of(family)
    rows = [r for r in board.rows if r in board.tokens_added and any((r, c) in board.cells for c in cols)]
    return sorted(rows, key=lambda r: (board.tokens_added[r], r.condition, r.model_label))


def families_with_tokens(board: Leaderboard) -> list[str]:
    return [f for f in board.families() if rows_with_tokens(board, f)]


def to_markdown(board: Leaderboard, figures: dict[str, str] | None = None) -> str:
    """Per family: condition, tokens added and the accuracy of every split (empty when no row recorded tokens)."""
    lines: list[str] = []
    for family in families_with_tokens(board):
        cols = board.columns_of(family)
        lines += [f"### {markdown_text(family)}: {board.metric} against tokens added", "",
                  "| model | condition | tokens added | " + " | ".join(markdown_text(c.split) for c in cols) + " |",
                  "|---|---|---:|" + "---:|" * len(cols)]
        for row in rows_with_tokens(board, family):
            cells = " | ".join(format_cell(board.cells.get((row, c))) for c in cols)
            lines.append(f"| {markdown_text(row.model_label)} | {markdown_text(row.condition)} | "
                         f"{board.tokens_added[row]:,} | {cells} |")
        lines.append("")
        if figures and family in figures:
            lines += [f"![{markdown_text(family)}: tokens added]({figures[family]})", ""]
    return "\n".join(lines)


MARKERS = ("o", "s", "D", "^", "v", "P", "X", "<", ">", "*")
DODGE = 0.02  # share of the largest x by which rows at one matched budget are spread apart


def _label(row: Row, rows: list[Row]) -> str:
    return row.condition if len({r.model for r in rows}) == 1 else f"{row.model}: {row.condition}"


def _dodged(rows: list[Row], tokens: dict[Row, int]) -> dict[Row, float]:
    """x of each row: its tokens added, spread a little where several rows added (about) the same amount.

    Strategies matched to one budget add the same tokens give or take one, so their points and error bars
    would sit on top of each other; the exact figures are in the table."""
    step = DODGE * max([tokens[r] for r in rows] + [1])
    groups: dict[int, list[Row]] = {}
    for row in rows:
        groups.setdefault(round(tokens[row] / step), []).append(row)
    return {row: tokens[row] + (i - (len(group) - 1) / 2) * step
            for group in groups.values() for i, row in enumerate(group)}


def tokens_figure(board: Leaderboard, family: str) -> bytes:
    """PNG bytes: one panel per split, accuracy (± standard error) against tokens added, one marker per row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = board.columns_of(family)
    rows = rows_with_tokens(board, family)
    xs = _dodged(rows, board.tokens_added)
    fig = Figure(figsize=(max(5.0, 3.6 * len(cols)), 3.8), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(cols), sharey=True, squeeze=False)[0]
    styles = {row: (f"C{i % 10}", MARKERS[i % len(MARKERS)]) for i, row in enumerate(rows)}
    for ax, col in zip(axes, cols, strict=True):
        for row in rows:
            cell = board.cells.get((row, col))
            if cell is None:
                continue
            colour, marker = styles[row]
            ax.errorbar([xs[row]], [cell.value], yerr=[cell.stderr or 0.0], fmt=marker, color=colour, capsize=3,
                        label=mathtext_literal(_label(row, rows)))
        chance = board.chance.get(col)
        if chance is not None:
            ax.axhline(chance, color="black", linestyle="dashed", linewidth=1.0, label="chance")
        ax.set_title(mathtext_literal(col.split.replace("_", " ")), fontsize=10)
        ax.set_xlabel("tokens added to the finetuning data")
        ax.set_ylim(-0.02, 1.05)
        ax.margins(x=0.15)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel(f"accuracy ({board.metric})")
    unique = {}
    for ax in axes:  # a condition missing from one split's panel is still in the legend
        handles, labels = ax.get_legend_handles_labels()
        unique.update({label: handle for label, handle in zip(labels, handles, strict=True) if label not in unique})
    fig.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False,
               fontsize=8)
    fig.suptitle(mathtext_literal(f"{family.replace('_', ' ')}: accuracy against tokens added"), fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None}, bbox_inches="tight")
    return buffer.getvalue()
