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


def _cmd_finetune(args: argparse.Namespace) -> int:
    from .finetune import FinetuneRequest, run_finetune
    from .recipes import load_recipe

    recipe = load_recipe(args.recipe).with_overrides(max_steps=args.max_steps, seed=args.seed)
    request = FinetuneRequest(
        name=args.name, recipe=recipe, dataset=args.dataset or recipe.dataset or "",
        base=args.base or recipe.base or "",
        augmented=Path(args.augmented) if args.augmented else None, out=Path(args.out) if args.out else None,
        manifest=Path(args.manifest) if args.manifest else None, resume=args.resume, data_seed=args.data_seed,
        progress=not args.no_progress)
    manifest = run_finetune(request)
    if manifest:  # only the main process of a multi-process run writes and reports
        print(f"{manifest['name']}: {manifest['kind']} ({manifest['method']}) on {manifest['base']['name']}, "
              f"{manifest['steps']} steps in {manifest['training_seconds']} s, final loss {manifest['final_loss']}; "
              f"adapter sha256 {manifest['adapter']['sha256'][:16]} -> {request.manifest_path}")
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
