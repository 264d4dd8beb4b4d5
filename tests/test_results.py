"""Reading lm-eval output through the validated models: real output loads, hostile files are one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lm_eval_runs import TASKS, cluster_by, planted_copy, results_file, samples_file, without_clusters

from icl_generalization.analysis.results import clusters_of, load_runs, read_samples
from icl_generalization.cli import main
from icl_generalization.core.errors import UserError

CLOSED, ICL = TASKS
Edit = Callable[[dict[str, Any]], None]


def _set(*path: str, value: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


def test_real_output_loads_with_its_provenance(dummy_run: Path) -> None:
    (run,) = load_runs([dummy_run])
    task = run.tasks[CLOSED]
    assert (task.family, task.split, task.condition, task.n) == ("reversal_curse", "p2d_reverse", "closed_book", 24)
    assert task.provenance.chance == 0.25 and task.provenance.n_prompts == 300
    assert task.value("acc") is not None and 0 <= (task.stderr("acc") or 0) < 1
    assert task.samples_file is not None and len(read_samples(task.samples_file)) == 24


def test_results_older_than_the_recorded_provenance_still_load(dummy_run: Path, tmp_path: Path) -> None:
    """Before ``metadata.provenance`` the task identity sat only in ``dataset_kwargs``; stderr may be N/A."""
    def old(data: dict[str, Any]) -> None:
        for name in TASKS:
            data["configs"][name]["metadata"] = {"version": 1.0}
            data["results"][name]["acc_stderr,none"] = "N/A"
            del data["results"][name]["sample_len"]
        data["config"]["model_args"] = "pretrained=/models/some-model,dtype=float32"
    (run,) = load_runs([planted_copy(dummy_run, tmp_path / "old", old)])
    task = run.tasks[ICL]
    assert (task.family, task.split, task.condition, task.fingerprint) == ("reversal_curse", "p2d_reverse", "icl",
                                                                          None)
    assert run.model == "some-model" and task.n == 24  # from n-samples' effective count
    p = task.value("acc") or 0.0
    assert task.stderr("acc") == pytest.approx((p * (1 - p) / 24) ** 0.5)  # binomial stand-in for N/A


def test_a_checkpoint_run_is_named_after_the_base_model_its_manifest_chose(dummy_run: Path, tmp_path: Path) -> None:
    """``checkpoint=`` alone names no model in the arguments; the loaded base (``base_model``) names the row,
    not the default model."""
    def checkpoint_only(data: dict[str, Any]) -> None:
        data["config"].update(model="icl-gen", model_args="checkpoint=/runs/x/rc-ft.yaml", base_model="/m/tiny-llama",
                              checkpoint="rc-ft")
    (run,) = load_runs([planted_copy(dummy_run, tmp_path / "ckpt", checkpoint_only)])
    assert (run.model, run.checkpoint) == ("tiny-llama", "rc-ft")

    def unrecorded(data: dict[str, Any]) -> None:  # results written before base_model was read
        checkpoint_only(data)
        del data["config"]["base_model"]
    (old,) = load_runs([planted_copy(dummy_run, tmp_path / "old-ckpt", unrecorded)])
    assert old.model == "smollm2-135m"


@pytest.mark.parametrize(("edit", "field", "shown", "expected"), [
    (_set("results", CLOSED, "acc,none", value=1.5), f"results.{CLOSED}.acc,none", "1.5", "less than or equal to 1"),
    (_set("results", CLOSED, "acc,none", value=-0.1), f"results.{CLOSED}.acc,none", "-0.1", "greater than or equal"),
    (_set("results", CLOSED, "acc,none", value=float("nan")), f"results.{CLOSED}.acc,none", "nan", "finite number"),
    (_set("results", CLOSED, "acc_norm,none", value=float("inf")), f"results.{CLOSED}.acc_norm,none", "inf",
     "finite number"),
    (_set("results", ICL, "acc_stderr,none", value="0.1"), f"results.{ICL}.acc_stderr,none", "'0.1'",
     "expected a valid number or 'N/A'"),
    (_set("results", ICL, "acc_stderr,none", value=-0.1), f"results.{ICL}.acc_stderr,none", "-0.1",
     "greater than or equal to 0"),
    (_set("results", ICL, "acc,none", value=True), f"results.{ICL}.acc,none", "True", "valid number"),
    (_set("results", ICL, value=[1, 2]), f"results.{ICL}", "[1, 2]", "valid dictionary"),
    (_set("results", ICL, "sample_len", value=-3), f"results.{ICL}.sample_len", "-3", "greater than or equal to 0"),
    (_set("configs", CLOSED, "metadata", "provenance", "chance", value=2), "chance", "2", "less than or equal to 1"),
    (_set("configs", CLOSED, "metadata", "provenance", "family", value=["x"]), "provenance.family", "['x']",
     "valid string"),
    (_set("config", "model_args", value=7), "config.model_args", "7", "valid"),
    (_set("date", value="yesterday"), "date", "'yesterday'", "valid number"),
])
def test_a_malformed_results_file_names_file_field_value_and_expectation(
        dummy_run: Path, tmp_path: Path, edit: Edit, field: str, shown: str, expected: str) -> None:
    bad = planted_copy(dummy_run, tmp_path / "bad", edit)
    with pytest.raises(UserError) as info:
        load_runs([bad])
    message = str(info.value)
    assert message.startswith(f"{results_file(bad)}: not an lm-eval results file: ")
    assert f"{field}: " in message and f"(got {shown})" in message and expected in message, message
    assert "\n" not in message


@pytest.mark.parametrize(("text", "expected"), [
    ("{}", "results: missing; configs: missing"),
    ("[1, 2]", "valid dictionary"),
    ('{"results": {}, "configs": {}, "versions": {"t": null}}',
     "versions.t: expected a valid integer or a valid number or a valid string (got None)"),
    ("{not json", "not a readable JSON file"),
])
def test_a_results_file_of_the_wrong_shape(tmp_path: Path, text: str, expected: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "results_x.json"
    bad.write_text(text)
    with pytest.raises(UserError, match=str(bad)) as info:
        load_runs([bad])
    assert expected in str(info.value)
    assert main(["compare", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"icl-gen: error: {bad}") and err.count("\n") == 1


@pytest.mark.parametrize(("line", "expected"), [
    ("[1, 2, 3]", "expected a JSON object, got list"),
    ('"just text"', "expected a JSON object, got str"),
    ("{bad", "not valid JSON"),
    ('{"doc_id": 0}', "doc_hash: missing"),
    ('{"doc_id": "zero", "doc_hash": "a", "prompt_hash": "b", "target_hash": "c"}',
     "doc_id: expected a valid integer (got 'zero')"),
    ('{"doc_id": 0, "doc_hash": "a", "prompt_hash": "b", "target_hash": "c", "metrics": ["acc"]}',
     "acc: the value of a metric listed in 'metrics' (got None)"),
    ('{"doc_id": 0, "doc_hash": "a", "prompt_hash": "b", "target_hash": "c", "metrics": ["acc"], "acc": NaN}',
     "acc: expected a finite number (got nan)"),
    ('{"doc_id": 0, "doc_hash": "a", "prompt_hash": "b", "target_hash": "c", "metrics": ["acc"], "acc": 2}',
     "acc: expected less than or equal to 1 (got 2)"),
    ('{"doc_id": 0, "doc_hash": "a", "prompt_hash": "b", "target_hash": "c", "doc": [1]}',
     "doc: expected a valid dictionary"),
    # A union's alternatives read as one error about one field (pydantic's branch names left out).
    ('{"doc_id": 0, "doc_hash": "a", "prompt_hash": "b", "target_hash": "c", "doc": {"id": 1.5, "gold": [0, "x"]}}',
     "doc.id: expected a valid string or a valid integer (got 1.5); doc.gold[1]: expected a valid integer (got 'x')"),
])
def test_a_malformed_samples_line_names_file_line_and_field(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "samples_t_x.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(UserError) as info:
        read_samples(path)
    assert str(info.value).startswith(f"{path}:1: ") and expected in str(info.value), str(info.value)


def test_real_samples_with_a_planted_bad_value(dummy_run: Path, tmp_path: Path) -> None:
    def plant(name: str, lines: list[dict[str, Any]]) -> None:
        if name == CLOSED:
            lines[2]["acc_norm"] = float("inf")
    copy = planted_copy(dummy_run, tmp_path / "inf", edit_samples=plant)
    with pytest.raises(UserError, match=r":3: not an lm-eval sample line: acc_norm: expected a finite number"):
        read_samples(samples_file(copy, CLOSED))
    assert json.loads(samples_file(copy, ICL).read_text().splitlines()[0])["doc_id"] == 0
    assert len(read_samples(samples_file(copy, ICL))) == 24  # the other task's log is untouched


def test_samples_carry_their_cluster_when_logged(dummy_run: Path, tmp_path: Path) -> None:
    """Logs name each item's cluster (the fact it tests) since the task rows carry it; older ones do not."""
    real = clusters_of(read_samples(samples_file(dummy_run, CLOSED)))
    assert real is not None and len(set(real.values())) > 1  # reversal-curse items are clustered by person
    old = read_samples(samples_file(planted_copy(dummy_run, tmp_path / "old", edit_samples=without_clusters),
                                    CLOSED))
    assert {s.cluster for s in old.values()} == {None} and clusters_of(old) is None
    labelled = planted_copy(dummy_run, tmp_path / "clusters", edit_samples=cluster_by(
        lambda line: f"person-{line['doc_id'] % 5}"))
    samples = read_samples(samples_file(labelled, CLOSED))
    assert clusters_of(samples) == {key: f"person-{s.doc_id % 5}" for key, s in samples.items()}
    # One unlabelled item: no labelling at all, rather than a silent catch-all cluster.
    partial = planted_copy(dummy_run, tmp_path / "partial", edit_samples=cluster_by(
        lambda line: None if line["doc_id"] == 0 else "p"))
    assert clusters_of(read_samples(samples_file(partial, CLOSED))) is None
    bad = planted_copy(dummy_run, tmp_path / "bad", edit_samples=cluster_by(lambda line: line["doc_id"]))  # an int
    with pytest.raises(UserError, match=r"doc\.cluster: expected a valid string"):
        read_samples(samples_file(bad, CLOSED))
