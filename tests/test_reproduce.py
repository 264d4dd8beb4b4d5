import json
from pathlib import Path

import pytest

from icl_generalization.core.errors import UserError
from icl_generalization.study import reproduce
from icl_generalization.study.presets import PRESETS, get_preset


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
    assert len(skipped) == 5  # data, eval-pretrained, finetune-ft, eval-ft, augment of the first family
    assert len(records) == 2 * 7 + 1
    assert not any("leaderboard: done earlier" in line for line in calls)  # always rebuilt
    report = (out / "leaderboard" / "report.md").read_text()
    assert "reversal_curse" in report and "syllogism" in report and "The paper's orderings" in report
    summary = json.loads((out / "run.json").read_text())
    assert summary["preset"] == "smoke" and summary["families"] == ["reversal_curse", "syllogism"]
    # the augmented checkpoint was trained on the corpus the augment stage wrote
    manifest = (out / "finetune-aug_ft" / "syllogism" / "syllogism-aug_ft.yaml").read_text()
    assert "aug_ft" in manifest and "corpus.jsonl" in manifest


def test_presets_name_what_they_shrink() -> None:
    from icl_generalization.data.families import FAMILIES

    for name in ("cpu-small", "paper"):
        assert set(PRESETS[name].families) == set(FAMILIES) and PRESETS[name].shrunk
    with pytest.raises(UserError, match="unknown preset"):
        get_preset("huge")


def test_a_family_the_preset_lacks_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="has no plan for semantic"):
        reproduce.run_reproduce("smollm2-135m", get_preset("smoke"), tmp_path, ["semantic"])


def test_a_run_whose_data_generator_changed_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "data" / "syllogism" / "stage.json"
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"stage": "data/syllogism", "fingerprint": "0" * 64}))
    with pytest.raises(UserError, match=r"syllogism data of this run .* not what the installed generator makes now"):
        reproduce.run_reproduce("smollm2-135m", get_preset("smoke"), tmp_path, ["syllogism"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing else was started
