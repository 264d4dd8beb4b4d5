import random
from pathlib import Path

import pytest
from conftest import BERGLUND

from icl_generalization.cli import main
from icl_generalization.core.errors import DataError
from icl_generalization.data.families import build
from icl_generalization.data.families.reversal_curse import text
from icl_generalization.data.families.reversal_curse.berglund import import_berglund
from icl_generalization.data.families.reversal_curse.generator import ReversalCurseConfig, generate
from icl_generalization.data.records import read_dataset

# Pinned: a change to the generated data must be deliberate (bump GENERATOR_VERSION and the task version).
PINNED_FINGERPRINT = "a4896e0b459b72c92f55730a9f235c6c7d9b17cc70d0a0acb02ca25695e1c26c"


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
