"""Importer for Berglund et al.'s released reversal-curse files (``--source berglund:PATH``).

The folder is checked as a whole before anything is read: an empty or partial copy is refused with one line
that names every missing file, since a dataset built from part of the release would silently lack splits.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from icl_generalization.core.errors import DataError
from icl_generalization.data.families.reversal_curse.generator import NAME
from icl_generalization.data.records import Dataset, TestItem, TrainDoc, read_jsonl

_BERGLUND_TRAIN = {"p2d": "p2d_prompts_train.jsonl", "d2p": "d2p_prompts_train.jsonl",
                   "both": "both_prompts_train.jsonl"}
_BERGLUND_TEST = {"p2d_reverse": "p2d_reverse_prompts_test.jsonl", "p2d": "p2d_prompts_test.jsonl",
                  "d2p": "d2p_prompts_test.jsonl", "d2p_reverse": "d2p_reverse_prompts_test.jsonl"}
# The imported data's own version: it does not follow the generator's (the release's files do not change).
IMPORTER_VERSION = "berglund-1.0"


def _berglund_data_dir(root: Path) -> tuple[Path, Path]:
    """Accept the repository's ``data/reverse_experiments`` folder or one of its ``june_version_*`` folders."""
    if not root.is_dir():
        raise DataError(f"Berglund data folder not found: {root}")
    if (root / _BERGLUND_TRAIN["p2d"]).is_file():
        data, templates = root, root.parent / "templates"
    else:
        versions = sorted(p for p in root.glob("june_version_*") if p.is_dir())
        # Without a version folder the files are looked for in root itself, so the refusal lists them all.
        data, templates = (versions[-1] if versions else root), root / "templates"
    wanted = [data / f for f in (*_BERGLUND_TRAIN.values(), *_BERGLUND_TEST.values())] + [templates / "names.txt"]
    missing = [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in wanted if not p.is_file()]
    if missing:
        raise DataError(f"{root}: not a complete copy of lukasberglund/reversal_curse data/reverse_experiments; "
                        f"missing {', '.join(missing)}")
    return data, templates


def _entity(text_: str, names: list[str], where: str) -> str:
    found = [n for n in names if n in text_]
    if len(found) != 1:
        raise DataError(f"{where}: expected exactly one known name in {text_[:80]!r}, found {found}")
    return found[0]


def import_berglund(root: Path, n_choices: int = 4, seed: int = 0) -> Dataset:
    """Read Berglund et al.'s files into the project's records (distractors are drawn with ``seed``)."""
    rng = random.Random(seed)
    data, templates = _berglund_data_dir(Path(root))
    try:
        lines = (templates / "names.txt").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{templates / 'names.txt'}: cannot be read ({exc})") from None
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise DataError(f"{templates / 'names.txt'}: no names; the importer finds each record's person by name")
    train: list[TrainDoc] = []
    docs_of: dict[str, list[str]] = defaultdict(list)
    for group, filename in _BERGLUND_TRAIN.items():
        for i, row in enumerate(_rows(data / filename)):
            full = row["prompt"] + row["completion"]
            person = _entity(full, names, f"{data / filename}:{i + 1}")
            doc_id = f"{group}-{i:04d}"
            train.append(TrainDoc(id=doc_id, text=full.strip(), entities=(person,)))
            docs_of[person].append(doc_id)
    test: list[TestItem] = []
    for split, filename in _BERGLUND_TEST.items():
        rows = _rows(data / filename)
        annotated = [(row, _entity(row["prompt"] + row["completion"], names, f"{data / filename}:{i + 1}"))
                     for i, row in enumerate(rows)]
        # Distractors answer the same template for another person, so the wording gives nothing away.
        by_template: dict[str, list[str]] = defaultdict(list)
        for row, person in annotated:
            by_template[_template_key(row, person)].append(row["completion"].strip())
        for i, (row, person) in enumerate(annotated):
            answer = row["completion"].strip()
            pool = sorted(set(by_template[_template_key(row, person)]))
            if len(pool) < n_choices:
                raise DataError(f"{data / filename}: only {len(pool)} distinct answers for one template")
            options, gold = _draw_choices(answer, pool, n_choices, rng)
            test.append(TestItem(id=f"{split}-{i:04d}", split=split, prompt=row["prompt"].rstrip(),
                                 choices=tuple(" " + o for o in options), gold=gold,
                                 needs=(tuple(docs_of[person]),), entities=(person,)))
    return Dataset(family=NAME, generator_version=IMPORTER_VERSION, seed=seed,
                   config={"n_choices": n_choices}, train=tuple(train), test=tuple(test),
                   # The folder as given, resolved: the in-context tasks and the audit re-import from it.
                   source=f"berglund:{Path(root).resolve()}")


def _draw_choices(correct: str, pool: list[str], n: int, rng: random.Random) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """``correct`` and ``n - 1`` others of ``pool`` in random order, and the index of ``correct``."""
    others = rng.sample([x for x in pool if x != correct], n - 1)
    options = [correct, *others]
    rng.shuffle(options)
    return tuple(options), (options.index(correct),)


def _template_key(row: dict[str, str], person: str) -> str:
    # The template is the prompt with the person's name (if any) masked; for name-completion rows
    # the prompt holds the description instead, which is itself person-specific, so fall back to
    # grouping all rows of the file together.
    prompt = row["prompt"]
    return prompt.replace(person, "<name>") if person in prompt else "<any>"


def _rows(path: Path) -> list[dict[str, str]]:
    rows = read_jsonl(path)
    if not rows:
        raise DataError(f"{path}: no records; an empty file would leave its split or training set out")
    for i, row in enumerate(rows):
        if not isinstance(row.get("prompt"), str) or not isinstance(row.get("completion"), str):
            raise DataError(f"{path}: record {i + 1} lacks string fields 'prompt' and 'completion'")
    return rows
