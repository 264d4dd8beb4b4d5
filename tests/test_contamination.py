from icl_generalization.contamination import check_results, markdown


def _results(acc: float, n: int, condition: str = "closed_book") -> dict:
    return {"results": {"t": {"acc,none": acc}}, "n-samples": {"t": {"effective": n, "original": n}},
            "configs": {"t": {"metadata": {"provenance": {"condition": condition, "chance": 0.25}}}}}


def test_flags_only_a_significant_excess_over_chance() -> None:
    assert not check_results(_results(0.27, 300))[0].flagged
    flagged = check_results(_results(0.40, 300))[0]
    assert flagged.flagged and flagged.correct == 120 and flagged.p_value < 1e-6
    assert "**above chance**" in markdown([flagged])


def test_in_context_tasks_are_not_checked() -> None:
    assert check_results(_results(0.9, 300, condition="icl")) == []
