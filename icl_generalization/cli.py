"""The ``icl-gen`` command. Each subcommand is a small function; user errors become one line and exit 2."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import UserError

EXIT_USER_ERROR = 2


def _cmd_tasks_path(args: argparse.Namespace) -> int:
    from .paths import tasks_path

    print(tasks_path())
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from .datasets import FAMILIES
    from .harness import get_dataset
    from .records import write_dataset

    overrides = json.loads(args.config) if args.config else {}
    if not isinstance(overrides, dict):
        raise UserError("--config must be a JSON object, for example '{\"people_per_set\": 10}'")
    families = list(FAMILIES) if args.family == "all" else [args.family]
    if args.source and args.family == "all":
        raise UserError("--source applies to one family; name it instead of 'all'")
    for name in families:
        ds = get_dataset(name, args.seed, overrides, args.source)
        out = Path(args.out) / name if args.family == "all" else Path(args.out)
        fp = write_dataset(ds, out)
        counts = ", ".join(f"{split} {len(ds.items(split))}" for split in ds.splits)
        print(f"{name}: {len(ds.train)} training documents; test {counts}; fingerprint {fp[:16]} -> {out}")
    return 0


def _cmd_eval(args: argparse.Namespace, rest: list[str]) -> int:
    from .lm_eval_cli import run_lm_eval

    return run_lm_eval(rest)


def _cmd_bench_prefix_cache(args: argparse.Namespace) -> int:
    from .bench import BenchConfig, format_report, run_prefix_cache_bench, write_result

    config = BenchConfig(model=args.model, task=args.task, limit=args.limit, context_tokens=args.context_tokens,
                         device=args.device, dtype=args.dtype, stock_batch_size=args.batch_size,
                         min_tokens=args.min_tokens, batch_tokens=args.batch_tokens, threads=args.threads,
                         compare=not args.skip_compare, full_task=args.full_task)
    result = run_prefix_cache_bench(config)
    print(format_report(result))
    if args.out:
        write_result(result, Path(args.out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .datasets import DEFAULT_SEED, FAMILIES

    parser = argparse.ArgumentParser(prog="icl-gen", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("eval", help="run lm-eval with the package's model and task folder (all lm-eval options)",
                       add_help=False)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("tasks-path", help="print the task folder for `lm_eval --include_path`")
    p.set_defaults(func=_cmd_tasks_path)

    p = sub.add_parser("generate", help="write a dataset family (train/test JSONL, card, fingerprint)")
    p.add_argument("family", choices=[*FAMILIES, "all"])
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--config", help="JSON object of generator overrides")
    p.add_argument("--source", help="import instead of generating, e.g. berglund:PATH (reversal_curse only)")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("bench", help="performance benchmarks")
    bench = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    b = bench.add_parser("prefix-cache", help="stock hf scoring vs the prefix-cached model on one task, one process")
    b.add_argument("--model", help="embedded name, model folder or hub id (default: the default model)")
    b.add_argument("--task", default="icl_gen_reversal_curse_p2d_reverse_icl")
    b.add_argument("--limit", type=int, default=25, help="questions timed on both paths (default 25)")
    b.add_argument("--context-tokens", type=int, default=2200, help="the task's context_budget (default 2200)")
    b.add_argument("--device", help="default: cuda when available, else cpu")
    b.add_argument("--dtype", default="float32", help="float32 (default), bfloat16 or float16")
    b.add_argument("--batch-size", type=int, default=1, help="HFLM batch size of both paths' ordinary scoring")
    b.add_argument("--min-tokens", type=int, default=256, help="shortest shared prefix worth caching")
    b.add_argument("--batch-tokens", type=int, default=1024, help="most tokens in one cached forward")
    b.add_argument("--threads", type=int, help="torch CPU threads")
    b.add_argument("--full-task", action="store_true", help="also time the cached path alone on every question")
    b.add_argument("--skip-compare", action="store_true", help="skip the stock comparison (with --full-task)")
    b.add_argument("--out", help="write the figures as JSON here")
    b.set_defaults(func=_cmd_bench_prefix_cache)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        if argv and argv[0] == "eval":
            # Everything after `eval` belongs to lm-eval's own parser, --help included.
            return _cmd_eval(argparse.Namespace(), argv[1:])
        args = parser.parse_args(argv)
        handler: Callable[[argparse.Namespace], int] = args.func
        return handler(args)
    except UserError as exc:
        print(f"icl-gen: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("icl-gen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
