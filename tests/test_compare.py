"""``icl-gen compare`` on real lm-eval output (lm-eval's dummy model on our tasks) and planted copies of it."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lm_eval_runs import TASKS, cluster_by, lm_eval_run, planted_copy, results_file, samples_file, without_clusters

from icl_generalization.analysis.compare import to_csv, to_markdown, write_leaderboard
from icl_generalization.analysis.leaderboard import build_leaderboard, condition_of
from icl_generalization.analysis.results import load_runs
from icl_generalization.cli import main
from icl_generalization.core.errors import UserError
from icl_generalization.data.families import FAMILIES

CLOSED, ICL = TASKS
# The reversal curse's task version, as the dummy runs record it.
VERSION = FAMILIES["reversal_curse"].task_version


def _as_checkpoint(name: str, kind: str, acc: float) -> Any:
    """Turn a copy into a closed-book evaluation of a finetuned checkpoint, as the adapter loader records it."""
    def edit(data: dict[str, Any]) -> None:
        data["config"].update(checkpoint=name, checkpoint_kind=kind, checkpoint_sha256="ab" * 32)
        for section in ("results", "configs", "versions"):
            data[section].pop(ICL)
        data["results"][CLOSED]["acc,none"] = acc
        data["results"][CLOSED]["acc_stderr,none"] = (acc * (1 - acc) / 23) ** 0.5
    return edit


@pytest.fixture(scope="module")
def four_conditions(dummy_run: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    # Logs without per-item clusters, as older runs wrote them: lm-eval's binomial errors stand in.
    root = tmp_path_factory.mktemp("four")
    base = planted_copy(dummy_run, root / "base", edit_samples=without_clusters)
    ft = planted_copy(dummy_run, root / "ft", _as_checkpoint("ckpt-ft", "ft", 0.125), without_clusters)
    aug = planted_copy(dummy_run, root / "aug", _as_checkpoint("ckpt-aug", "aug_ft", 0.875), without_clusters)
    return [base, ft, aug]


def _scores(folder: Path, task: str) -> tuple[float, float]:
    entry = json.loads(results_file(folder).read_text())["results"][task]
    return entry["acc,none"], entry["acc_stderr,none"]


def test_leaderboard_rows_cells_and_chance(four_conditions: list[Path]) -> None:
    board = build_leaderboard(load_runs(four_conditions))
    labels = [r.label for r in board.rows]
    assert labels == ["dummy · pretrained", "dummy · ICL", "dummy + ckpt-ft · FT", "dummy + ckpt-aug · augmented FT"]
    assert [c.label for c in board.columns] == ["reversal_curse/p2d_reverse"]
    markdown = to_markdown(board)
    base, se = _scores(four_conditions[0], CLOSED)
    icl, icl_se = _scores(four_conditions[0], ICL)
    # These logs have no per-item clusters: lm-eval's error stands in, marked as such.
    assert f"| dummy | pretrained | {base:.3f} ± {se:.3f} (binomial) |" in markdown
    assert f"| dummy | ICL | {icl:.3f} ± {icl_se:.3f} (binomial) |" in markdown
    assert f"| dummy + ckpt-ft | FT | 0.125 ± {(0.125 * 0.875 / 23) ** 0.5:.3f} (binomial) |" in markdown
    assert "| dummy + ckpt-aug | augmented FT | 0.875 ±" in markdown
    # Reversal-curse items have four names and one gold: chance comes from the logged items.
    assert "| *chance* | | 0.250 |" in markdown
    fingerprint = json.loads(results_file(four_conditions[0]).read_text())["configs"][CLOSED]["metadata"][
        "provenance"]["fingerprint"]
    assert fingerprint[:16] in markdown


def test_csv_matches_the_results(four_conditions: list[Path]) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(build_leaderboard(load_runs(four_conditions))))))
    col = "reversal_curse/p2d_reverse"
    got = {(r["model"], r["checkpoint"], r["condition"]): float(r[f"{col} acc"]) for r in rows if r[f"{col} acc"]}
    assert got == {("dummy", "", "pretrained"): _scores(four_conditions[0], CLOSED)[0],
                   ("dummy", "", "ICL"): _scores(four_conditions[0], ICL)[0],
                   ("dummy", "ckpt-ft", "FT"): 0.125, ("dummy", "ckpt-aug", "augmented FT"): 0.875,
                   ("chance", "", ""): 0.25}
    assert {r[f"{col} n"] for r in rows if r["model"] != "chance"} == {"24"}


def test_cli_writes_markdown_csv_html_and_png(four_conditions: list[Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import matplotlib.image

    out = tmp_path / "board"
    assert main(["compare", *map(str, four_conditions), "--out", str(out)]) == 0
    assert "| dummy + ckpt-aug | augmented FT | 0.875" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [".icl-gen-output.json", "leaderboard.csv", "leaderboard.html",
                                                      "leaderboard.json", "leaderboard.md", "orderings.csv",
                                                      "reversal_curse.png"]
    image = matplotlib.image.imread(out / "reversal_curse.png")
    pixels = {tuple(round(float(v) * 255) for v in px[:3]) for px in image.reshape(-1, image.shape[2])}
    # One bar colour per condition (pretrained grey, ICL blue, FT orange, augmented FT green).
    for colour in ((0x9E, 0x9E, 0x9E), (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E), (0x2C, 0xA0, 0x2C)):
        assert colour in pixels
    # A second compare may replace its own folder, never a foreign one.
    assert main(["compare", str(four_conditions[0]), "--out", str(out)]) == 0
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["compare", str(four_conditions[0]), "--out", str(foreign)]) == 2
    assert (foreign / "notes.txt").read_text() == "mine"


def test_refuses_different_fingerprints(dummy_run: Path, other_data_run: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    other = other_data_run
    with pytest.raises(UserError, match="reversal_curse was evaluated on different data") as info:
        build_leaderboard(load_runs([dummy_run, other]))
    assert str(results_file(dummy_run)) in str(info.value) and str(results_file(other)) in str(info.value)
    assert main(["compare", str(dummy_run), str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("icl-gen: error: cannot put these results side by side") and err.count("\n") == 1


def test_refuses_different_task_versions(dummy_run: Path, tmp_path: Path) -> None:
    def bump(data: dict[str, Any]) -> None:
        data["versions"][ICL] = 2.0
    bumped = planted_copy(dummy_run, tmp_path / "v2", bump)
    with pytest.raises(UserError, match=f"task {ICL} has different versions.*version {VERSION} in .*version 2.0 in"):
        build_leaderboard(load_runs([dummy_run, bumped]))


def test_later_run_supersedes_and_other_tasks_are_skipped(dummy_run: Path, tmp_path: Path) -> None:
    def rerun(data: dict[str, Any]) -> None:
        data["date"] += 60
        data["results"][CLOSED]["acc,none"] = 0.75
        data["results"]["arc_easy"] = {"acc,none": 0.5}
        data["configs"]["arc_easy"] = {"task": "arc_easy", "metadata": {"version": 1.0}}
    later = planted_copy(dummy_run, tmp_path / "later", rerun)
    board = build_leaderboard(load_runs([later, dummy_run]))
    assert [c.value for (r, _), c in board.cells.items() if r.condition == "pretrained"] == [0.75]
    assert any("superseded" in n for n in board.notes)
    assert any("arc_easy" in n for n in board.notes)


def test_condition_names(dummy_run: Path, tmp_path: Path) -> None:
    def peft_only(data: dict[str, Any]) -> None:
        data["config"]["model_args"] = "pretrained=/models/base-7b,peft=/adapters/run-3"
    (run,) = load_runs([planted_copy(dummy_run, tmp_path / "peft", peft_only)])
    assert (run.model, run.checkpoint) == ("base-7b", "run-3")
    assert condition_of(run, run.tasks[CLOSED]) == "FT"
    assert condition_of(run, run.tasks[ICL]) == "ICL"


def test_bad_inputs_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_runs([tmp_path / "nope"])
    with pytest.raises(UserError, match=r"no lm-eval results file \(results_\*.json\)"):
        load_runs([tmp_path])
    bad = tmp_path / "results_x.json"
    bad.write_text("{}")
    with pytest.raises(UserError, match="not an lm-eval results file"):
        load_runs([bad])


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("chromium is not installed (`make test` installs it: apt-get install chromium)")
    return found


def _headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120, check=True)


def test_html_page_renders_in_headless_chromium(four_conditions: list[Path], tmp_path: Path) -> None:
    import matplotlib.image

    browser = _chromium()
    board = build_leaderboard(load_runs(four_conditions))
    out = tmp_path / "board"
    page = write_leaderboard(board, out)["html"]
    dom = _headless(browser, tmp_path / "profile-dom", "--dump-dom", page.as_uri()).stdout
    table = re.search(r'<table class="leaderboard" data-family="reversal_curse">.*?</table>', dom, re.S)
    assert table, dom[:500]
    rows = re.findall(r'<tr data-row="([^"]+)">(.*?)</tr>', table.group(0), re.S)
    assert [label for label, _ in rows] == [r.label for r in board.rows]
    texts = {label: re.sub(r"<[^>]+>", "|", body) for label, body in rows}
    assert "0.875 ±" in texts["dummy + ckpt-aug · augmented FT"]
    assert "0.125 ±" in texts["dummy + ckpt-ft · FT"]
    assert len(re.findall(r'<img alt="reversal_curse" src="data:image/png;base64,', dom)) == 1
    shot = tmp_path / "screenshot.png"
    _headless(browser, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1100,900",
              page.as_uri())
    image = matplotlib.image.imread(shot)
    assert image.shape[:2] == (900, 1100)
    top = image[:300, :, :3]
    # The table's text is drawn near the top (dark pixels on white), and the embedded figure's
    # bars show their condition colours further down: the page rendered, images included.
    assert (top.sum(axis=2) < 1.0).sum() > 500
    pixels = {tuple(round(float(v) * 255) for v in px) for px in image[:, :, :3].reshape(-1, 3)}
    assert (0x2C, 0xA0, 0x2C) in pixels and (0x1F, 0x77, 0xB4) in pixels


@pytest.mark.slow
def test_tiny_model_beside_the_dummy_and_gated_against_it(dummy_run: Path, tiny_model_path: Path,
                                                          tmp_path_factory: pytest.TempPathFactory,
                                                          default_model_path: Path, tmp_path: Path) -> None:
    """The package's own model class end to end: rows named from ``pretrained``, same data as the dummy run,
    and the two models' per-sample logs pair item for item (same prompts), so the gate compares them."""
    from icl_generalization.analysis.gate import run_check

    tiny = lm_eval_run("tiny", tmp_path_factory.getbasetemp() / "lm_eval_runs", default_model_path, tiny_model_path)
    board = build_leaderboard(load_runs([dummy_run, tiny]))
    name = tiny_model_path.name
    assert [r.label for r in board.rows] == ["dummy · pretrained", "dummy · ICL", f"{name} · pretrained",
                                             f"{name} · ICL"]
    write_leaderboard(board, tmp_path / "board")
    assert (tmp_path / "board" / "reversal_curse.png").stat().st_size > 5000
    report = run_check(dummy_run, tiny)
    assert {t.status for t in report.tasks} <= {"ok", "regression", "drop-not-significant"}
    assert all(t.n_paired == 24 for t in report.tasks)
    # The same run on both sides cannot be judged; a copy of it is a separate run with equal scores.
    assert run_check(tiny, tiny).exit_code == 2
    assert run_check(tiny, shutil.copytree(tiny, tmp_path / "tiny-copy")).exit_code == 0


def test_pretrained_above_chance_is_flagged_as_contamination(dummy_run: Path, tmp_path: Path) -> None:
    from scipy.stats import binom

    def guessable(data: dict[str, Any]) -> None:
        data["results"][CLOSED]["acc,none"] = 0.5  # 12 of 24 against a chance of 1/4
    board = build_leaderboard(load_runs([planted_copy(dummy_run, tmp_path / "guessable", guessable)]))
    cells = {r.condition: cell for (r, _), cell in board.cells.items()}
    assert cells["pretrained"].above_chance_p == pytest.approx(binom.sf(11, 24, 0.25))
    assert cells["pretrained"].contaminated and cells["ICL"].above_chance_p is None  # only unexposed rows
    markdown = to_markdown(board)
    assert "| dummy | pretrained | 0.500 ± " in markdown and " † |" in markdown
    assert "guessable without the training data" in markdown
    # The real dummy run (random scores) is not flagged.
    clean = build_leaderboard(load_runs([dummy_run]))
    assert not any(c.contaminated for c in clean.cells.values())


def test_items_sharing_prompts_count_once_in_the_contamination_test(dummy_run: Path, tmp_path: Path) -> None:
    from scipy.stats import binom

    def half_right(items: int, prompts: int) -> Any:
        def edit(data: dict[str, Any]) -> None:
            data["results"][CLOSED]["acc,none"] = 0.5
            data["configs"][CLOSED]["metadata"]["provenance"].update(n_items=items, n_prompts=prompts)
        return edit

    def pretrained_cell(folder: Path) -> Any:
        board = build_leaderboard(load_runs([folder]))
        return board, next(c for (r, _), c in board.cells.items() if r.condition == "pretrained")

    # 12 of 24 right is significant over 24 independent items, not over the 8 prompts they share.
    board, cell = pretrained_cell(planted_copy(dummy_run, tmp_path / "eight", half_right(24, 8)))
    assert cell.prompts == 8 and cell.above_chance_p == pytest.approx(binom.sf(3, 8, 0.25))
    assert not cell.contaminated and not any("guessable" in n for n in board.notes)
    # --limit kept 24 of a split's 300 items on 100 prompts: the share of distinct prompts is scaled to them.
    _, cell = pretrained_cell(planted_copy(dummy_run, tmp_path / "limited", half_right(300, 100)))
    assert cell.prompts == 8
    # Recorded by the loader: the real run's closed-book items each have their own prompt, so the test is the
    # plain one over items.
    _, cell = pretrained_cell(dummy_run)
    assert cell.prompts == 24


HOSTILE_FAMILY = "../../escaped"
HOSTILE_SPLIT = "p2d|<img src=x onerror=alert(1)>"
HOSTILE_MODEL = '=HYPERLINK("http://evil.example","click")'


@pytest.fixture()
def hostile_run(dummy_run: Path, tmp_path: Path) -> Path:
    """Real results whose names (family, split, model, checkpoint) are attacks on paths, CSV and markup."""
    def hostile(data: dict[str, Any]) -> None:
        for name in TASKS:
            data["configs"][name]["metadata"]["provenance"].update(family=HOSTILE_FAMILY, split=HOSTILE_SPLIT)
        data["config"].update(model_args={"pretrained": HOSTILE_MODEL}, checkpoint="@SUM(A1)|`x`[y](z)",
                              checkpoint_kind="ft")
    return planted_copy(dummy_run, tmp_path / "hostile", hostile)


def test_names_from_results_never_become_paths_or_formulas(hostile_run: Path, tmp_path: Path) -> None:
    board = build_leaderboard(load_runs([hostile_run]))
    out = tmp_path / "nest" / "board"
    written = write_leaderboard(board, out)
    assert written[f"png:{HOSTILE_FAMILY}"] == out / "escaped.png"
    assert sorted(p.name for p in out.iterdir()) == ["escaped.png", "leaderboard.csv", "leaderboard.html",
                                                      "leaderboard.json", "leaderboard.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile", "nest"]  # nothing escaped the folder
    rows = list(csv.reader(io.StringIO((out / "leaderboard.csv").read_text())))
    texts = [cell for row in rows for cell in row]
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in texts)
    assert f"'{HOSTILE_MODEL}" in texts and "'@SUM(A1)|`x`[y](z)" in texts
    # The value, stderr and n columns; the appended stderr kind columns are words of ours.
    numbers = [float(cell) for row in rows[1:] for cell in row[3:3 + 3 * len(board.columns)] if cell]
    assert numbers and all(0 <= n <= 24 for n in numbers)  # numbers stay numbers


def test_markdown_and_html_show_hostile_names_literally(hostile_run: Path) -> None:
    from icl_generalization.analysis.html_report import to_html

    board = build_leaderboard(load_runs([hostile_run]))
    markdown = to_markdown(board)
    assert "<img" not in markdown and "&lt;img src=x onerror=alert(1)&gt;" in markdown
    header = next(line for line in markdown.splitlines() if line.startswith("| model | condition |"))
    assert header == r"| model | condition | p2d\|&lt;img src=x onerror=alert(1)&gt; |"
    row = next(line for line in markdown.splitlines() if "HYPERLINK" in line)
    assert len(re.findall(r"(?<!\\)\|", row)) == 4  # model, condition, one score: no injected column
    assert r"@SUM(A1)\|\`x\`\[y\](z)" in row
    page = to_html(board, {})
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'id="family-../../escaped"' in page  # an attribute value, quoted and escaped: inert


def test_safe_text_helpers(tmp_path: Path) -> None:
    from icl_generalization.analysis.safe_text import csv_text, inside, markdown_code, unique_slugs

    assert unique_slugs(["reversal_curse", "a/b", "a b", "../..", ""]) == {
        "reversal_curse": "reversal_curse", "a/b": "a-b", "a b": "a-b-2", "../..": "unnamed", "": "unnamed-2"}
    assert inside(tmp_path, "x.png") == (tmp_path / "x.png").resolve()
    for escape in ("../x.png", "/etc/x.png", "a/b.png"):
        with pytest.raises(UserError, match="outside"):
            inside(tmp_path, escape)
    assert [csv_text(v) for v in ("=1+1", "+1", "-0.1", "@x", "\tx", "\rx", "ok", "")] == [
        "'=1+1", "'+1", "'-0.1", "'@x", "'\tx", "'\rx", "ok", ""]
    assert markdown_code("results/run_1") == "`results/run_1`"
    assert markdown_code("a`b") == "``a`b``" and markdown_code("`a") == "`` `a ``"


def _person(line: dict[str, Any]) -> str:
    return f"person-{line['doc_id'] // 6}"  # 24 items about 4 people, as a --limit on ungrouped data would be


def _ols_cluster_se(values: list[float], groups: list[str]) -> float:
    """The clustered standard error of a mean as statsmodels computes it, independently of the package."""
    import numpy as np
    import statsmodels.api as sm

    codes = np.unique(groups, return_inverse=True)[1]
    fit = sm.OLS(np.array(values), np.ones(len(values))).fit(cov_type="cluster", cov_kwds={"groups": codes})
    return float(fit.bse[0])


def test_cells_show_the_standard_error_clustered_by_fact(dummy_run: Path, tmp_path: Path) -> None:
    clustered = planted_copy(dummy_run, tmp_path / "clustered", edit_samples=cluster_by(_person))
    board = build_leaderboard(load_runs([clustered]))
    cell = next(c for (r, _), c in board.cells.items() if r.condition == "pretrained")
    lines = [json.loads(line) for line in samples_file(clustered, CLOSED).read_text().splitlines()]
    expected = _ols_cluster_se([line["acc"] for line in lines], [_person(line) for line in lines])
    assert (cell.stderr_kind, cell.clusters) == ("clustered", 4)
    assert cell.stderr == pytest.approx(expected, rel=1e-9)
    assert cell.lm_eval_stderr == _scores(dummy_run, CLOSED)[1]  # lm-eval's own figure is kept beside it
    markdown = to_markdown(board)
    assert f"| dummy | pretrained | {cell.value:.3f} ± {expected:.3f} (4 clusters) |" in markdown
    assert "standard error clustered by fact" in markdown
    # CSV and JSON only grow: the older columns keep their names and places, the new ones come last.
    col = "reversal_curse/p2d_reverse"
    header, *rows = list(csv.reader(io.StringIO(to_csv(board))))
    assert header == ["model", "checkpoint", "condition", f"{col} acc", f"{col} stderr", f"{col} n",
                      f"{col} stderr kind", f"{col} clusters"]
    assert rows[0][4:] == [str(cell.stderr), "24", "clustered", "4"] and rows[-1][0] == "chance"
    out = tmp_path / "board"
    write_leaderboard(board, out)
    cells = json.loads((out / "leaderboard.json").read_text())["cells"]
    assert {(c["condition"], c["stderr_kind"], c["clusters"]) for c in cells} == {
        ("pretrained", "clustered", 4), ("ICL", "clustered", 4)}
    assert all({"value", "stderr", "n", "lm_eval_stderr"} <= set(c) for c in cells)


@pytest.mark.parametrize(("label", "results", "note"), [
    # A log older than the field, or one item without it: no clusters, silently lm-eval's error (marked).
    (lambda line: None, None, None),
    (lambda line: None if line["doc_id"] == 3 else "p", None, None),
    # Every item about one person: no clustered error exists; saying so beats a binomial one passed off as fine.
    (lambda line: "p", None, "all 24 items test one fact"),
    # A log whose mean is not the results' score belongs to another run.
    (_person, lambda data: data["results"][CLOSED].update({"acc,none": 0.0}), "not the results'"),
])
def test_binomial_stands_in_when_the_log_cannot_give_clusters(dummy_run: Path, tmp_path: Path, label: Any,
                                                              results: Any, note: str | None) -> None:
    copy = planted_copy(dummy_run, tmp_path / "partial", results, cluster_by(label))
    board = build_leaderboard(load_runs([copy]))
    cell = next(c for (r, _), c in board.cells.items() if r.condition == "pretrained")
    assert (cell.stderr_kind, cell.clusters) == ("binomial", None)
    assert cell.stderr == cell.lm_eval_stderr == pytest.approx(_scores(copy, CLOSED)[1])
    assert f"± {cell.stderr:.3f} (binomial)" in to_markdown(board)
    pretrained_notes = [n for n in board.notes if "pretrained" in n and "binomial standard error" in n]
    if note is None:
        assert not pretrained_notes
    else:
        assert len(pretrained_notes) == 1 and note in pretrained_notes[0]


def _checkpoint_scoring(dummy_run: Path, name: str, kind: str, score: Any) -> tuple[Any, Any]:
    """Edits that turn a copy into a finetuned checkpoint's closed-book run whose per-item ``acc`` is
    ``score(line)``, with the results' aggregate the mean of those (so the log is the cell's own)."""
    lines = [json.loads(line) for line in samples_file(dummy_run, CLOSED).read_text().splitlines()]
    mean = sum(score(line) for line in lines) / len(lines)

    def results(data: dict[str, Any]) -> None:
        _as_checkpoint(name, kind, mean)(data)

    def samples(task: str, task_lines: list[dict[str, Any]]) -> None:
        for line in task_lines if task == CLOSED else ():
            line["acc"] = score(line)
    return results, samples


def test_every_ordering_difference_carries_its_bootstrap_interval(dummy_run: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """FT and augmented FT scored the same 24 items: their difference gets the paired cluster bootstrap; ICL
    (--limit kept other items) the unpaired one; chance is a constant; a run without logs gets no interval."""
    base = dummy_run
    ft = planted_copy(dummy_run, tmp_path / "ft", *_checkpoint_scoring(
        dummy_run, "ckpt-ft", "ft", lambda line: float(line["acc"] == 1.0 and line["doc_id"] % 3 == 0)))
    aug = planted_copy(dummy_run, tmp_path / "aug", *_checkpoint_scoring(
        dummy_run, "ckpt-aug", "aug_ft", lambda line: float(line["acc"] == 1.0 or line["doc_id"] % 2 == 0)))
    out = tmp_path / "board"
    args = ["compare", str(base), str(ft), str(aug), "--out", str(out), "--bootstrap-resamples", "999",
            "--bootstrap-seed", "5"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    verdicts = {v["claim"]: v for v in json.loads((out / "leaderboard.json").read_text())["orderings"]}
    assert json.loads((out / "leaderboard.json").read_text())["bootstrap"] == {"resamples": 999, "seed": 5,
                                                                                "level": 0.95}
    paired, unpaired = verdicts["augmented FT > FT"], verdicts["ICL > FT"]
    assert paired["ci_method"] == "paired cluster bootstrap" and "24 clusters, BCa" in paired["ci"]
    assert unpaired["ci_method"] == "unpaired cluster bootstrap"
    assert verdicts["FT <= chance"]["ci_method"] == verdicts["pretrained ~ chance"]["ci_method"] == \
        "cluster bootstrap, chance fixed"
    for v in verdicts.values():
        assert v["ci_low"] <= v["difference"] <= v["ci_high"]
    assert paired["ci_low"] > 0  # the planted gain (+0.58 over 24 people) is clear of zero
    line = next(row for row in printed.splitlines() if "augmented FT > FT" in row)
    assert f"[{paired['ci_low']:+.3f}, {paired['ci_high']:+.3f}] (paired cluster bootstrap, 24 clusters, BCa) |" in line
    assert "999 resamples, seed 5" in printed
    rows = {r["claim"]: r for r in csv.DictReader(io.StringIO((out / "orderings.csv").read_text()))}
    assert float(rows["augmented FT > FT"]["ci_low"]) == paired["ci_low"]
    assert "paired cluster bootstrap" in (out / "leaderboard.html").read_text()
    first = (out / "orderings.csv").read_text()
    assert main(args) == 0 and (out / "orderings.csv").read_text() == first  # fixed seed: the same intervals
    capsys.readouterr()
    # Without per-sample logs there is no interval, and the outputs say so instead of inventing one.
    for log in ft.rglob("samples_*.jsonl"):
        log.unlink()
    assert main(["compare", str(base), str(ft), "--bootstrap-resamples", "999"]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if "| ICL > FT |" in row)
    assert line.endswith("| no CI (samples not logged) |")
