import dataclasses
import random
import re
from collections import Counter
from pathlib import Path

import pytest
from conftest import BERGLUND

from icl_generalization.cli import main
from icl_generalization.core.errors import DataError
from icl_generalization.data.families import build
from icl_generalization.data.families.reversal_curse import text
from icl_generalization.data.families.reversal_curse.berglund import import_berglund
from icl_generalization.data.families.reversal_curse.checker import check_reversal_curse
from icl_generalization.data.families.reversal_curse.generator import (
    ReversalCurseConfig,
    generate,
    gold_positions,
    person_of,
)
from icl_generalization.data.records import read_dataset

# Pinned: a change to the generated data must be deliberate (bump GENERATOR_VERSION and the task version).
PINNED_FINGERPRINT = "de4023d031de6b1fc7497b2848cf6cfd6c9c5f929b2fdc06a8d362c7f9d3704a"


def test_default_shape_matches_the_study() -> None:
    ds = build("reversal_curse")
    assert len(ds.train) == 3600
    assert {s: len(ds.items(s)) for s in ds.splits} == {"p2d_reverse": 300, "p2d": 300, "d2p": 300,
                                                       "d2p_reverse": 300}
    assert all(len(i.choices) == 4 and len(i.gold) == 1 for i in ds.test)


def test_same_seed_is_byte_identical_and_pinned(tmp_path: Path) -> None:
    main(["generate", "reversal_curse", "--out", str(tmp_path / "a")])
    main(["generate", "reversal_curse", "--out", str(tmp_path / "b")])
    for name in ("train.jsonl", "test.jsonl", "dataset.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert read_dataset(tmp_path / "a").fingerprint() == PINNED_FINGERPRINT
    assert build("reversal_curse", seed=7).fingerprint() != PINNED_FINGERPRINT


def test_counts_follow_the_config() -> None:
    config = ReversalCurseConfig(people_per_set=5, train_templates=4, test_templates=3, n_choices=3)
    ds = generate(config, random.Random(0))
    # p2d and d2p people have one direction each, `both` people two.
    assert len(ds.train) == 5 * 4 * (1 + 1 + 2)
    assert len(ds.items("p2d_reverse")) == 5 * 3
    assert all(len(i.choices) == 3 for i in ds.test)


def test_test_phrasing_is_held_out() -> None:
    assert not set(text.P2D_TRAIN + text.D2P_TRAIN) & set(text.P2D_TEST + text.D2P_TEST)
    ds = build("reversal_curse")
    corpus = "\n".join(d.text for d in ds.train)
    # The words a test prompt wraps around the fact never occur in training text.
    for template in text.P2D_TEST + text.D2P_TEST:
        frame = template.split("<name>")[0].split("<description>")[0].strip()
        assert frame and frame not in corpus, frame


def test_reverse_items_ask_the_unseen_direction() -> None:
    ds = build("reversal_curse")
    docs = ds.doc_index()
    p2d = {i.entities[0]: i for i in ds.items("p2d")}
    for item in ds.items("p2d_reverse"):
        name = item.choices[item.gold[0]].strip()
        description = p2d[name].choices[p2d[name].gold[0]].strip()
        assert name not in item.prompt and description in item.prompt
        # every training document about this person states the name before the description
        for doc_id in item.needs[0]:
            assert docs[doc_id].text.index(name) < docs[doc_id].text.index(description)


def test_first_and_last_names_are_unique_and_options_share_no_name_part() -> None:
    ds = build("reversal_curse")
    names = {doc.entities[0] for doc in ds.train}
    assert len(names) == 90
    assert len({n.split()[0] for n in names}) == 90 and len({n.split()[1] for n in names}) == 90
    for split in ("p2d_reverse", "d2p"):
        for item in ds.items(split):
            parts = [set(c.split()) for c in item.choices]
            assert all(not parts[i] & parts[j] for i in range(4) for j in range(i + 1, 4)), item.id


def test_descriptions_offered_together_share_only_the_and_of() -> None:
    ds = build("reversal_curse")
    for split in ("p2d", "d2p_reverse"):
        for item in ds.items(split):
            bags = [set(re.findall(r"[a-z]+", c.lower())) for c in item.choices]
            assert all(bags[i] & bags[j] == {"the", "of"} for i in range(4) for j in range(i + 1, 4)), item.id


def test_gold_positions_are_balanced_per_split_person_and_template() -> None:
    ds = build("reversal_curse")
    for split in ds.splits:
        items = ds.items(split)
        assert Counter(i.gold[0] for i in items) == dict.fromkeys(range(4), 75), split
        for key in (person_of, lambda i: i.meta["template"]):
            per: dict[object, Counter[int]] = {}
            for item in items:
                per.setdefault(key(item), Counter()).update([item.gold[0]])
            assert all(max(c[k] for k in range(4)) - min(c[k] for k in range(4)) <= 1 for c in per.values())
    # The even spread of offsets makes the totals equal whenever a cyclic layout can, e.g. 7 people x 6 templates
    # over 3 positions (14 each) and 10 x 10 over 4 (25 each).
    for n_people, n_templates, n in ((7, 6, 3), (10, 10, 4), (30, 10, 4), (9, 5, 3)):
        positions = gold_positions(n_people, n_templates, n, random.Random(1))
        assert set(Counter(p for row in positions for p in row).values()) == {n_people * n_templates // n}


def test_option_counts_in_a_split_or_its_first_questions_tell_nothing() -> None:
    """"Most frequent in split" ties on every item: over the split, over each round of the interleaving (what a
    sweep's first 100 questions are made of), and over the two option groups a small shard holds."""
    ds = build("reversal_curse")
    for split in ds.splits:
        items = ds.items(split)
        for view in (items, items[:30], items[:100], items[60:100]):
            counts = Counter(c for item in view for c in item.choices)
            assert all(len({counts[c] for c in item.choices}) == 1 for item in view), split


def test_items_are_interleaved_by_person_and_need_every_options_documents() -> None:
    ds = build("reversal_curse")
    docs = ds.doc_index()
    for split in ds.splits:
        items = ds.items(split)
        assert len({person_of(i) for i in items[:30]}) == 30
        for item in items:
            named = [{docs[d].entities[0] for d in group} for group in item.needs]
            gold = item.choices[item.gold[0]]
            assert named[0] == {person_of(item)} and all(len(n) == 1 for n in named)
            others = [c for i, c in enumerate(item.choices) if i not in item.gold]
            if split in ("p2d_reverse", "d2p"):  # name options: each distractor's documents, in option order
                assert [n.pop() for n in named[1:]] == [c.strip() for c in others] and gold.strip() == person_of(item)


def test_checker_refuses_evidence_about_someone_else() -> None:
    ds = build("reversal_curse", overrides={"people_per_set": 10, "train_templates": 4, "test_templates": 2})
    assert check_reversal_curse(ds) == []
    item = ds.items("p2d_reverse")[0]
    stranger = next(d.id for d in ds.train if d.entities[0] not in {c.strip() for c in item.choices})
    for k in (0, 1):
        needs = tuple((*g, stranger) if i == k else g for i, g in enumerate(item.needs))
        bad = dataclasses.replace(ds, test=(dataclasses.replace(item, needs=needs), *ds.test[1:]))
        assert [p for p in check_reversal_curse(bad) if item.id in p and f"group {k + 1}" in p], k


def test_small_configs_still_offer_each_option_equally_often() -> None:
    # 4 people, 4 choices: one option group, the whole set; 7 people, 3 choices: one group of 7.
    for people, n in ((4, 4), (7, 3)):
        ds = generate(ReversalCurseConfig(people_per_set=people, train_templates=2, test_templates=3, n_choices=n),
                      random.Random(0))
        assert check_reversal_curse(ds) == []
        for split in ds.splits:
            counts = Counter(c for item in ds.items(split) for c in item.choices)
            assert set(counts.values()) == {3 * n}, (people, n, split)


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ValueError, match="n_choices"):
        ReversalCurseConfig(n_choices=1)


@pytest.mark.skipif(not BERGLUND.is_dir(), reason=f"Berglund data not present at {BERGLUND}")
def test_importer_reads_the_released_files() -> None:
    ds = import_berglund(BERGLUND)
    assert len(ds.train) == 3600
    assert len(ds.items("p2d_reverse")) == 300
    item = ds.items("p2d_reverse")[0]
    assert item.choices[item.gold[0]] == " Daphne Barrington"
    assert len(set(item.choices)) == 4
    # each reverse question has the person's training documents as its evidence
    assert all(item.needs and len(item.needs[0]) >= 30 for item in ds.items("p2d_reverse"))


def test_importer_rejects_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["generate", "reversal_curse", "--out", str(tmp_path / "o"), "--source",
                 f"berglund:{tmp_path / 'nope'}"])
    err = capsys.readouterr().err
    assert code == 2 and "Berglund data folder not found" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


BERGLUND_FILES = ("p2d_prompts_train.jsonl", "d2p_prompts_train.jsonl", "both_prompts_train.jsonl",
                  "p2d_reverse_prompts_test.jsonl", "p2d_prompts_test.jsonl", "d2p_prompts_test.jsonl",
                  "d2p_reverse_prompts_test.jsonl")


def _berglund_folder(root: Path, leave_out: tuple[str, ...] = ()) -> Path:
    """A complete (tiny) copy of the release's layout, less the files named in ``leave_out``."""
    (root / "templates").mkdir(parents=True)
    (root / "templates" / "names.txt").write_text("Ada Lovelace\n")
    data = root / "june_version_1"
    data.mkdir()
    for name in BERGLUND_FILES:
        if name not in leave_out:
            (data / name).write_text('{"prompt": "Ada Lovelace is", "completion": " x"}\n')
    return root


def test_importer_rejects_a_malformed_line(tmp_path: Path) -> None:
    root = _berglund_folder(tmp_path)
    (root / "june_version_1" / "p2d_prompts_train.jsonl").write_text(
        '{"prompt": "Ada Lovelace is", "completion": " x"}\n{oops\n')
    with pytest.raises(DataError, match=r"p2d_prompts_train\.jsonl:2"):
        import_berglund(root)


def test_importer_refuses_an_incomplete_folder_naming_what_is_missing(tmp_path: Path) -> None:
    root = _berglund_folder(tmp_path, leave_out=("d2p_prompts_test.jsonl", "both_prompts_train.jsonl"))
    with pytest.raises(DataError) as exc:
        import_berglund(root)
    message = str(exc.value)
    assert "\n" not in message
    assert "missing june_version_1/both_prompts_train.jsonl, june_version_1/d2p_prompts_test.jsonl" in message
    (root / "templates" / "names.txt").unlink()
    with pytest.raises(DataError, match=r"d2p_prompts_test\.jsonl, templates/names\.txt"):
        import_berglund(root)


def test_importer_refuses_an_empty_folder_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    code = main(["generate", "reversal_curse", "--out", str(tmp_path / "o"), "--source",
                 f"berglund:{tmp_path / 'empty'}"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert all(name in err for name in (*BERGLUND_FILES, "templates/names.txt"))


def test_importer_refuses_an_empty_file(tmp_path: Path) -> None:
    root = _berglund_folder(tmp_path)
    (root / "june_version_1" / "both_prompts_train.jsonl").write_text("\n")
    with pytest.raises(DataError, match=r"both_prompts_train\.jsonl: no records"):
        import_berglund(root)
