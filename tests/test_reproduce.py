import json
import shutil
from pathlib import Path

import pytest

from icl_generalization.core.errors import UserError
from icl_generalization.core.outputs import claim_folder
from icl_generalization.study import reproduce
from icl_generalization.study.presets import COMPARED_STRATEGIES, PRESETS, FamilyPlan, Preset, get_preset
from icl_generalization.training.strategies import STRATEGIES


class Stop(Exception):
    pass


@pytest.mark.slow
def test_every_stage_runs_and_a_stopped_run_resumes(tiny_model_path: Path, isolated_cache: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    preset = get_preset("smoke")
    out = tmp_path / "run"
    real_finetune = reproduce._finetune
    calls: list[str] = []

    def stop_at_augmented(folder: Path, **kwargs: object) -> dict:
        if kwargs["kind"] == "aug_ft":
            raise Stop  # an interruption in the middle of the pipeline
        return real_finetune(folder, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reproduce, "_finetune", stop_at_augmented)
    with pytest.raises(Stop):
        reproduce.run_reproduce(str(tiny_model_path), preset, out, ["reversal_curse"], log=calls.append)
    assert (out / "augment" / "reversal_curse" / "stage.json").is_file()
    assert not (out / "finetune-aug_ft" / "reversal_curse" / "stage.json").exists()

    monkeypatch.setattr(reproduce, "_finetune", real_finetune)
    calls.clear()
    records = reproduce.run_reproduce(str(tiny_model_path), preset, out, ["reversal_curse", "syllogism"],
                                      log=calls.append)
    skipped = [line for line in calls if "done earlier, skipped" in line]
    # the pretrained control, then data, eval-pretrained, finetune-ft, eval-ft, its control and augment of the
    # first family
    assert len(skipped) == 7
    # nine stages per family (with the forgetting control after each finetune), four per strategy of the reversal
    # curse's matched-budget comparison (its text, finetune, evaluation and control), the pretrained control
    assert len(records) == 1 + 2 * 9 + 4 * len(COMPARED_STRATEGIES) + 1
    assert not any("leaderboard: done earlier" in line for line in calls)  # always rebuilt
    report = (out / "leaderboard" / "report.md").read_text()
    assert "reversal_curse" in report and "syllogism" in report and "The paper's orderings" in report
    # every finetuned checkpoint is scored on the forgetting control beside the pretrained model
    assert "## Forgetting control" in report
    for checkpoint in ("reversal_curse-ft", "reversal_curse-aug_ft", "syllogism-ft", "syllogism-aug_ft"):
        assert f"+ {checkpoint} |" in report.split("## Forgetting control")[1]
    summary = json.loads((out / "run.json").read_text())
    assert summary["preset"] == "smoke" and summary["families"] == ["reversal_curse", "syllogism"]
    # the augmented checkpoint was trained on the corpus the augment stage wrote
    manifest = (out / "finetune-aug_ft" / "syllogism" / "syllogism-aug_ft.yaml").read_text()
    assert "aug_ft" in manifest and "corpus.jsonl" in manifest
    # every strategy ran at the smoke budget and its checkpoint recorded what it added
    budget = preset.families["reversal_curse"].token_budget
    for strategy in COMPARED_STRATEGIES:
        stage = json.loads((out / f"strategy-{strategy}" / "reversal_curse" / "stage.json").read_text())
        assert stage["token_budget"] == budget and abs(stage["tokens_added"] - budget) <= 2
    assert "## Accuracy against tokens added" in report and "FT + reverse_entity" in report


def test_presets_name_what_they_shrink() -> None:
    from icl_generalization.data.families import FAMILIES

    for name in ("cpu-small", "paper"):
        assert set(PRESETS[name].families) == set(FAMILIES) and PRESETS[name].shrunk
    with pytest.raises(UserError, match="unknown preset"):
        get_preset("huge")


def test_smoke_and_cpu_small_run_the_strategies_side_by_side(tmp_path: Path) -> None:
    # Every strategy but global (the semantic structure's own mode) is compared, at one budget per family.
    assert set(COMPARED_STRATEGIES) == set(STRATEGIES) - {"global"}
    # smoke checks the pipeline on the reversal curse; cpu-small compares on the simple reversals, whose
    # finetunes fit two CPU cores seven more times.
    for name, family in (("smoke", "reversal_curse"), ("cpu-small", "simple_reversal")):
        plan = PRESETS[name].families[family]
        assert plan.strategies == COMPARED_STRATEGIES and plan.token_budget
        assert not any(p.strategies for f, p in PRESETS[name].families.items() if f != family)
    stages = [s.name for s in reproduce.plan_stages("m", get_preset("smoke"), tmp_path, ["reversal_curse"], {})]
    for strategy in COMPARED_STRATEGIES:
        assert [n for n in stages if n.split("/")[0].endswith(f"strategy-{strategy}")] == [
            f"strategy-{strategy}/reversal_curse", f"finetune-strategy-{strategy}/reversal_curse",
            f"eval-strategy-{strategy}/reversal_curse"]
    assert stages[-1] == "leaderboard"


def test_a_preset_with_a_bad_strategy_plan_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown strategies nope"):
        Preset(name="x", recipe="cpu-small", training={"syllogism": FamilyPlan(strategies=("nope",), token_budget=9)})
    with pytest.raises(ValueError, match="need a token_budget"):
        Preset(name="x", recipe="cpu-small", training={"syllogism": FamilyPlan(strategies=("repeat",))})


def test_a_family_the_preset_lacks_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="has no plan for semantic"):
        reproduce.run_reproduce("smollm2-135m", get_preset("smoke"), tmp_path, ["semantic"])


@pytest.mark.parametrize("change", ["dataset_fingerprint", "model_digest", "preset_sha256", "no key"])
def test_a_resume_with_anything_changed_is_refused(tiny_model_path: Path, tmp_path: Path, change: str) -> None:
    preset = get_preset("smoke")
    model = str(tiny_model_path)
    key = reproduce.plan_stages(model, preset, tmp_path, ["syllogism"], reproduce.run_key(model, preset))[0].key
    with claim_folder(tmp_path, "reproduce", key, incremental=True):
        pass  # a run folder the tool owns, as the first run left it
    recorded = {**key, change: "0" * 64} if change != "no key" else None
    marker = tmp_path / "data" / "syllogism" / "stage.json"
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"stage": "data/syllogism", "key": recorded}))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(UserError, match=f"stage data/syllogism finished with other settings.*{change}"):
        reproduce.run_reproduce(model, preset, tmp_path, ["syllogism"])
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing else was started


def test_the_plan_scores_the_controls_beside_every_model_and_keys_them_apart(tiny_model_path: Path,
                                                                            tmp_path: Path) -> None:
    from icl_generalization.data.controls import CONTROLS

    preset, model = get_preset("smoke"), str(tiny_model_path)
    key = reproduce.run_key(model, preset)
    stages = {s.name: s for s in reproduce.plan_stages(model, preset, tmp_path, ["reversal_curse", "syllogism"], key)}
    controls = [name for name in stages if name.startswith("eval-control/")]
    # smoke compares the augmentation strategies on the reversal curse: each strategy's checkpoint is scored too
    assert controls == ["eval-control/pretrained", "eval-control/reversal_curse-ft",
                        "eval-control/reversal_curse-aug_ft",
                        *(f"eval-control/reversal_curse-strategy-{s}" for s in COMPARED_STRATEGIES),
                        "eval-control/syllogism-ft", "eval-control/syllogism-aug_ft"]
    fingerprints = {name: spec.load().fingerprint() for name, spec in CONTROLS.items()}
    for name in controls:
        stage = stages[name]
        assert stage.key["control_fingerprints"] == fingerprints
        assert stage.run.keywords["tasks"] == ["icl_gen_control_world_facts"]  # type: ignore[attr-defined]
    assert stages["eval-control/pretrained"].run.keywords["model_args"] == f"pretrained={model}"  # type: ignore[attr-defined]
    manifest = tmp_path / "finetune-aug_ft" / "syllogism" / "syllogism-aug_ft.yaml"
    assert stages["eval-control/syllogism-aug_ft"].run.keywords["model_args"] == f"checkpoint={manifest}"  # type: ignore[attr-defined]
    # A checkpoint's control stage is keyed by its family's data too (the checkpoint depends on it) ...
    assert stages["eval-control/syllogism-ft"].key["dataset_fingerprint"] == stages["data/syllogism"].key[
        "dataset_fingerprint"]
    # ... while the family stages' keys are what they were before the controls: a run folder finished by an
    # older icl-gen resumes with its family stages skipped, and only the control stages run.
    for name, stage in stages.items():
        if not name.startswith("eval-control/") and name != "leaderboard":
            assert set(stage.key) == {*key, "dataset_fingerprint"}, name


def test_a_changed_control_refuses_only_its_own_stages(tiny_model_path: Path, tmp_path: Path) -> None:
    preset, model = get_preset("smoke"), str(tiny_model_path)
    stages = reproduce.plan_stages(model, preset, tmp_path, ["syllogism"], reproduce.run_key(model, preset))
    with claim_folder(tmp_path, "reproduce", reproduce.run_key(model, preset), incremental=True):
        pass
    for stage in stages[:3]:  # the pretrained control, data and eval-pretrained finished with this run's keys
        marker = tmp_path / stage.name / "stage.json"
        marker.parent.mkdir(parents=True)
        key = dict(stage.key)
        if stage.name.startswith("eval-control/"):
            key["control_fingerprints"] = {"world_facts": "0" * 64}  # built from an older fact set
        marker.write_text(json.dumps({"stage": stage.name, "key": key}))
    with pytest.raises(UserError, match=r"stage eval-control/pretrained finished with other settings.*"
                                        r"control_fingerprints"):
        reproduce.run_reproduce(model, preset, tmp_path, ["syllogism"])
    # the family's finished stages still match: deleting eval-control/pretrained is all a resume needs
    reproduce._refuse_changed_key(tmp_path, [s for s in stages if not s.name.startswith("eval-control/")])


def test_the_key_names_the_model_weights(tiny_model_path: Path, tmp_path: Path) -> None:
    digest = reproduce.model_digest(str(tiny_model_path))
    assert len(str(digest["weights_sha256"])) == 64 and len(str(digest["config_sha256"])) == 64
    copy = tmp_path / "retrained"
    shutil.copytree(tiny_model_path, copy)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")  # same name and config, other weights
    other = reproduce.model_digest(str(copy))
    assert other["config_sha256"] == digest["config_sha256"] and other["weights_sha256"] != digest["weights_sha256"]


def test_reproduce_refuses_a_folder_of_the_users(tiny_model_path: Path, tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("mine")
    with pytest.raises(UserError, match=r"thesis\.tex, which icl-gen did not write"):
        reproduce.run_reproduce(str(tiny_model_path), get_preset("smoke"), tmp_path, ["syllogism"])
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.tex"]
