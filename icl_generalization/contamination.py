"""The contamination check: is the unexposed (pretrained, closed-book) model above chance?

The study's datasets use nonsense words and fictional people so that nothing can be known before training;
a split where the pretrained model is significantly above chance has answers guessable without the
training data (a leak through word shapes, distractor choice or world knowledge), and its finetuning and
in-context gains are overstated. A one-sided exact binomial test against each task's chance level decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scipy.stats import binomtest

DEFAULT_ALPHA = 0.01


@dataclass(frozen=True)
class ContaminationResult:
    task: str
    correct: int
    n: int
    chance: float
    p_value: float
    flagged: bool

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0


def check_results(results: dict[str, Any], alpha: float = DEFAULT_ALPHA) -> list[ContaminationResult]:
    """Test every closed-book task of one lm-eval results dict (a pretrained model's) against chance."""
    out = []
    for task, metrics in sorted(results.get("results", {}).items()):
        provenance = results.get("configs", {}).get(task, {}).get("metadata", {}).get("provenance", {})
        if provenance.get("condition") != "closed_book" or "acc,none" not in metrics:
            continue
        n = int(results.get("n-samples", {}).get(task, {}).get("effective", 0))
        if n == 0:
            continue
        correct = round(float(metrics["acc,none"]) * n)
        chance = float(provenance["chance"])
        p_value = float(binomtest(correct, n, chance, alternative="greater").pvalue)
        out.append(ContaminationResult(task=task, correct=correct, n=n, chance=chance, p_value=p_value,
                                       flagged=p_value < alpha))
    return out


def markdown(rows: list[ContaminationResult], alpha: float = DEFAULT_ALPHA) -> str:
    lines = [f"Contamination check: pretrained model, closed-book, one-sided exact binomial test at alpha={alpha}.",
             "", "| task | accuracy | n | chance | p-value | flagged |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.task} | {r.accuracy:.3f} | {r.n} | {r.chance:.3f} | {r.p_value:.2g} | "
                     f"{'**above chance**' if r.flagged else 'no'} |")
    return "\n".join(lines) + "\n"
