"""``icl-gen reproduce``: the whole study on one model, resumable stage by stage.

Per family: write the data; evaluate the pretrained model closed-book and in context; finetune (FT) and
evaluate; augment the training data with the model's own in-context inferences, finetune on both (augmented
FT) and evaluate; then one leaderboard over everything, with the paper's orderings checked against it. Beside
every model it scores (the pretrained one and each finetuned checkpoint) it scores the forgetting controls
(``data/controls``: closed-book facts the base model already had), so the leaderboard shows what each
finetune cost as well as what it gained.

Every stage writes into its own folder under ``--out`` and leaves a ``stage.json`` marker when it finished;
a rerun skips finished stages, and a stage that was interrupted starts again (finetuning resumes from its
last checkpoint, augmentation from its last written line).

A finished stage records the key of everything that decided its result (the model's name and weights
digest, the preset and its contents, the package version, the data seed and the family's dataset
fingerprint); a rerun whose key differs in anything is refused before any stage runs, naming the difference,
so one run folder never mixes results of two models, presets or datasets. The control stages are stages of their
own (``eval-control/...``), keyed by the controls' fingerprints as well: adding or changing a control runs or
refuses only those, and leaves every family stage's key as it was.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import JsonValue

from icl_generalization.core.digest import sha256_file, sha256_of
from icl_generalization.core.errors import UserError
from icl_generalization.core.outputs import check_output, claim_folder, package_version
from icl_generalization.core.paths import atomic_write_text
from icl_generalization.study.presets import FamilyPlan, Preset

if TYPE_CHECKING:
    from icl_generalization.data.records import Dataset
    from icl_generalization.tasks.names import Condition

MARKER = "stage.json"


@dataclass(frozen=True)
class Stage:
    name: str  # also the folder, e.g. "finetune-ft/reversal_curse"
    run: Callable[[Path], dict[str, Any]]
    key: dict[str, JsonValue]  # everything that decides the stage's result; a resume must match it
    # Cheap summaries of everything finished so far are rebuilt on every run, never skipped: a run of one
    # family followed by a run of all of them must end with a leaderboard of all of them.
    always: bool = False


def _tasks(family: str, conditions: tuple[Condition, ...]) -> list[str]:
    from icl_generalization.data.families import get_family
    from icl_generalization.tasks.names import task_name

    return [task_name(family, split, condition) for split in get_family(family).splits for condition in conditions]


def _metadata(plan: FamilyPlan, preset: Preset, family: str) -> str:
    meta: dict[str, Any] = {"data_config": {family: plan.data_config}}
    if preset.context_budget:
        meta["context_budget"] = preset.context_budget
    return json.dumps(meta)


# What an evaluation stage writes (lm-eval's dated results and sample logs, the priors with their marker and lock).
EVAL_OUTPUTS = ("results_*.json", "samples_*.jsonl", "priors_*.json", ".priors_*")


def _evaluate(folder: Path, model_args: str, tasks: list[str], metadata: str, preset: Preset,
              limit: int | None) -> dict[str, Any]:
    from icl_generalization.study.evaluate import evaluate

    # An evaluation is not resumable: the files of an attempt that was stopped before its stage was marked done
    # (this run's own, inside its stage folder) go, or the leaderboard would read both attempts' dated results.
    for pattern in EVAL_OUTPUTS:
        for stale in sorted(folder.rglob(pattern)):
            stale.unlink()

    # evaluate(): the per-sample logs and content-free priors `icl-gen rescore` reads are kept with the results.
    args = ["--model", "icl-gen", "--model_args", model_args, "--tasks", ",".join(tasks), "--metadata", metadata,
            "--batch_size", str(preset.batch_size), "--output_path", str(folder), "--log_samples"]
    if limit:
        args += ["--limit", str(limit)]
    if evaluate(args, log=lambda _: None) != 0:
        raise UserError(f"evaluation failed in {folder}")
    return {"tasks": tasks}


def _finetune(folder: Path, family: str, model: str, plan: FamilyPlan, preset: Preset, kind: str,
              corpus: Path | None, name: str | None = None) -> dict[str, Any]:
    from icl_generalization.training.finetune import FinetuneRequest, run_finetune
    from icl_generalization.training.recipes import load_recipe

    split = plan.aug_split if kind == "aug_ft" else plan.ft_split
    recipe = load_recipe(preset.recipe)
    recipe = recipe.with_overrides(dataset=family, max_steps=plan.ft_steps, split=split,
                                   data_config=dict(plan.data_config), max_length=plan.max_length)
    name = name or f"{family}-{kind}"
    request = FinetuneRequest(name=name, recipe=recipe, dataset=family, base=model, augmented=corpus,
                              out=folder / "run", manifest=folder / f"{name}.yaml",
                              resume=(folder / "run" / "checkpoints").is_dir())
    manifest = run_finetune(request)
    return {"manifest": str(folder / f"{name}.yaml"), "steps": manifest.get("steps"),
            "final_loss": manifest.get("final_loss"), "seconds": manifest.get("training_seconds"),
            "tokens_added": manifest.get("training_data", {}).get("augmented_tokens")}


def _augment(folder: Path, family: str, model: str, plan: FamilyPlan) -> dict[str, Any]:
    from icl_generalization.data.load import get_dataset
    from icl_generalization.training.augment import AugmentConfig, run_augment
    from icl_generalization.training.backends import HFBackend
    from icl_generalization.weights.default_model import resolve_model

    config = AugmentConfig(**plan.augment)
    ds = get_dataset(family, overrides=plan.data_config)
    stats = run_augment(ds, model, folder / "corpus.jsonl", config, HFBackend(resolve_model(model)))
    return {"corpus": str(folder / "corpus.jsonl"), "inputs": stats.inputs, "outputs": stats.outputs_written,
            "new_tokens": stats.new_tokens, "tokens_added": stats.tokens_added, "seconds": round(stats.seconds, 1),
            "tokens_per_second": round(stats.tokens_per_second, 2), "prefix_computations": stats.prefix_computations}


def _strategy(folder: Path, family: str, model: str, plan: FamilyPlan, strategy: str) -> dict[str, Any]:
    """One strategy's text at the plan's matched budget: its whole corpus (resumable), then the budget's cut."""
    from icl_generalization.data.load import get_dataset
    from icl_generalization.tasks.tokenizer import load_tokenizer
    from icl_generalization.training.augment import AugmentConfig, run_augment
    from icl_generalization.training.backends import HFBackend
    from icl_generalization.training.budget import TokenizerText, match_budget
    from icl_generalization.training.corpus import read_corpus
    from icl_generalization.training.strategies import get_strategy
    from icl_generalization.weights.default_model import resolve_model

    assert plan.token_budget is not None  # Preset refuses strategies without a budget
    config = AugmentConfig(**{**plan.strategy_augment, "mode": strategy})
    ds = get_dataset(family, overrides=plan.data_config)
    resolved = resolve_model(model)
    tokens = TokenizerText(load_tokenizer(resolved))
    # A model-free strategy never loads the model: the tokenizer alone counts what it adds.
    backend = HFBackend(resolved) if get_strategy(strategy).uses_model else None
    stats = run_augment(ds, model, folder / "corpus.jsonl", config, backend, progress=False,
                        count_tokens=tokens.count)
    matched = match_budget(read_corpus(folder / "corpus.jsonl"), plan.token_budget, tokens, config.seed)
    # Every line names the budget it was cut to: finetuning records it, and compare shows the row as a strategy.
    lines = "".join(json.dumps({**row, "token_budget": plan.token_budget}, ensure_ascii=False) + "\n"
                    for row in matched.rows)
    atomic_write_text(folder / "matched.jsonl", lines)
    return {"strategy": strategy, "corpus": str(folder / "matched.jsonl"), "token_budget": plan.token_budget,
            "tokens_added": matched.tokens_added, "lines": len(matched.rows), "passes": matched.passes,
            "cut_line": matched.cut_line, "corpus_lines": matched.source_lines, "corpus_tokens": matched.source_tokens,
            "inputs": stats.inputs, "new_tokens": stats.new_tokens, "generation_seconds": round(stats.seconds, 1)}


def _control_tasks() -> list[str]:
    from icl_generalization.data.controls import CONTROLS
    from icl_generalization.tasks.names import control_task_name

    return [control_task_name(name) for name in CONTROLS]


def control_key(key: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """A control stage's key: the run's (or the family's) plus the fingerprint of every control it scores."""
    from icl_generalization.data.controls import CONTROLS

    return {**key, "control_fingerprints": {name: spec.load().fingerprint() for name, spec in CONTROLS.items()}}


def _family_data(family: str, plan: FamilyPlan) -> Dataset:
    """The data a family's stages run on: the preset's generator overrides, default seed."""
    from icl_generalization.data.load import get_dataset

    return get_dataset(family, overrides=plan.data_config)


def _data(folder: Path, family: str, plan: FamilyPlan) -> dict[str, Any]:
    from icl_generalization.data.writing import write_dataset

    return {"fingerprint": write_dataset(_family_data(family, plan), folder / "data")}


def model_digest(model: str) -> dict[str, JsonValue]:
    """The model's identity beyond its name: config and weights digests of the folder it resolves to."""
    from icl_generalization.weights.base import config_sha256
    from icl_generalization.weights.default_model import resolve_model
    from icl_generalization.weights.manifest import combined_sha256

    resolved = resolve_model(model)
    folder = Path(resolved)
    if not folder.is_dir():
        # A hub id: key it by the snapshot in the local hub cache; without one the name is all there is.
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            folder = Path(snapshot_download(resolved, local_files_only=True))
        except LocalEntryNotFoundError:
            return {"hub_id": resolved, "config_sha256": None, "weights_sha256": None}
    # Hub snapshots hold links to their blobs: follow them (the checkpoint loader, which refuses links, is stricter).
    weights = {p.name: sha256_file(p) for p in sorted(folder.glob("*.safetensors"))}
    return {"config_sha256": config_sha256(folder), "weights_sha256": combined_sha256(weights) if weights else None}


def run_key(model: str, preset: Preset) -> dict[str, JsonValue]:
    """What every stage of a run shares; a stage adds its family's dataset fingerprint."""
    from icl_generalization.data.families import DEFAULT_SEED

    contents = json.dumps(asdict(preset), sort_keys=True, default=str)
    return {"model": model, "model_digest": model_digest(model), "preset": preset.name,
            "preset_sha256": sha256_of(contents), "package_version": package_version(),
            "data_seed": DEFAULT_SEED}


def _differences(recorded: Any, current: dict[str, JsonValue]) -> list[str]:
    if not isinstance(recorded, dict):
        return ["the stage recorded no key (an older icl-gen ran it)"]
    return [f"{field}: recorded {json.dumps(recorded.get(field))}, now {json.dumps(value)}"
            for field, value in current.items() if recorded.get(field) != value]


def _read_stage_marker(marker: Path) -> dict[str, Any]:
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8, or not JSON
        raise UserError(f"{marker}: not a readable stage record ({exc}); delete {marker.parent} to redo "
                        "that stage") from None
    if not isinstance(record, dict):
        raise UserError(f"{marker}: not a stage record (a JSON object); delete {marker.parent} to redo that stage")
    return record


def _refuse_changed_key(out: Path, stages: list[Stage]) -> None:
    """A resumed run with anything changed that decides a result would mix two studies in one folder: refuse."""
    for stage in stages:
        marker = out / stage.name / MARKER
        if stage.always or not marker.is_file():
            continue
        differences = _differences(_read_stage_marker(marker).get("key"), stage.key)
        if differences:
            raise UserError(f"{out}: stage {stage.name} finished with other settings than this run's "
                            f"({'; '.join(differences)}); resume with the same settings, use a new --out, or "
                            f"delete {out / stage.name} to redo that stage")


def _control_stage(name: str, model_args: str, preset: Preset, key: dict[str, JsonValue]) -> Stage:
    # Closed-book over ~180 shipped questions: cheap, and the same for every model, so no metadata and no limit.
    return Stage(name, partial(_evaluate, model_args=model_args, tasks=_control_tasks(), metadata="{}",
                               preset=preset, limit=None), control_key(key))


def plan_stages(model: str, preset: Preset, out: Path, families: list[str],
                key: dict[str, JsonValue]) -> list[Stage]:
    stages: list[Stage] = [_control_stage("eval-control/pretrained", f"pretrained={model}", preset, key)]
    for family in families:
        plan = preset.families[family]
        fkey: dict[str, JsonValue] = {**key, "dataset_fingerprint": _family_data(family, plan).fingerprint()}
        meta = _metadata(plan, preset, family)
        manifests = {kind: out / f"finetune-{kind}" / family / f"{family}-{kind}.yaml" for kind in ("ft", "aug_ft")}
        closed, both = _tasks(family, ("closed_book",)), _tasks(family, ("closed_book", "icl"))
        stages += [
            Stage(f"data/{family}", partial(_data, family=family, plan=plan), fkey),
            Stage(f"eval-pretrained/{family}", partial(_evaluate, model_args=f"pretrained={model}", tasks=both,
                                                       metadata=meta, preset=preset, limit=plan.eval_limit), fkey),
            Stage(f"finetune-ft/{family}", partial(_finetune, family=family, model=model, plan=plan, preset=preset,
                                                   kind="ft", corpus=None), fkey),
            Stage(f"eval-ft/{family}", partial(_evaluate, model_args=f"checkpoint={manifests['ft']}", tasks=closed,
                                               metadata=meta, preset=preset, limit=plan.eval_limit), fkey),
            _control_stage(f"eval-control/{family}-ft", f"checkpoint={manifests['ft']}", preset, fkey),
            Stage(f"augment/{family}", partial(_augment, family=family, model=model, plan=plan), fkey),
            Stage(f"finetune-aug_ft/{family}", partial(_finetune, family=family, model=model, plan=plan,
                                                       preset=preset, kind="aug_ft",
                                                       corpus=out / "augment" / family / "corpus.jsonl"), fkey),
            Stage(f"eval-aug_ft/{family}", partial(_evaluate, model_args=f"checkpoint={manifests['aug_ft']}",
                                                   tasks=closed, metadata=meta, preset=preset,
                                                   limit=plan.eval_limit), fkey),
            _control_stage(f"eval-control/{family}-aug_ft", f"checkpoint={manifests['aug_ft']}", preset, fkey),
        ]
        stages += _strategy_stages(model, preset, out, family, plan, fkey, meta, closed)
    stages.append(Stage("leaderboard", partial(_leaderboard, out=out, preset=preset, model=model), key, always=True))
    return stages


def _strategy_stages(model: str, preset: Preset, out: Path, family: str, plan: FamilyPlan,
                     fkey: dict[str, JsonValue], meta: str, closed: list[str]) -> list[Stage]:
    """Per strategy of the plan: its text at the matched budget, a finetune on it, a closed-book evaluation."""
    stages: list[Stage] = []
    for strategy in plan.strategies:
        name = f"{family}-{strategy}"
        manifest = out / f"finetune-strategy-{strategy}" / family / f"{name}.yaml"
        stages += [
            Stage(f"strategy-{strategy}/{family}", partial(_strategy, family=family, model=model, plan=plan,
                                                           strategy=strategy), fkey),
            Stage(f"finetune-strategy-{strategy}/{family}",
                  partial(_finetune, family=family, model=model, plan=plan, preset=preset, kind="aug_ft",
                          corpus=out / f"strategy-{strategy}" / family / "matched.jsonl", name=name), fkey),
            Stage(f"eval-strategy-{strategy}/{family}", partial(_evaluate, model_args=f"checkpoint={manifest}",
                                                                tasks=closed, metadata=meta, preset=preset,
                                                                limit=plan.eval_limit), fkey),
            _control_stage(f"eval-control/{family}-strategy-{strategy}", f"checkpoint={manifest}", preset, fkey),
        ]
    return stages


def _leaderboard(folder: Path, out: Path, preset: Preset, model: str) -> dict[str, Any]:
    from icl_generalization.analysis.compare import to_markdown, token_figure_names, write_leaderboard
    from icl_generalization.analysis.leaderboard import build_leaderboard
    from icl_generalization.analysis.orderings import evaluate as evaluate_orderings
    from icl_generalization.analysis.results import load_runs
    from icl_generalization.analysis.tokens_view import to_markdown as tokens_markdown

    # Only finished evaluations: a stage interrupted (or still running) has a folder but no marker.
    runs = load_runs(sorted(p for p in out.glob("eval-*/*") if (p / MARKER).is_file()))
    board = build_leaderboard(runs)
    board_dir = folder / "board"
    orderings = evaluate_orderings(board)
    written = write_leaderboard(board, board_dir, orderings)
    figures = {p.stem: str(p.relative_to(folder)) for p in sorted(board_dir.glob("*.png"))}
    token_figures = {family: f"board/{name}" for family, name in token_figure_names(board).items()}
    report = [f"# Study reproduced: {model}, preset {preset.name}", "",
              f"What the preset shrank: {preset.shrunk}.", "",
              to_markdown(board, figures, orderings, token_figures)]
    atomic_write_text(folder / "report.md", "\n".join(report))
    return {"files": {k: str(v) for k, v in written.items()}, "report": str(folder / "report.md"),
            "orderings": orderings.verdicts, "tokens_table": tokens_markdown(board)}


def run_reproduce(model: str, preset: Preset, out: Path, families: list[str] | None = None,
                  log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    families = families or list(preset.families)
    unknown = [f for f in families if f not in preset.families]
    if unknown:
        raise UserError(f"preset {preset.name} has no plan for {', '.join(unknown)}; "
                        f"it covers {', '.join(preset.families)}")
    # A foreign --out is refused before the model is converted and hashed for the run's key (a minute of work).
    check_output(out, "reproduce", "folder")
    key = run_key(model, preset)
    stages = plan_stages(model, preset, out, families, key)
    _refuse_changed_key(out, stages)
    with claim_folder(out, "reproduce", key, incremental=True):
        return _run_stages(out, stages, model, preset, families, log)


def _run_stages(out: Path, stages: list[Stage], model: str, preset: Preset, families: list[str],
                log: Callable[[str], None]) -> list[dict[str, Any]]:
    records = []
    for index, stage in enumerate(stages, start=1):
        folder = out / stage.name
        marker = folder / MARKER
        if marker.is_file() and not stage.always:
            record = _read_stage_marker(marker)
            log(f"[{index}/{len(stages)}] {stage.name}: done earlier, skipped")
            records.append(record)
            continue
        log(f"[{index}/{len(stages)}] {stage.name} ...")
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        outcome = stage.run(folder)
        record = {"stage": stage.name, "seconds": round(time.perf_counter() - start, 1), "key": stage.key,
                  **outcome}
        atomic_write_text(marker, json.dumps(record, indent=2) + "\n")
        log(f"[{index}/{len(stages)}] {stage.name}: done in {record['seconds']} s")
        records.append(record)
    atomic_write_text(out / "run.json", json.dumps({"model": model, "preset": preset.name, "families": families,
                                                    "shrunk": preset.shrunk, "stages": records}, indent=2) + "\n")
    return records
