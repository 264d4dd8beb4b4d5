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
        if args.push_to_hub:
            from .hf import push_to_hub

            push_to_hub(ds, args.push_to_hub)
    return 0


def _cmd_check_data(args: argparse.Namespace) -> int:
    from .checkers import check_dataset
    from .records import META_FILE, read_dataset

    root = Path(args.dir)
    folders = [root] if (root / META_FILE).is_file() else sorted(p.parent for p in root.glob(f"*/{META_FILE}"))
    if not folders:
        raise UserError(f"{root}: no dataset folder (written by `icl-gen generate`) here or one level below")
    failed = 0
    for folder in folders:
        ds = read_dataset(folder)
        problems = check_dataset(ds)
        print(f"{ds.family}: {'OK' if not problems else f'{len(problems)} problems'} "
              f"({len(ds.train)} documents, {len(ds.test)} items checked) {folder}")
        for problem in problems[:20]:
            print(f"  {problem}")
        failed += bool(problems)
    return 1 if failed else 0


def _cmd_lexicon_audit(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    from .datasets import FAMILIES, build
    from .default_model import resolve_model
    from .lexicon import audit, dataset_words, format_audit

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.model))
    families = [args.family] if args.family else [f for f in FAMILIES if f != "reversal_curse"]
    collisions = 0
    for name in families:
        report = audit(dataset_words(build(name, seed=args.seed)), tokenizer)
        print(f"{name}: {format_audit(report, args.verbose)}")
        collisions += len(report.collisions)
    return 1 if collisions else 0


def _cmd_eval(args: argparse.Namespace, rest: list[str]) -> int:
    from .lm_eval_cli import run_lm_eval

    return run_lm_eval(rest)


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
    p.add_argument("--push-to-hub", metavar="REPO", help="also upload as a Hugging Face dataset (needs write access)")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("check-data", help="prove a generated dataset's gold answers (DIR: one family or `all`)")
    p.add_argument("dir")
    p.set_defaults(func=_cmd_check_data)

    p = sub.add_parser("lexicon", help="nonsense-word tools")
    lex = p.add_subparsers(dest="lexicon_command", required=True, metavar="ACTION")
    p = lex.add_parser("audit", help="tokens per nonsense word for a model's tokenizer; flags collisions")
    p.add_argument("--model", default=None, help="model name or path (default: the default model)")
    p.add_argument("--family", choices=list(FAMILIES), help="one family (default: every nonsense-word family)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--verbose", action="store_true", help="list every word with its tokens")
    p.set_defaults(func=_cmd_lexicon_audit)
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
