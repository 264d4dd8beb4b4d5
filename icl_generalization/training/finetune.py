"""``icl-gen finetune``: train a checkpoint on a family's training documents (plus an augmented corpus).

Built on transformers' ``Trainer``, which brings progress bars, checkpointing and resuming, mixed
precision, and multi-process training: under ``accelerate launch`` (DDP, or FSDP / DeepSpeed through an
accelerate config) the same command trains data-parallel, with the recipe's batch size as the global batch.

A run folder (``runs/<name>`` by default, git-ignored) holds::

    run.json          what the run was asked to do (a resume must match it)
    loss.jsonl        one line per logging step: step, loss, learning rate, grad norm, seconds
    checkpoints/      Trainer checkpoints (the last ``save_total_limit``), for --resume
    adapter/          the final adapter (LoRA) or model (full finetuning), safetensors only

and the manifest (``adapters/<name>.yaml`` by default) names the result and the sha256 of every file in
``adapter/``; see ``weights/manifest.py``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icl_generalization.core.digest import sha256_file
from icl_generalization.core.errors import UserError
from icl_generalization.core.paths import atomic_write_text
from icl_generalization.data.families import DEFAULT_SEED
from icl_generalization.training.corpus import (
    Collator,
    build_examples,
    encode,
    examples_sha256,
    read_corpus,
)
from icl_generalization.training.recipes import Recipe
from icl_generalization.weights.base import base_identity
from icl_generalization.weights.default_model import resolve_model
from icl_generalization.weights.manifest import (
    MANIFEST_VERSION,
    BaseRecord,
    FilesRecord,
    Kind,
    Manifest,
    Method,
    TrainingData,
    combined_sha256,
    write_manifest,
)
from icl_generalization.weights.verify import digest_folder

RUN_FILE = "run.json"
LOSS_LOG = "loss.jsonl"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class FinetuneRequest:
    name: str
    recipe: Recipe
    dataset: str
    base: str
    augmented: Path | None = None
    out: Path | None = None
    manifest: Path | None = None
    resume: bool = False
    data_seed: int = DEFAULT_SEED
    progress: bool = True

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise UserError(f"name must be letters, digits, '.', '_' or '-' (it names files), got {self.name!r}")
        if not self.dataset:
            raise UserError("dataset: name a family with --dataset (the recipe names none)")
        if not self.base:
            raise UserError("base: name a model with --base (the recipe names none)")

    @property
    def run_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / self.name

    @property
    def manifest_path(self) -> Path:
        return Path(self.manifest) if self.manifest else Path("adapters") / f"{self.name}.yaml"

    @property
    def kind(self) -> Kind:
        return "aug_ft" if self.augmented else "ft"


def _world_size() -> int:
    # Set by accelerate launch / torchrun before any process group exists.
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _use_bf16(recipe: Recipe) -> bool:
    import torch

    if recipe.bf16 == "off":
        return False
    supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if recipe.bf16 == "on" and not supported:
        raise UserError("recipe asks for bf16 (bf16: on) but no CUDA device with bf16 support is visible")
    return supported


def _training_data(request: FinetuneRequest) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    from icl_generalization.data.load import get_dataset

    ds = get_dataset(request.dataset, seed=request.data_seed, overrides=request.recipe.data_config)
    corpus = read_corpus(request.augmented) if request.augmented else []
    info = {"family": ds.family, "data_seed": request.data_seed, "data_config": dict(request.recipe.data_config),
            "fingerprint": ds.fingerprint(),
            "documents": len(ds.train),
            "augmented_corpus": str(request.augmented) if request.augmented else None,
            "augmented_corpus_sha256": sha256_file(request.augmented) if request.augmented else None,
            "augmented_lines": len(corpus)}
    return ds, corpus, info


def augmentation_record(corpus: list[dict[str, Any]], tokenizer: Any) -> dict[str, Any]:
    """What the augmented corpus adds to the finetuning data: its tokens under the base model's tokenizer (the
    text alone, as the corpus's own accounting counts it), the strategy that wrote it and the matched budget it
    was cut to (recorded on its lines), so results can be compared per token spent."""
    strategies = sorted({str(row["mode"]) for row in corpus if row.get("mode")})
    budgets = sorted({int(row["token_budget"]) for row in corpus if row.get("token_budget")})
    tokens = sum(len(tokenizer(row["text"], add_special_tokens=False)["input_ids"]) for row in corpus)
    return {"augmented_tokens": tokens, "augmentation_strategy": "+".join(strategies) or None,
            "token_budget": budgets[0] if len(budgets) == 1 else None}


def _identity(request: FinetuneRequest, base: BaseRecord, data: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run must share with the interrupted one."""
    return {"name": request.name, "recipe": request.recipe.to_dict(), "base": base.model_dump(mode="json"),
            "training_data": {k: data[k] for k in ("fingerprint", "augmented_corpus_sha256", "data_seed")},
            "world_size": _world_size()}


def _last_checkpoint(folder: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    if not folder.is_dir():
        return None
    found = get_last_checkpoint(str(folder))  # type: ignore[no-untyped-call]  # transformers leaves it untyped
    return Path(found) if found else None


def _prepare_run_dir(request: FinetuneRequest, identity: dict[str, Any]) -> Path | None:
    """Check the run folder against the request; return the checkpoint to resume from, if any."""
    run_dir = request.run_dir
    last = _last_checkpoint(run_dir / "checkpoints")
    recorded_path = run_dir / RUN_FILE
    if last and not request.resume:
        raise UserError(f"{run_dir} already holds checkpoints of a run; pass --resume to continue it, "
                        "or choose another --out")
    if request.resume and recorded_path.is_file():
        recorded = json.loads(recorded_path.read_text(encoding="utf-8"))
        if recorded != identity:
            changed = sorted(k for k in identity if recorded.get(k) != identity[k])
            raise UserError(f"--resume: {run_dir} was started with different settings ({', '.join(changed)})")
    if request.resume and last is None:
        print(f"icl-gen finetune: nothing to resume in {run_dir}; starting from step 0")
    if is_main_process():
        atomic_write_text(recorded_path, json.dumps(identity, indent=2, sort_keys=True) + "\n")
        _trim_loss_log(run_dir / LOSS_LOG, _step_of(last) if last else 0)
    return last


def _step_of(checkpoint: Path) -> int:
    return int(checkpoint.name.rsplit("-", 1)[-1])


def _trim_loss_log(path: Path, keep_through: int) -> None:
    """Drop log lines written after the checkpoint a run resumes from: those steps are trained again."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= keep_through]
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def _loss_log_callback(path: Path) -> Any:
    from transformers import TrainerCallback

    class LossLog(TrainerCallback):
        def __init__(self) -> None:
            self.start = time.monotonic()

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            row = {"step": state.global_step, "epoch": round(float(state.epoch or 0), 4),
                   "seconds": round(time.monotonic() - self.start, 2)}
            row.update({k: float(v) for k, v in logs.items() if isinstance(v, (int, float))})
            with path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")

    return LossLog()


def _model(request: FinetuneRequest, base_path: str, base_name: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    recipe = request.recipe
    if recipe.method == "full":
        return model
    from peft import LoraConfig, get_peft_model
    from transformers import set_seed

    targets = recipe.target_modules if isinstance(recipe.target_modules, str) else list(recipe.target_modules)
    config = LoraConfig(r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
                        target_modules=targets, task_type="CAUSAL_LM")
    # LoRA's A matrices start random: seeded here (the Trainer seeds only after the model exists), so the same
    # recipe gives the same adapter in every process.
    set_seed(recipe.seed)
    peft_model = get_peft_model(model, config)
    # The adapter names its base the way a user does (``smollm2-135m``), not by a cache path of this machine.
    peft_model.peft_config["default"].base_model_name_or_path = base_name
    return peft_model


def _training_args(request: FinetuneRequest, run_dir: Path) -> Any:
    import torch
    from transformers import TrainingArguments

    recipe = request.recipe
    per_step = recipe.batch_size // recipe.gradient_accumulation_steps
    world = _world_size()
    if per_step % world:
        raise UserError(f"batch_size {recipe.batch_size} / gradient_accumulation_steps "
                        f"{recipe.gradient_accumulation_steps} = {per_step} does not split over {world} processes")
    return TrainingArguments(
        output_dir=str(run_dir / "checkpoints"), per_device_train_batch_size=per_step // world,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps, learning_rate=recipe.learning_rate,
        max_steps=recipe.max_steps, warmup_steps=recipe.warmup_steps, weight_decay=recipe.weight_decay,
        lr_scheduler_type=recipe.lr_scheduler, logging_steps=recipe.logging_steps, save_strategy="steps",
        save_steps=recipe.save_steps, save_total_limit=recipe.save_total_limit, seed=recipe.seed,
        data_seed=recipe.seed, bf16=_use_bf16(recipe), report_to="none", disable_tqdm=not request.progress,
        remove_unused_columns=False, dataloader_num_workers=0,
        # LoRA leaves most parameters frozen; DDP must not wait for gradients that never come.
        ddp_find_unused_parameters=False,
        # Without a GPU, accelerate forms a (gloo) process group over the launched processes only when told
        # the run is on CPU; otherwise every process would silently train alone on the whole data.
        use_cpu=not torch.cuda.is_available(),
    )


def _sort_target_modules(config_path: Path) -> None:
    """peft writes the resolved ``target_modules`` set in hash order, which changes from process to process;
    sorted, the same training run writes the same bytes (and the manifest the same digest)."""
    if not config_path.is_file():
        return
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def run_finetune(request: FinetuneRequest, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train, save the adapter, write the manifest (main process); returns the manifest (``{}`` elsewhere).

    ``callbacks`` are extra ``TrainerCallback`` objects (the tests use one to interrupt a run)."""
    from transformers import AutoTokenizer, Trainer

    recipe = request.recipe
    base_path = resolve_model(request.base)
    base = base_identity(request.base)
    ds, corpus, data = _training_data(request)
    identity = _identity(request, base, data)
    run_dir = request.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    resume_from = _prepare_run_dir(request, identity)

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise UserError(f"the tokenizer of {request.base} has neither a pad nor an end-of-sequence token")
    examples = build_examples(ds.train, corpus, recipe.split)
    encoded = [encode(ex, tokenizer, recipe.loss, recipe.max_length) for ex in examples]
    features = [{"input_ids": e.input_ids, "labels": e.labels} for e in encoded]
    data.update(examples=len(examples), examples_sha256=examples_sha256(examples), split=recipe.split,
                truncated_examples=sum(e.truncated for e in encoded), **augmentation_record(corpus, tokenizer))

    model = _model(request, base_path, base.name)
    trainer = Trainer(model=model, args=_training_args(request, run_dir), train_dataset=features,
                      data_collator=Collator(pad_id), callbacks=[_loss_log_callback(run_dir / LOSS_LOG), *callbacks])
    started = time.monotonic()
    if resume_from is not None and _step_of(resume_from) >= recipe.max_steps:
        result = _finished_checkpoint(trainer, resume_from)
    else:
        result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.monotonic() - started

    if trainer.args.world_size != _world_size():
        # The launcher started WORLD_SIZE processes but this one trained alone (its process group never
        # formed): its weights are not the run's, and two "main" processes would race on the output.
        raise UserError(f"process {os.environ.get('RANK', '0')} trained with world size {trainer.args.world_size}, "
                        f"but the launcher started {_world_size()} processes; distributed setup failed")
    final = run_dir / "adapter"
    partial = run_dir / ".adapter.partial"
    # Which process writes is decided by the launcher's RANK, the same rule as the run folder's bookkeeping.
    if is_main_process() and partial.exists():
        shutil.rmtree(partial)
    trainer.accelerator.wait_for_everyone()
    # Every process calls save_model: with FSDP or DeepSpeed, gathering the weights is a collective.
    trainer.save_model(str(partial))
    trainer.accelerator.wait_for_everyone()
    if not is_main_process():
        return {}
    # Trainer also pickles its arguments next to the weights; the adapter folder holds safetensors only.
    (partial / "training_args.bin").unlink(missing_ok=True)
    _sort_target_modules(partial / "adapter_config.json")
    if recipe.method == "full":
        tokenizer.save_pretrained(str(partial))
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)

    # Every file of the folder is listed (weights, adapter or model config, tokenizer, model card): the loader
    # refuses any file the manifest does not list, and any listed file whose digest changed.
    files = digest_folder(final)
    method: Method = "full" if recipe.method == "full" else "lora"  # the recipe admits only these two
    manifest_path = request.manifest_path
    manifest = Manifest(
        manifest_version=MANIFEST_VERSION, name=request.name, kind=request.kind, method=method, base=base,
        adapter=FilesRecord(path=os.path.relpath(final.resolve(), manifest_path.resolve().parent),
                            sha256=combined_sha256(files), files=files),
        training_data=TrainingData.model_validate(data), recipe=recipe.to_dict(),
        steps=int(trainer.state.global_step), final_loss=_final_loss(run_dir / LOSS_LOG, result),
        mean_loss=round(float(result.training_loss), 6), training_seconds=round(seconds, 1),
        resumed_from_step=_step_of(resume_from) if resume_from else None,
        processes=_world_size(), bf16=bool(trainer.args.bf16), device=str(trainer.args.device),
    )
    write_manifest(manifest_path, manifest)
    return manifest.model_dump(mode="json")


def _finished_checkpoint(trainer: Any, checkpoint: Path) -> Any:
    """Take a checkpoint saved at the last step as the result, without training.

    A run killed after its last step but before its adapter was written resumes from that checkpoint; handing
    it to ``trainer.train`` would run one step past ``max_steps`` (transformers' loop takes a step before it
    checks the budget), so the weights and the trainer state are loaded from it instead.
    """
    from transformers.trainer_callback import TrainerState
    from transformers.trainer_utils import TrainOutput

    trainer._load_from_checkpoint(str(checkpoint))  # the Trainer's own loader, as trainer.train would call it
    trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    losses = [float(row["loss"]) for row in trainer.state.log_history if "loss" in row]
    return TrainOutput(trainer.state.global_step, sum(losses) / len(losses) if losses else float("nan"), {})


def _final_loss(log: Path, result: Any) -> float | None:
    """The last logged training loss (the mean over the last logging window); the run mean if none was logged."""
    if log.is_file():
        rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
        if rows:
            return round(float(rows[-1]["loss"]), 6)
    loss = float(result.training_loss)
    return None if math.isnan(loss) else round(loss, 6)
