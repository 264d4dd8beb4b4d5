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


def _cmd_compare(args: argparse.Namespace) -> int:
    from .compare import build_leaderboard, to_markdown, write_leaderboard
    from .results import load_runs

    board = build_leaderboard(load_runs(Path(p) for p in args.results), args.metric)
    print(to_markdown(board), end="")
    if args.out:
        for kind, path in write_leaderboard(board, Path(args.out)).items():
            print(f"wrote {kind}: {path}", file=sys.stderr)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from .check import CheckConfig, run_check, to_markdown, write_report

    config = CheckConfig(alpha=args.alpha, max_drop=args.max_drop, metric=args.metric, correction=args.correction,
                         allow_drift=args.allow_drift)
    report = run_check(Path(args.baseline), Path(args.candidate), config)
    print(to_markdown(report), end="")
    if args.out:
        for path in write_report(report, Path(args.out)):
            print(f"wrote {path}", file=sys.stderr)
    return report.exit_code


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

    p = sub.add_parser("compare", help="leaderboard (markdown, CSV, HTML, PNG) from lm-eval results")
    p.add_argument("results", nargs="+", help="lm-eval results files or folders (--output_path)")
    p.add_argument("--out", help="folder for leaderboard.{md,csv,html,json} and one PNG per family")
    p.add_argument("--metric", default="acc", choices=["acc", "acc_norm"])
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("check", help="CI gate: paired test of a candidate run against a baseline "
                       "(exit 0 ok, 1 regression, 2 cannot compare)")
    p.add_argument("--baseline", required=True, help="lm-eval results file or folder, run with --log_samples")
    p.add_argument("--candidate", required=True, help="lm-eval results file or folder, run with --log_samples")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of McNemar's exact test")
    p.add_argument("--max-drop", type=float, default=0.02, help="tolerated absolute accuracy drop")
    p.add_argument("--metric", default="acc", help="per-sample metric (acc, acc_norm)")
    p.add_argument("--correction", default="holm", choices=["holm", "none"], help="multiple-testing correction")
    p.add_argument("--allow-drift", action="store_true", help="drifted tasks are reported but do not fail")
    p.add_argument("--out", help="folder for check.md and check.json")
    p.set_defaults(func=_cmd_check)
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
