"""``icl-gen rescore``: lm-eval's acc / acc_norm recomputed exactly from the per-sample logs, calibrated accuracy
from stored content-free priors, per-form scores, gate-ready copies, and one-line errors on bad files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from lm_eval_runs import TASKS, results_file, samples_file

from icl_generalization.analysis.choice_scores import ChoiceLog, item_scores, read_choice_logs
from icl_generalization.analysis.gate import CheckConfig, run_check
from icl_generalization.analysis.priors import priors_file_for, read_priors, write_priors
from icl_generalization.analysis.rescore import rescore
from icl_generalization.cli import main
from icl_generalization.scoring.content_free import RecordedModel
from icl_generalization.study.evaluate import with_log_samples

TASK = "icl_gen_syllogism_conclusion"
DATE = "2026-01-01T00-00-00.000000"
CHOICES = [" All a are b.", " No a are b.", " Some a are b."]
# The model's prior prefers "All" by far; after the question it prefers "All" a little less.
PRIOR = {" All a are b.": -1.0, " No a are b.": -5.0, " Some a are b.": -5.0}
# (form, gold, log-likelihoods after the question): raw argmax says "All" every time, the calibrated argmax
# (lls - prior) is right on the three items whose gold is not "All" and wrong on the one whose gold is.
ITEMS = [("Barbara (All)", 0, [-2.0, -4.0, -4.5]), ("Celarent (No)", 1, [-2.0, -4.0, -4.5]),
         ("Celarent (No)", 1, [-2.0, -3.5, -5.0]), ("Darii (Some)", 2, [-2.0, -6.0, -4.0])]


def _line(i: int, form: str, gold: int, lls: Sequence[float], prompt: str = "Q?") -> dict[str, Any]:
    acc = 1.0 if gold == 0 else 0.0  # raw and length-normalized argmax are both choice 0 on these items
    return {
        "doc_id": i, "doc": {"id": f"item-{i}", "prompt": prompt, "query": prompt, "choices": CHOICES, "gold": [gold],
                             "form": form, "cluster": f"c{i}"},
        "target": json.dumps([gold]),
        "arguments": {f"gen_args_{j}": {"arg_0": prompt, "arg_1": c} for j, c in enumerate(CHOICES)},
        "resps": [[[str(ll), "False"]] for ll in lls], "filtered_resps": [[str(ll), "False"] for ll in lls],
        "filter": "none", "metrics": ["acc", "acc_norm"], "doc_hash": f"d{i}", "prompt_hash": f"p{i}",
        "target_hash": f"t{i}", "acc": acc, "acc_norm": acc}


def _crafted_run(folder: Path, lines: list[dict[str, Any]] | None = None) -> Path:
    """A run folder in lm-eval's layout holding one syllogism task."""
    lines = lines if lines is not None else [_line(i, *item) for i, item in enumerate(ITEMS)]
    folder.mkdir(parents=True)
    acc = sum(line["acc"] for line in lines) / len(lines)
    (folder / f"results_{DATE}.json").write_text(json.dumps({
        "results": {TASK: {"alias": TASK, "sample_len": len(lines), "acc,none": acc, "acc_norm,none": acc}},
        "configs": {TASK: {"target_delimiter": "", "dataset_kwargs": {"family": "syllogism", "split": "conclusion",
                                                                     "condition": "closed_book"}}},
        "config": {"model": "dummy", "model_args": {}}}))
    (folder / f"samples_{TASK}_{DATE}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder / f"results_{DATE}.json"


def _prior_scorer(seen: list[tuple[str, str]]) -> Any:
    def score(model: RecordedModel, requests: Sequence[tuple[str, str]]) -> list[float]:
        seen.extend(requests)
        return [PRIOR[continuation] for _, continuation in requests]
    return score


def test_calibrated_accuracy_and_forms_on_known_priors(tmp_path: Path) -> None:
    results = _crafted_run(tmp_path / "run")
    seen: list[tuple[str, str]] = []
    written = write_priors(results, scorer=_prior_scorer(seen))
    assert written == priors_file_for(results)
    assert {context for context, _ in seen} == {"N/A"}  # the question replaced by the content-free input
    (task,) = rescore(tmp_path / "run")
    assert (task.n, task.acc, task.acc_norm, task.acc_calibrated) == (4, 0.25, 0.25, 0.75)
    assert task.matches_live
    forms = {f.form: (f.n, f.acc, f.acc_calibrated) for f in task.forms}
    assert forms == {"Barbara (All)": (1, 1.0, 0.0), "Celarent (No)": (2, 0.0, 1.0), "Darii (Some)": (1, 0.0, 1.0)}


def test_without_priors_calibrated_is_not_available(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _crafted_run(tmp_path / "run")
    (task,) = rescore(tmp_path / "run")
    assert task.acc_calibrated is None and task.calibration.startswith("n/a")
    assert main(["rescore", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "| 0.250 | 0.250 | n/a |" in out and "Barbara (All)" in out


def test_in_context_prior_keeps_the_documents(tmp_path: Path) -> None:
    docs = "Doc one. Doc two.\n\n"
    lines = [_line(i, *item) for i, item in enumerate(ITEMS)]
    for line in lines:
        line["doc"]["query"] = docs + "Q?"
        line["arguments"] = {k: {"arg_0": docs + "Q?", "arg_1": v["arg_1"]} for k, v in line["arguments"].items()}
    seen: list[tuple[str, str]] = []
    write_priors(_crafted_run(tmp_path / "run", lines), scorer=_prior_scorer(seen))
    assert {context for context, _ in seen} == {docs + "N/A"}


def test_acc_norm_divides_by_characters_as_lm_eval_does() -> None:
    # -3.3 / 3 characters = -1.1 < -4.0 / 4 = -1.0, so acc_norm picks "abcd"; by bytes ("ééé" is 6) it would not.
    log = ChoiceLog(key="k", doc_id=0, requests=(("q", "ééé"), ("q", "abcd")), loglikelihoods=(-3.3, -4.0),
                    gold=(1,), logged={}, doc={}, line={})
    scores = item_scores(log, "")
    assert (scores.acc, scores.acc_norm, scores.acc_calibrated) == (0.0, 1.0, None)
    assert item_scores(log, "", prior=[-10.0, 0.0]).acc_calibrated == 0.0


def test_reproduces_a_real_lm_eval_run_exactly(dummy_run: Path) -> None:
    rescored = {t.task: t for t in rescore(dummy_run)}
    assert set(rescored) == set(TASKS)
    live = json.loads(results_file(dummy_run).read_text())["results"]
    for name, task in rescored.items():
        assert task.matches_live
        assert (task.acc, task.acc_norm) == (live[name]["acc,none"], live[name]["acc_norm,none"])  # bit-equal
        logs = read_choice_logs(samples_file(dummy_run, name))
        for log in logs:
            scores = item_scores(log, "")  # the package's tasks join prompt and choice with ""
            assert (scores.acc, scores.acc_norm) == (log.logged["acc"], log.logged["acc_norm"])


def test_gate_ready_copies(tmp_path: Path) -> None:
    results = _crafted_run(tmp_path / "run")
    write_priors(results, scorer=_prior_scorer([]))
    for out in ("a", "b"):
        assert main(["rescore", str(tmp_path / "run"), "--out", str(tmp_path / out)]) == 0
    assert (tmp_path / "a" / "rescore.md").is_file() and json.loads((tmp_path / "a" / "rescore.json").read_text())
    report = run_check(tmp_path / "a" / "runs", tmp_path / "b" / "runs", CheckConfig(metric="acc_calibrated"))
    (check,) = report.tasks
    assert (check.status, check.baseline, check.n_paired) == ("ok", 0.75, 4)


def _break(tmp_path: Path, edit: Any) -> Path:
    results = _crafted_run(tmp_path / "run")
    path = results.parent / f"samples_{TASK}_{DATE}.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    edit(lines)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda lines: lines[1].pop("filtered_resps"), "'filtered_resps' does not hold one"),
    (lambda lines: lines[1]["filtered_resps"][0].__setitem__(0, "abc"), "log-likelihood 'abc' is not a number"),
    (lambda lines: lines[1].__setitem__("target", "[7]"), "is not a gold index"),
    (lambda lines: lines[1].__setitem__("arguments", {"a": 1}), "'arguments' is not a list of"),
    (lambda lines: lines[1].pop("doc_hash"), "doc_hash"),
])
def test_malformed_samples_are_one_line_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        edit: Any, expected: str) -> None:
    path = _break(tmp_path, edit)
    assert main(["rescore", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and expected in err


def test_malformed_or_foreign_priors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = _crafted_run(tmp_path / "run")
    priors = priors_file_for(results)
    priors.write_text("{not json")
    assert main(["rescore", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(priors) in err
    priors.unlink()
    write_priors(results, scorer=_prior_scorer([]))
    record = json.loads(priors.read_text())
    record["tasks"][TASK]["items"]["item-2"]["doc_hash"] = "another"
    priors.write_text(json.dumps(record))
    assert read_priors(results) is not None
    assert main(["rescore", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(priors) in err and "item-2" in err
    assert main(["rescore", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_eval_keeps_the_samples() -> None:
    assert with_log_samples(["--tasks", "x", "--output_path", "o"]) == ["--tasks", "x", "--output_path", "o",
                                                                         "--log_samples"]
    assert with_log_samples(["--output_path=o", "-s"]) == ["--output_path=o", "-s"]
    assert with_log_samples(["--tasks", "x"]) == ["--tasks", "x"]  # nothing written, nothing to log


@pytest.mark.slow
def test_tiny_model_eval_stores_priors_and_rescore_matches(tiny_model_path: Path, default_model_path: Path,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny Llama through `icl-gen eval` (closed book and in context): the priors are stored, and rescoring
    reproduces every live score bit for bit."""
    from icl_generalization.study.evaluate import evaluate

    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / default_model_path.name).symlink_to(default_model_path)
    monkeypatch.setenv("ICL_GEN_CACHE", str(cache))
    tasks = f"{TASK},{TASK}_icl"
    code = evaluate(["--model", "icl-gen", "--model_args", f"pretrained={tiny_model_path}", "--tasks", tasks,
                     "--limit", "6", "--batch_size", "8", "--metadata", json.dumps({"context_budget": 256}),
                     "--output_path", str(tmp_path / "out")], log=lambda _: None)
    assert code == 0
    (results,) = (tmp_path / "out").rglob("results_*.json")
    priors = read_priors(results)
    assert priors is not None and set(priors.tasks) == set(tasks.split(","))
    rescored = rescore(tmp_path / "out")
    assert all(t.matches_live and t.acc_calibrated is not None and t.forms for t in rescored)


def test_a_multi_process_launch_skips_the_priors_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Rank 0 alone holds the results; rebuilding the model there would hang on the group the others left.
    from icl_generalization.scoring import lm_eval_cli
    from icl_generalization.study import evaluate as evaluation

    def fake_lm_eval(args: list[str]) -> int:
        (tmp_path / "out" / "m").mkdir(parents=True)
        (tmp_path / "out" / "m" / "results_2026.json").write_text("{}", encoding="utf-8")
        return 0

    monkeypatch.setattr(lm_eval_cli, "run_lm_eval", fake_lm_eval)
    monkeypatch.setattr(evaluation, "write_priors", lambda path: pytest.fail(f"priors written for {path}"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    lines: list[str] = []
    assert evaluation.evaluate(["--tasks", "t", "--output_path", str(tmp_path / "out")], log=lines.append) == 0
    assert len(lines) == 1 and "priors skipped under a multi-process launch" in lines[0]
