"""Finetuning on the tiny model, the manifest, and the adapter loader (checks, merge, results config)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tiny_model import TINY_RECIPE

from icl_generalization.core.errors import UserError
from icl_generalization.training.finetune import FinetuneRequest, run_finetune
from icl_generalization.training.recipes import load_recipe
from icl_generalization.weights.loading import Checkpoint, apply_adapter, open_checkpoint
from icl_generalization.weights.manifest import combined_sha256
from icl_generalization.weights.verify import digest_folder

REPO = Path(__file__).resolve().parents[1]
TASK = "icl_gen_reversal_curse_p2d"


def _recipe_file(folder: Path, text: str = TINY_RECIPE) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _request(tmp: Path, base: Path, name: str = "tiny-ft", **changes: Any) -> FinetuneRequest:
    request = FinetuneRequest(name=name, recipe=load_recipe(str(_recipe_file(tmp))), dataset="reversal_curse",
                              base=str(base), out=tmp / "runs" / name, manifest=tmp / "adapters" / f"{name}.yaml",
                              progress=False)
    return dataclasses.replace(request, **changes)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Path:
    """A tiny LoRA checkpoint trained by ``run_finetune``; returns its manifest."""
    tmp = tmp_path_factory.mktemp("ft")
    manifest = run_finetune(_request(tmp, tiny_model_path))
    assert manifest["steps"] == 4
    return tmp / "adapters" / "tiny-ft.yaml"


def _logits(model: Any) -> Any:
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor([[11, 23, 500, 900, 12, 3000]])).logits


def test_lora_round_trip_reloads_exact_logits(tmp_path: Path, tiny_model_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    def fresh() -> Any:
        return AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32).eval()

    base_logits = _logits(fresh())
    # init_lora_weights=False: a default LoRA starts as the identity, which would make the test vacuous.
    torch.manual_seed(1)
    lora = get_peft_model(fresh(), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                              init_lora_weights=False)).eval()
    before = _logits(lora)
    assert not torch.allclose(before, base_logits, atol=1e-4)
    folder = tmp_path / "adapter"
    lora.save_pretrained(folder)
    assert {p.name for p in folder.iterdir()} <= {"adapter_config.json", "adapter_model.safetensors", "README.md"}
    assert not any(p.name.startswith(("model", "pytorch_model")) for p in folder.iterdir())
    with open_checkpoint(str(folder)) as opened:
        merged = _logits(apply_adapter(fresh(), opened, merge=True))
        separate = _logits(apply_adapter(fresh(), opened, merge=False))
    assert torch.allclose(separate, before, atol=1e-6)
    assert torch.allclose(merged, before, atol=1e-4)


def test_finetune_writes_adapter_and_manifest(trained: Path, tiny_model_path: Path) -> None:
    data = yaml.safe_load(trained.read_text(encoding="utf-8"))
    folder = (trained.parent / data["adapter"]["path"]).resolve()
    assert data["kind"] == "ft" and data["method"] == "lora" and data["steps"] == 4
    assert data["base"]["name"] == str(tiny_model_path.resolve())
    # Every file of the folder is listed, and adapter.sha256 is their one digest.
    assert data["manifest_version"] == 2 and data["adapter"]["files"] == digest_folder(folder)
    assert data["adapter"]["sha256"] == combined_sha256(data["adapter"]["files"])
    assert len(data["training_data"]["fingerprint"]) == 64 and data["training_data"]["examples"] == 4 * 3 * 4
    assert data["recipe"]["learning_rate"] == 0.02 and isinstance(data["final_loss"], float)
    assert {p.name for p in folder.iterdir()} <= {"adapter_config.json", "adapter_model.safetensors", "README.md"}
    log = (folder.parent / "loss.jsonl").read_text(encoding="utf-8").splitlines()
    assert [yaml.safe_load(line)["step"] for line in log] == [1, 2, 3, 4]


def test_checkpoint_is_evaluated_on_its_own_training_data(trained: Path) -> None:
    from icl_generalization.tasks.options import TaskOptions
    from icl_generalization.tasks.rows import task_rows

    built = task_rows("reversal_curse", "p2d", "closed_book", TaskOptions(checkpoint=str(trained)))
    rows, provenance = built.rows, built.provenance
    data = yaml.safe_load(trained.read_text(encoding="utf-8"))["training_data"]
    assert provenance["fingerprint"] == data["fingerprint"] and len(rows) == 4 * 10
    # an explicit data_config still wins, and other families are untouched
    other = task_rows("reversal_curse", "p2d", "closed_book", TaskOptions(checkpoint=str(trained),
                                                                         data_config={})).provenance
    assert other["fingerprint"] != data["fingerprint"]


@pytest.fixture(scope="module")
def task_manager() -> Any:
    # Indexing lm-eval's task folders takes seconds; one index serves every evaluation here.
    from lm_eval.tasks import TaskManager

    from icl_generalization.core.paths import tasks_path

    return TaskManager(include_path=str(tasks_path()))


def _evaluate(model_args: str, task_manager: Any) -> dict[str, Any]:
    import lm_eval

    from icl_generalization.scoring.model_class import register

    register()
    return lm_eval.simple_evaluate(model="icl-gen", model_args=model_args, tasks=[TASK], limit=8,
                                   task_manager=task_manager, log_samples=True, batch_size=8)


def _loglikelihoods(results: dict[str, Any]) -> list[float]:
    return [float(r[0]) for sample in results["samples"][TASK] for r in sample["filtered_resps"]]


@pytest.mark.slow
def test_checkpoint_evaluates_through_the_harness(trained: Path, tiny_model_path: Path, task_manager: Any) -> None:
    base = _evaluate(f"pretrained={tiny_model_path}", task_manager)
    tuned = _evaluate(f"checkpoint={trained}", task_manager)
    separate = _evaluate(f"checkpoint={trained},merge_adapter=False", task_manager)
    assert _loglikelihoods(base) != pytest.approx(_loglikelihoods(tuned), abs=1e-3)
    assert _loglikelihoods(separate) == pytest.approx(_loglikelihoods(tuned), abs=1e-3)
    config = tuned["config"]
    sha = yaml.safe_load(trained.read_text(encoding="utf-8"))["adapter"]["sha256"]
    assert (config["checkpoint"], config["checkpoint_sha256"], config["checkpoint_kind"]) == ("tiny-ft", sha, "ft")
    assert config["checkpoint_merged"] is True and separate["config"]["checkpoint_merged"] is False


def test_resume_after_interruption(tmp_path: Path, tiny_model_path: Path) -> None:
    from transformers import TrainerCallback

    class StopAtTwo(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 2:
                control.should_training_stop = True

    request = _request(tmp_path, tiny_model_path, name="resumable")
    first = run_finetune(request, callbacks=[StopAtTwo()])
    assert first["steps"] == 2
    with pytest.raises(UserError, match="--resume"):
        run_finetune(request)
    second = run_finetune(dataclasses.replace(request, resume=True))
    assert second["steps"] == 4 and second["resumed_from_step"] == 2
    changed = dataclasses.replace(request, resume=True, recipe=request.recipe.with_overrides(learning_rate=0.5))
    with pytest.raises(UserError, match="different settings"):
        run_finetune(changed)


def test_full_finetune_loads_as_its_own_model(tmp_path: Path, tiny_model_path: Path, trained: Path) -> None:
    from icl_generalization.scoring.model_class import ICLGenLM
    from icl_generalization.tasks.options import TaskOptions
    from icl_generalization.tasks.tokenizer import model_name_for_tokenizer

    full = _request(tmp_path, tiny_model_path, name="tiny-full")
    request_full = dataclasses.replace(full, recipe=full.recipe.with_overrides(method="full", max_steps=1))
    manifest = run_finetune(request_full)
    folder = (tmp_path / "adapters" / manifest["adapter"]["path"]).resolve()
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= names and "training_args.bin" not in names
    path = tmp_path / "adapters" / "tiny-full.yaml"
    lm = ICLGenLM(checkpoint=str(path), batch_size=1)
    info = lm.get_model_info()
    assert (info["checkpoint_method"], info["checkpoint_sha256"]) == ("full", manifest["adapter"]["sha256"])
    assert set(manifest["adapter"]["files"]) == names  # tokenizer and model config are covered too
    # An edited tokenizer or a decoy pickle beside the model is refused, naming the file.
    config = folder / "tokenizer_config.json"
    config.write_text(config.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"tokenizer_config\.json has sha256"):
        ICLGenLM(checkpoint=str(path), batch_size=1)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04decoy")
    with pytest.raises(UserError, match=r"pytorch_model\.bin not listed"):
        ICLGenLM(checkpoint=str(path), batch_size=1, allow_pickle=True)
    # In-context prompts are sized with the checkpoint's base tokenizer.
    assert model_name_for_tokenizer(TaskOptions(checkpoint=str(trained))) == str(tiny_model_path.resolve())
    assert model_name_for_tokenizer(TaskOptions(checkpoint=str(trained), tokenizer="x")) == "x"


# --- bad input --------------------------------------------------------------------------------------


def _copy_checkpoint(trained: Path, tmp: Path) -> tuple[Path, Path]:
    """A private copy of the trained checkpoint (manifest + adapter folder) that a test may damage."""
    data = yaml.safe_load(trained.read_text(encoding="utf-8"))
    folder = tmp / "adapter"
    shutil.copytree((trained.parent / data["adapter"]["path"]).resolve(), folder)
    data["adapter"]["path"] = "adapter"
    manifest = tmp / "ckpt.yaml"
    manifest.write_text(yaml.safe_dump(data), encoding="utf-8")
    return manifest, folder


def _open(checkpoint: Path, **kwargs: Any) -> Checkpoint:
    with open_checkpoint(str(checkpoint), **kwargs) as opened:
        return opened


def test_refuses_a_different_base(trained: Path, tmp_path: Path, default_model_path: Path) -> None:
    with pytest.raises(UserError, match="was trained on base"):
        _open(trained, pretrained=str(default_model_path))
    manifest, folder = _copy_checkpoint(trained, tmp_path)
    data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    data["base"]["config_sha256"] = "0" * 64
    manifest.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(UserError, match="differs from the one the checkpoint was trained on"):
        _open(manifest)
    # A bare adapter folder names its base in adapter_config.json.
    with pytest.raises(UserError, match="was trained on"):
        _open(folder, pretrained=str(default_model_path))


def test_finetune_cli_exits_non_zero_on_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from icl_generalization.cli import main

    assert main(["finetune", "--recipe", "no-such-recipe", "--name", "x"]) == 2
    assert main(["finetune", "--recipe", "paper", "--name", "x"]) == 2  # the paper recipe names no dataset
    assert "--dataset" in capsys.readouterr().err
    assert main(["finetune", "--recipe", "cpu-small", "--name", "x", "--augmented", str(tmp_path / "no.jsonl"),
                 "--out", str(tmp_path / "run"), "--manifest", str(tmp_path / "m.yaml")]) == 2
    assert "augmented corpus not found" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_cli_exits_non_zero_on_bad_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from icl_generalization.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n", encoding="utf-8")
    assert main(["eval", "--model_args", f"checkpoint={path}", "--tasks", TASK, "--limit", "2"]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_process_cpu_finetune_with_accelerate(tmp_path: Path, tiny_model_path: Path) -> None:
    """Two data-parallel processes on CPU (gloo). ``--multi_gpu`` is what makes accelerate start torchrun:
    ``accelerate launch --cpu --num_processes 2`` on one machine starts a single process (accelerate 1.x
    runs several CPU processes only through mpirun with ``--mpirun_hostfile``). The loss trajectory is one
    process's: the global batch is the same examples split in two, and the Trainer averages the loss over the
    tokens of all processes."""
    import os

    recipe = _recipe_file(tmp_path, TINY_RECIPE.replace("max_steps: 4", "max_steps: 2"))
    manifest = tmp_path / "adapters" / "ddp.yaml"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()),
               "-m", "icl_generalization.cli", "finetune", "--recipe", str(recipe), "--name", "ddp",
               "--dataset", "reversal_curse", "--base", str(tiny_model_path), "--out", str(tmp_path / "run"),
               "--manifest", str(manifest), "--no-progress"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    # torchrun's closing summary hides the cause: show every traceback's last lines.
    user_errors = [line for line in done.stderr.splitlines() if "icl-gen: error" in line]
    assert done.returncode == 0, "\n".join(user_errors + [part[-1500:] for part in done.stderr.split("Traceback")[1:]])
    data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    assert data["processes"] == 2 and data["steps"] == 2
    assert _open(manifest).sha256 == data["adapter"]["sha256"]
    # Only the main process wrote: one adapter folder, no leftovers of a second writer.
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".icl-gen-output.json", "adapter", "checkpoints",
                                                                 "loss.jsonl", "run.json"]
    (tmp_path / "one").mkdir()
    single = run_finetune(_request(tmp_path / "one", tiny_model_path, name="one",
                                   recipe=load_recipe(str(recipe))))
    assert single["processes"] == 1
    rows = {name: [json.loads(line) for line in (folder / "loss.jsonl").read_text(encoding="utf-8").splitlines()]
            for name, folder in (("two", tmp_path / "run"), ("one", tmp_path / "one" / "runs" / "one"))}
    assert [r["step"] for r in rows["two"]] == [r["step"] for r in rows["one"]] == [1, 2]
    for key in ("loss", "grad_norm", "learning_rate"):
        assert [r[key] for r in rows["two"]] == pytest.approx([r[key] for r in rows["one"]], rel=1e-5)
