"""The ``icl-gen`` command. Each subcommand is a small function; user errors become one line and exit 2."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from icl_generalization.core.errors import EXIT_INTERNAL_ERROR, EXIT_INTERRUPTED, EXIT_USER_ERROR, UserError
from icl_generalization.core.outputs import check_output, claim_file, claim_folder

if TYPE_CHECKING:
    from pydantic import JsonValue

    from icl_generalization.data.records import Dataset

# Flags that come before the command and apply to every command (`eval` included).
DEBUG_FLAG = "--debug"
VERSION_FLAG = "--version"
EXIT_TERMINATED = 128 + signal.SIGTERM


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line naming the command and the problem (no usage block)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for dist in ("icl-generalization", "lm-eval", "transformers", "torch"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} (not installed)")
    return ", ".join(parts)


def _json_object(text: str, flag: str, example: str) -> dict[str, JsonValue]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{flag} is not valid JSON ({exc.msg} at character {exc.pos}): {text[:60]!r}") from None
    if not isinstance(value, dict):
        raise UserError(f"{flag} must be a JSON object, for example '{example}'")
    obj: dict[str, JsonValue] = value
    return obj


def _cmd_tasks_path(args: argparse.Namespace) -> int:
    from icl_generalization.core.paths import tasks_path

    print(tasks_path())
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from icl_generalization.data.families import FAMILIES
    from icl_generalization.data.load import get_dataset
    from icl_generalization.data.writing import write_dataset

    overrides = _json_object(args.config, "--config", '{"people_per_set": 10}') if args.config else {}
    families = list(FAMILIES) if args.family == "all" else [args.family]
    if args.source and args.family == "all":
        raise UserError("--source applies to one family; name it instead of 'all'")
    with contextlib.ExitStack() as stack:
        if args.family == "all":
            # The parent folder is claimed too: `generate all --out .` must not write into a folder of the
            # user's; each family's folder is then claimed by write_dataset.
            stack.enter_context(claim_folder(Path(args.out), "generate", {"family": "all", "seed": args.seed,
                                                                         "config": overrides}))
        for name in families:
            ds = get_dataset(name, args.seed, overrides, args.source)
            out = Path(args.out) / name if args.family == "all" else Path(args.out)
            if args.format == "hf":
                from icl_generalization.data.export import write_hf

                fp = write_hf(ds, out)
            else:
                fp = write_dataset(ds, out)
            counts = ", ".join(f"{split} {len(ds.items(split))}" for split in ds.splits)
            print(f"{name}: {len(ds.train)} training documents; test {counts}; fingerprint {fp[:16]} -> {out}")
            if args.push_to_hub:
                from icl_generalization.data.export import push_to_hub

                push_to_hub(ds, args.push_to_hub)
    return 0


def _cmd_augment(args: argparse.Namespace) -> int:
    from icl_generalization.data.load import get_dataset
    from icl_generalization.tasks.tokenizer import load_tokenizer
    from icl_generalization.training.augment import AugmentConfig, run_augment
    from icl_generalization.training.backends import HFBackend, VLLMBackend
    from icl_generalization.training.budget import TokenizerText
    from icl_generalization.training.strategies import get_strategy
    from icl_generalization.weights.default_model import resolve_model

    try:
        # Defaults depend on the mode; an explicit value (0 included: AugmentConfig refuses it) is never replaced.
        local = args.mode != "global"
        config = AugmentConfig(mode=args.mode,
                               outputs_per_input=(3 if local else 1) if args.outputs_per_input is None
                               else args.outputs_per_input,
                               temperature=args.temperature, top_p=args.top_p,
                               max_new_tokens=(96 if local else 256) if args.max_new_tokens is None
                               else args.max_new_tokens,
                               seed=args.seed, batch_size=args.batch_size, limit=args.limit, sample=args.sample,
                               clean=args.clean,
                               context_budget=args.context_budget)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    out = Path(args.out)
    stats_path = out.with_suffix(".stats.json")
    # Claimed before the model loads: a refused --out costs nothing.
    with claim_file(out, "augment", {"dataset": args.dataset, "model": args.model, "mode": args.mode,
                                     "seed": args.seed}, companions=[stats_path]) as owned:
        ds = get_dataset(args.dataset)
        resolved = resolve_model(args.model)
        backend = None
        if get_strategy(args.mode).uses_model:  # a model-free strategy needs only the model's tokenizer
            backend = (VLLMBackend(resolved, args.dtype) if args.backend == "vllm"
                       else HFBackend(resolved, args.device, args.dtype))
        stats = run_augment(ds, args.model, out, config, backend,
                            count_tokens=TokenizerText(load_tokenizer(resolved)).count)
        summary = {"dataset": args.dataset, "fingerprint": ds.fingerprint(), "model": args.model, "mode": args.mode,
                   "inputs": stats.inputs, "inputs_already_done": stats.inputs_skipped_as_done,
                   "outputs_written": stats.outputs_written, "new_tokens": stats.new_tokens,
                   "tokens_added": stats.tokens_added,
                   "seconds": round(stats.seconds, 1), "tokens_per_second": round(stats.tokens_per_second, 2),
                   "prefix_computations": stats.prefix_computations, "prefix_tokens": stats.prefix_tokens,
                   "dropped_by_clean": stats.dropped if config.clean else None}
        owned.write_text(stats_path, json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_check_data(args: argparse.Namespace) -> int:
    from icl_generalization.data.checkers import check_dataset
    from icl_generalization.data.records import META_FILE, read_dataset

    root = Path(args.dir)
    folders = [root] if (root / META_FILE).is_file() else sorted(p.parent for p in root.glob(f"*/{META_FILE}"))
    if not folders:
        raise UserError(f"{root}: no dataset folder (written by `icl-gen generate`) here or one level below")
    failed = 0
    for folder in folders:
        ds = read_dataset(folder)
        problems = check_dataset(ds)
        if args.shortcuts != "none":
            problems += _shortcut_audit(ds, args.shortcuts)
        print(f"{ds.family}: {'OK' if not problems else f'{len(problems)} problems'} "
              f"({len(ds.train)} documents, {len(ds.test)} items checked) {folder}")
        for problem in problems[:20]:
            print(f"  {problem}")
        failed += bool(problems)
    return 1 if failed else 0


def _shortcut_audit(ds: Dataset, scope: str) -> list[str]:
    """Print the shortcut audit's table and return its failures (check-data only reads: the card that
    `generate` wrote already holds the closed-book table)."""
    from icl_generalization.tasks.audit_views import shortcut_audit

    table, problems = shortcut_audit(ds, scope)
    print(table)
    return problems


def _cmd_lexicon_audit(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    from icl_generalization.data.families import FAMILIES, build
    from icl_generalization.data.lexicon import audit, dataset_words, format_audit
    from icl_generalization.weights.default_model import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.model))
    families = [args.family] if args.family else [f for f in FAMILIES if f != "reversal_curse"]
    collisions = 0
    for name in families:
        report = audit(dataset_words(build(name, seed=args.seed)), tokenizer)
        print(f"{name}: {format_audit(report, args.verbose)}")
        collisions += len(report.collisions)
    return 1 if collisions else 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from icl_generalization.study.presets import get_preset
    from icl_generalization.study.reproduce import run_reproduce

    preset = get_preset(args.preset)
    families = args.families.split(",") if args.families else None
    records = run_reproduce(args.model, preset, Path(args.out), families)
    print(f"report: {records[-1]['report']}")
    for verdict in records[-1]["orderings"]:
        print(f"  {verdict['family']}/{verdict['split']}: {verdict['claim']}: "
              f"{'reproduced' if verdict['holds'] else 'NOT reproduced'} ({verdict['difference']:+.3f})")
    if records[-1].get("tokens_table"):
        print("\naccuracy against tokens added:\n")
        print(records[-1]["tokens_table"], end="")
    return 0


def _cmd_eval(args: argparse.Namespace, rest: list[str]) -> int:
    from icl_generalization.study.evaluate import evaluate

    return evaluate(rest, log=lambda line: print(line, file=sys.stderr))


def _cmd_rescore(args: argparse.Namespace) -> int:
    from icl_generalization.analysis.rescore import rescore, to_json, to_markdown

    if not args.out:
        print(to_markdown(rescore(Path(args.results))), end="")
        return 0
    check_output(Path(args.out), "rescore", "folder")  # refused before any file is read
    with claim_folder(Path(args.out), "rescore", {"results": args.results}) as folder:
        results = rescore(Path(args.results), folder)
        folder.write_text("rescore.md", to_markdown(results))
        folder.write_text("rescore.json", to_json(results))
    print(to_markdown(results), end="")
    print(f"wrote {Path(args.out) / 'rescore.md'}, rescore.json and runs/ (gate-ready copies)", file=sys.stderr)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from icl_generalization.analysis.bootstrap import BootstrapConfig
    from icl_generalization.analysis.compare import to_markdown, write_leaderboard
    from icl_generalization.analysis.leaderboard import build_leaderboard
    from icl_generalization.analysis.orderings import evaluate
    from icl_generalization.analysis.results import load_runs

    bootstrap = BootstrapConfig(resamples=args.bootstrap_resamples, seed=args.bootstrap_seed)
    board = build_leaderboard(load_runs(Path(p) for p in args.results), args.metric)
    orderings = evaluate(board, bootstrap)
    print(to_markdown(board, orderings=orderings), end="")
    if args.out:
        inputs = {"results": list(args.results), "metric": args.metric,
                  "bootstrap_resamples": bootstrap.resamples, "bootstrap_seed": bootstrap.seed}
        with claim_folder(Path(args.out), "compare", inputs) as folder:
            written = write_leaderboard(board, folder.root, orderings)
            folder.record(*written.values())
        for kind, path in written.items():
            print(f"wrote {kind}: {path}", file=sys.stderr)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from icl_generalization.analysis.check_report import to_markdown, write_report
    from icl_generalization.analysis.gate import CheckConfig, run_check

    config = CheckConfig(alpha=args.alpha, max_drop=args.max_drop, metric=args.metric, correction=args.correction,
                         allow_drift=args.allow_drift)
    if args.out:
        check_output(Path(args.out), "check", "folder")  # refused before any report is printed
    report = run_check(Path(args.baseline), Path(args.candidate), config)
    print(to_markdown(report), end="")
    if args.out:
        with claim_folder(Path(args.out), "check", {"baseline": args.baseline, "candidate": args.candidate,
                                                    "metric": args.metric}) as folder:
            paths = write_report(report, folder.root)
            folder.record(*paths)
        for path in paths:
            print(f"wrote {path}", file=sys.stderr)
    if report.exit_code != 0:
        # The verdict in one line where a CI log shows errors; the report above holds every reason.
        verdict = report.verdict.removesuffix(" (reasons below)")
        print(f"icl-gen check: {verdict} (the report on stdout lists every reason)", file=sys.stderr)
    return report.exit_code


def _cmd_finetune(args: argparse.Namespace) -> int:
    from icl_generalization.training.corpus import read_corpus
    from icl_generalization.training.finetune import FinetuneRequest, is_main_process, run_finetune
    from icl_generalization.training.recipes import load_recipe

    recipe = load_recipe(args.recipe).with_overrides(max_steps=args.max_steps, seed=args.seed)
    request = FinetuneRequest(
        name=args.name, recipe=recipe, dataset=args.dataset or recipe.dataset or "",
        base=args.base or recipe.base or "",
        augmented=Path(args.augmented) if args.augmented else None, out=Path(args.out) if args.out else None,
        manifest=Path(args.manifest) if args.manifest else None, resume=args.resume, data_seed=args.data_seed,
        progress=not args.no_progress)
    if request.augmented:
        # A corpus that cannot be trained on is refused before any output is claimed (and marked as ours).
        read_corpus(request.augmented)
    with contextlib.ExitStack() as stack:
        if is_main_process():  # only the main process writes the run's files; the others would contend for the lock
            inputs = {"name": request.name, "recipe": args.recipe, "dataset": request.dataset, "base": request.base}
            check_output(request.run_dir, "finetune", "folder")
            check_output(request.manifest_path, "finetune", "file")
            # Incremental: a run folder keeps its checkpoints for --resume (run_finetune checks they match).
            stack.enter_context(claim_folder(request.run_dir, "finetune", inputs, incremental=True))
            stack.enter_context(claim_file(request.manifest_path, "finetune", inputs))
        manifest = run_finetune(request)
    if manifest:  # only the main process of a multi-process run writes and reports
        print(f"{manifest['name']}: {manifest['kind']} ({manifest['method']}) on {manifest['base']['name']}, "
              f"{manifest['steps']} steps in {manifest['training_seconds']} s, final loss {manifest['final_loss']}; "
              f"adapter sha256 {manifest['adapter']['sha256'][:16]} -> {request.manifest_path}")
    return 0


def _cmd_bench_prefix_cache(args: argparse.Namespace) -> int:
    from icl_generalization.core.validation import non_negative_float, positive_int
    from icl_generalization.scoring.bench import (
        BenchConfig,
        format_report,
        parse_lengths,
        run_prefix_cache_bench,
        write_result,
    )

    limit = None if str(args.limit).lower() == "all" else positive_int(args.limit, "limit")
    config = BenchConfig(model=args.model, random_config=args.random_config, task=args.task,
                         lengths=parse_lengths(args.lengths), limit=limit, stock_questions=args.stock_questions,
                         device=args.device, dtype=args.dtype, stock_batch_size=args.batch_size,
                         min_tokens=args.min_tokens, batch_tokens=args.batch_tokens,
                         batch_groups=args.batch_groups, threads=args.threads,
                         recheck_nats=None if args.recheck_nats is None
                         else non_negative_float(args.recheck_nats, "recheck-nats"))
    if not args.out:
        print(format_report(run_prefix_cache_bench(config)))
        return 0
    # Claimed before the benchmark runs: a refused --out should not cost the benchmark's minutes.
    with claim_file(Path(args.out), "bench prefix-cache", {"model": args.model, "task": args.task,
                                                           "lengths": args.lengths, "limit": args.limit}) as owned:
        result = run_prefix_cache_bench(config)
        print(format_report(result))
        write_result(result, owned)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from icl_generalization.data.families import DEFAULT_SEED, FAMILIES
    from icl_generalization.training.strategies import STRATEGIES

    parser = _OneLineParser(prog="icl-gen", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(DEBUG_FLAG, action="store_true", help="show the traceback of an unexpected error")
    parser.add_argument(VERSION_FLAG, action="store_true",
                        help="print the versions of the package, lm-eval, transformers and torch")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("eval", help="run lm-eval with the package's model and task folder (all lm-eval options)",
                       add_help=False)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("augment", help="write the model's in-context inferences about a training set (JSONL)")
    p.add_argument("--dataset", required=True, choices=list(FAMILIES))
    p.add_argument("--mode", choices=list(STRATEGIES), default="local",
                   help="augmentation strategy: " + "; ".join(f"{s.name}: {s.description}"
                                                               for s in STRATEGIES.values()))
    p.add_argument("--model", default=None, help="embedded name, folder or hub id (default: smollm2-135m)")
    p.add_argument("--out", required=True, help="JSONL corpus; an existing one is resumed")
    p.add_argument("--outputs-per-input", type=int, help="samples per input (default 3 local, 1 global)")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-new-tokens", type=int, help="default 96 local, 256 global")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--limit", type=int, help="augment only the first N documents")
    p.add_argument("--sample", type=int, help="augment a seeded random sample of N documents")
    p.add_argument("--clean", action="store_true", help="drop empty, runaway and duplicate outputs (counted)")
    p.add_argument("--context-budget", type=int, help="global mode: tokens for the corpus part")
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf")
    p.add_argument("--device", help="default: cuda when available, else cpu")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"])
    p.set_defaults(func=_cmd_augment)

    p = sub.add_parser("reproduce", help="the whole study on one model: data, evaluations, finetuning, "
                       "augmentation, leaderboard (resumable)")
    p.add_argument("--model", default="smollm2-135m", help="embedded name, folder or hub id")
    p.add_argument("--preset", default="cpu-small", help="cpu-small, paper or smoke")
    p.add_argument("--out", default="runs/reproduce", help="run folder; an existing one is resumed")
    p.add_argument("--families", help="comma-separated subset of the preset's families")
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("tasks-path", help="print the task folder for `lm_eval --include_path`")
    p.set_defaults(func=_cmd_tasks_path)

    p = sub.add_parser("generate", help="write a dataset family (train/test JSONL, card, fingerprint)")
    p.add_argument("family", choices=[*FAMILIES, "all"])
    p.add_argument("--out", required=True, help="output folder: new, empty, or written by generate before")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--config", help="JSON object of generator overrides")
    p.add_argument("--source", help="import instead of generating, e.g. berglund:PATH (reversal_curse only)")
    p.add_argument("--format", choices=["jsonl", "hf"], default="jsonl",
                   help="jsonl: train/test JSONL, card, graph (what check-data reads); hf: a datasets.DatasetDict "
                   "(save_to_disk) with a hub dataset card")
    p.add_argument("--push-to-hub", metavar="REPO", help="also upload as a Hugging Face dataset (needs write access)")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("check-data", help="prove a generated dataset's gold answers (DIR: one family or `all`)")
    p.add_argument("dir")
    p.add_argument("--shortcuts", nargs="?", const="all", choices=["closed_book", "all", "none"],
                   default="closed_book",
                   help="the model-free shortcut audit (default closed_book; all: also in context and at every sweep "
                   "length, with the default model's tokenizer; none: gold answers only); reads, never writes")
    p.set_defaults(func=_cmd_check_data)

    p = sub.add_parser("lexicon", help="nonsense-word tools")
    lex = p.add_subparsers(dest="lexicon_command", required=True, metavar="ACTION")
    p = lex.add_parser("audit", help="tokens per nonsense word for a model's tokenizer; flags collisions")
    p.add_argument("--model", default=None, help="model name or path (default: the default model)")
    p.add_argument("--family", choices=list(FAMILIES), help="one family (default: every nonsense-word family)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--verbose", action="store_true", help="list every word with its tokens")
    p.set_defaults(func=_cmd_lexicon_audit)
    p = sub.add_parser("compare", help="leaderboard (markdown, CSV, HTML, PNG) from lm-eval results")
    p.add_argument("results", nargs="+", help="lm-eval results files or folders (--output_path)")
    p.add_argument("--out", help="folder for leaderboard.{md,csv,html,json} and one PNG per family")
    p.add_argument("--metric", default="acc", choices=["acc", "acc_norm"])
    p.add_argument("--bootstrap-resamples", type=int, default=9999,
                   help="resamples of the cluster bootstrap behind each difference's 95%% CI (default 9999)")
    p.add_argument("--bootstrap-seed", type=int, default=0, help="seed of that bootstrap (default 0)")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("rescore", help="acc, acc_norm, calibrated acc and per-form scores recomputed from a run's "
                       "per-sample logs, without the model")
    p.add_argument("results", help="lm-eval results file or folder (--output_path), run with --log_samples")
    p.add_argument("--out", help="folder for rescore.{md,json} and gate-ready copies of the runs (runs/)")
    p.set_defaults(func=_cmd_rescore)

    p = sub.add_parser("check", help="CI gate: paired test of a candidate run against a baseline "
                       "(exit 0 ok, 1 regression, 2 cannot compare)")
    p.add_argument("--baseline", required=True, help="lm-eval results file or folder, run with --log_samples")
    p.add_argument("--candidate", required=True, help="lm-eval results file or folder, run with --log_samples")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of McNemar's exact test")
    p.add_argument("--max-drop", type=float, default=0.02, help="tolerated absolute accuracy drop")
    p.add_argument("--metric", default="acc",
                   help="per-sample metric (acc, acc_norm; acc_calibrated on runs written by rescore --out)")
    p.add_argument("--correction", default="holm", choices=["holm", "none"], help="multiple-testing correction")
    p.add_argument("--allow-drift", action="store_true",
                   help="compare tasks whose version or prompts changed (noted); different data never")
    p.add_argument("--out", help="folder for check.md and check.json")
    p.set_defaults(func=_cmd_check)
    p = sub.add_parser("finetune", help="finetune a checkpoint (LoRA or full) and write its manifest")
    p.add_argument("--recipe", required=True, help="recipe name in adapters/recipes/ or a YAML path")
    p.add_argument("--name", required=True, help="checkpoint name (manifest adapters/NAME.yaml, run folder runs/NAME)")
    p.add_argument("--dataset", choices=list(FAMILIES), help="training family (default: the recipe's)")
    p.add_argument("--base", help="base model: embedded name, folder or hub id (default: the recipe's)")
    p.add_argument("--augmented", help="augmented corpus (JSONL with a 'text' field): trains an aug_ft checkpoint")
    p.add_argument("--max-steps", type=int, help="step budget (default: the recipe's)")
    p.add_argument("--seed", type=int, help="training seed (default: the recipe's)")
    p.add_argument("--data-seed", type=int, default=DEFAULT_SEED, help="seed of the generated dataset")
    p.add_argument("--out", help="run folder (default runs/NAME)")
    p.add_argument("--manifest", help="manifest path (default adapters/NAME.yaml)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_finetune)
    p = sub.add_parser("bench", help="performance benchmarks")
    bench = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    b = bench.add_parser("prefix-cache", help="stock hf scoring vs the prefix-cached model over context lengths")
    b.add_argument("--model", help="embedded name, model folder or hub id (default: the default model)")
    b.add_argument("--random-config", help="time this config with random weights instead, tokenized by --model's "
                   "tokenizer: tiny, llama-1b or llama-7b")
    b.add_argument("--task", default="icl_gen_reversal_curse_p2d_reverse_icl")
    b.add_argument("--lengths", default="1024,2048,4096,full",
                   help="context budgets in tokens, comma-separated; full = the model's window (default "
                   "1024,2048,4096,full)")
    b.add_argument("--limit", default="25", help="questions on the cached path per length, or all (default 25)")
    b.add_argument("--stock-questions", type=int, default=2,
                   help="questions timed on the stock path per length, scaled to --limit (default 2)")
    b.add_argument("--device", help="default: cuda when available, else cpu")
    b.add_argument("--dtype", default="float32", help="float32 (default), bfloat16 or float16")
    b.add_argument("--batch-size", type=int, default=1, help="HFLM batch size of both paths' ordinary scoring")
    b.add_argument("--min-tokens", type=int, default=256, help="shortest shared prefix worth caching")
    b.add_argument("--batch-tokens", type=int, default=1024, help="most tokens in one cached forward")
    b.add_argument("--batch-groups", type=int, default=None,
                   help="most contexts scored side by side in one cached forward (default: 8 on CUDA, 1 on CPU)")
    b.add_argument("--recheck-nats", default=None,
                   help="in half precision, questions within this many nats per scored token are scored again the "
                   "stock way (default: 0.05 in bf16, 0.01 in fp16; 0: off)")
    b.add_argument("--threads", type=int, help="torch CPU threads")
    b.add_argument("--out", help="write the figures as JSON here")
    b.set_defaults(func=_cmd_bench_prefix_cache)
    return parser


def _run(argv: list[str]) -> int:
    if argv and argv[0] == "eval":
        # Everything after `eval` belongs to lm-eval's own parser, --help included.
        return _cmd_eval(argparse.Namespace(), argv[1:])
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    return handler(args)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SIGTERM becomes an exception, as SIGINT already is, so every atomic write's cleanup runs on the way out
    # and no temporary is left behind (SIGKILL cannot be caught: the next run's claim sweeps those).
    raise SystemExit(EXIT_TERMINATED)


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Install :func:`_exit_on_sigterm` while a command runs; restore the caller's handler after (``main`` is
    also called in-process, by tests and scripts). Signal handlers can be set from the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """The one place where every error of every command becomes a message and an exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv[:1]
    argv = argv[1:] if debug else argv
    if argv[:1] == [VERSION_FLAG]:
        print(_versions())
        return 0
    with _sigterm_unwinds():
        return _dispatch(argv, debug)


def _dispatch(argv: list[str], debug: bool) -> int:
    try:
        return _run(argv)
    except UserError as exc:
        print(f"icl-gen: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("icl-gen: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `icl-gen compare ... | head`: the reader left; nothing is wrong.
        return 0
    except OSError as exc:
        # The machine's answer about a path the user named (permission, disk full, a file where a folder is
        # wanted...): the user's to fix, not a bug.
        where = f" {exc.filename}" if exc.filename else ""
        print(f"icl-gen: error:{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:
        if debug:
            raise
        print(f"icl-gen: internal error ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
              f"this is a bug: please report it with the output of `icl-gen --debug "
              f"{' '.join(argv[:1])} ...`", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
