"""PrefixCachedHFLM against stock HFLM on the same tiny model: same numbers, same order, fewer tokens."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch
from forward_counter import count_forwards
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from icl_generalization.core.errors import ContextBudgetError, UserError
from icl_generalization.scoring.cached_hflm import Plan, PrefixCachedHFLM, PrefixSettings, plan_groups

TASK = "icl_gen_reversal_curse_p2d_reverse_icl"
BUDGET = 300  # small enough that the 300 questions need several shards (several distinct contexts)
MIN_TOKENS = 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lms(tiny_model_path: Path) -> tuple[HFLM, PrefixCachedHFLM]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    stock = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4)
    # 48 tokens per forward: each packed forward holds two or three continuations, so batches split groups.
    cached = PrefixCachedHFLM(pretrained=model, tokenizer=tokenizer, prefix_min_tokens=MIN_TOKENS,
                              prefix_batch_tokens=48, batch_size=4)
    return stock, cached


def _rows(condition: str, tiny_model_path: Path) -> list[dict[str, Any]]:
    from icl_generalization.tasks.names import as_condition
    from icl_generalization.tasks.options import TaskOptions
    from icl_generalization.tasks.rows import task_rows

    options = TaskOptions(pretrained=str(tiny_model_path), context_budget=BUDGET)
    return [dict(row) for row in task_rows("reversal_curse", "p2d_reverse", as_condition(condition), options).rows]


def _instances(rows: list[dict[str, Any]]) -> list[Instance]:
    return [Instance("loglikelihood", row, (row["query"], choice), i)
            for row in rows for i, choice in enumerate(row["choices"])]


@pytest.fixture(scope="module")
def icl_rows(task_cache: Path, tiny_model_path: Path) -> list[dict[str, Any]]:
    rows = _rows("icl", tiny_model_path)
    shards = sorted({r["shard"] for r in rows})
    assert len(shards) >= 3, "the budget should split the task into several contexts"
    # Four questions from each of three shards: two shard boundaries, three distinct long contexts.
    return [r for s in shards[:3] for r in [x for x in rows if x["shard"] == s][:4]]



def test_cached_scores_equal_stock_scores_on_an_icl_task(lms: tuple[HFLM, PrefixCachedHFLM],
                                                          icl_rows: list[dict[str, Any]]) -> None:
    stock, cached = lms
    requests = _instances(icl_rows)
    cont_lengths = {len(cached.tok_encode(choice)) for row in icl_rows for choice in row["choices"]}
    assert len(cont_lengths) >= 2, "continuations of different lengths are part of what is checked"
    expected = stock.loglikelihood(requests, disable_tqdm=True)
    assert cached.prefix_cache_verdict() is None  # the probe runs here, so its tokens are not counted below
    before = dict(cached.prefix_stats)
    with count_forwards(cached.model) as seen:
        got = cached.loglikelihood(requests, disable_tqdm=True)
    assert len(got) == len(expected) == 48
    for (ll_stock, greedy_stock), (ll_cached, greedy_cached) in zip(expected, got, strict=True):
        assert abs(ll_stock - ll_cached) <= 1e-4
        assert greedy_stock == greedy_cached
    assert cached.prefix_stats["groups"] - before["groups"] == 3  # one group per context
    assert cached.prefix_stats["ordinary_requests"] == before["ordinary_requests"]
    planned = cached.prefix_stats["planned_tokens"] - before["planned_tokens"]
    packed = cached.prefix_stats["packed_tokens"] - before["packed_tokens"]
    # Packing: no padding, nothing run twice; each question runs once for its four choices.
    assert seen["tokens"] == packed < planned
    stock_tokens = sum(len(cached.tok_encode(r.args[0] + r.args[1])) - 1 for r in requests)
    assert planned < stock_tokens / 5
    assert seen["calls"] > 2 * 3  # several packed forwards per group: batch boundaries were crossed


def test_requests_without_a_shared_prefix_take_the_stock_path(lms: tuple[HFLM, PrefixCachedHFLM],
                                                              task_cache: Path, tiny_model_path: Path) -> None:
    stock, cached = lms
    requests = _instances(_rows("closed_book", tiny_model_path)[:10])
    before = dict(cached.prefix_stats)
    assert cached.loglikelihood(requests, disable_tqdm=True) == stock.loglikelihood(requests, disable_tqdm=True)
    assert cached.prefix_stats["groups"] == before["groups"]
    assert cached.prefix_stats["ordinary_requests"] - before["ordinary_requests"] == len(requests)


def test_order_is_preserved_for_mixed_shuffled_requests(lms: tuple[HFLM, PrefixCachedHFLM],
                                                        icl_rows: list[dict[str, Any]],
                                                        tiny_model_path: Path) -> None:
    stock, cached = lms
    requests = _instances(icl_rows[:6]) + _instances(_rows("closed_book", tiny_model_path)[:3])
    random.Random(0).shuffle(requests)
    expected = stock.loglikelihood(requests, disable_tqdm=True)
    got = cached.loglikelihood(requests, disable_tqdm=True)
    assert len({ll for ll, _ in expected}) == len(expected)  # distinct values, so a permutation would show
    for (a, ga), (b, gb) in zip(expected, got, strict=True):
        assert abs(a - b) <= 1e-4 and ga == gb


def test_prefix_cache_false_is_stock_scoring(lms: tuple[HFLM, PrefixCachedHFLM], tiny_model_path: Path,
                                             icl_rows: list[dict[str, Any]]) -> None:
    stock, cached = lms
    off = PrefixCachedHFLM(pretrained=cached.model, tokenizer=cached.tokenizer, prefix_cache="false", batch_size=4)
    requests = _instances(icl_rows[:2])
    assert off.loglikelihood(requests, disable_tqdm=True) == stock.loglikelihood(requests, disable_tqdm=True)
    assert off.prefix_stats["groups"] == 0


def test_overlong_requests_are_refused_not_truncated(lms: tuple[HFLM, PrefixCachedHFLM]) -> None:
    _, cached = lms
    long_context = " ".join(["word"] * (cached.max_length + 50))
    with pytest.raises(ContextBudgetError, match="exceed the model's window"):
        cached.loglikelihood([Instance("loglikelihood", {}, (long_context, " end"), 0)], disable_tqdm=True)


def test_model_args_are_validated_with_their_names() -> None:
    settings = PrefixSettings.from_model_args("False", "128", "512", "300")
    assert not settings.enabled and settings.min_tokens == 128
    assert settings.cache.batch_tokens == 512 and settings.cache.memory_mb == 300
    with pytest.raises(UserError, match="prefix_cache"):
        PrefixSettings.from_model_args(prefix_cache="maybe")
    with pytest.raises(UserError, match="prefix_min_tokens"):
        PrefixSettings.from_model_args(prefix_min_tokens=0)
    with pytest.raises(UserError, match="prefix_batch_tokens"):
        PrefixSettings.from_model_args(prefix_batch_tokens="lots")
    with pytest.raises(UserError, match="prefix_memory_mb"):
        PrefixSettings.from_model_args(prefix_memory_mb=-1)


def _plan(inputs: list[list[int]], shareable: list[int], min_tokens: int) -> Plan:
    """plan_groups on whole inputs, each shareable up to its given length (its context)."""
    return plan_groups([x[:s] for x, s in zip(inputs, shareable, strict=True)], [len(x) for x in inputs],
                       min_tokens)


def test_equal_contexts_are_held_once_and_give_the_plan_of_distinct_copies() -> None:
    context = list(range(1000, 1600))
    inputs = [[*context, q, c] for q in range(30) for c in range(4)]
    shared = [context] * len(inputs)  # one list object, as lm-eval's equal contexts need not be
    copies = [list(context) for _ in inputs]
    lengths = [len(x) for x in inputs]
    assert plan_groups(shared, lengths, 256) == plan_groups(copies, lengths, 256)
    [group] = plan_groups(shared, lengths, 256).groups
    assert group.prefix_length == 600 and len(group.members) == 120
    with pytest.raises(ValueError, match="differ in length"):
        plan_groups(shared, lengths[:-1], 256)


def test_plan_groups_splits_contexts_and_respects_the_threshold() -> None:
    a = list(range(1000, 1300))  # a 300-token context
    b = list(range(2000, 2300))
    inputs = [[*a, 1, 2], [*a, 3], [*b, 4, 5, 6], [*b, 7], [9, 9, 9]]
    shareable = [300, 300, 300, 300, 2]
    plan = _plan(inputs, shareable, min_tokens=256)
    assert sorted(sorted(g.members) for g in plan.groups) == [[0, 1], [2, 3]]
    assert all(g.prefix_length == 300 for g in plan.groups)
    assert plan.ordinary == (4,)
    assert plan.tokens == (300 + 2 + 1) + (300 + 3 + 1) + 3
    # Above the threshold nothing is shared; the shareable length caps the prefix at the context's end.
    assert _plan(inputs, shareable, min_tokens=301).groups == ()
    capped = _plan([[*a, 1], [*a, 2]], [120, 300], min_tokens=100)
    assert [g.prefix_length for g in capped.groups] == [120]


def test_plan_groups_keeps_nested_contexts_apart_when_that_is_cheaper() -> None:
    short = list(range(300))
    long = short + list(range(5000, 5700))  # the short context is a prefix of the long one
    inputs = [[*short, 1], [*short, 2], [*long, 3], [*long, 4], [*long, 5]]
    plan = _plan(inputs, [300, 300, 1000, 1000, 1000], min_tokens=256)
    assert sorted(g.prefix_length for g in plan.groups) == [300, 1000]
    # One group at the shared 300 tokens would re-run the long context's 700-token tail three times.
    assert plan.tokens == (300 + 1 + 1) + (1000 + 1 + 1 + 1)


@pytest.mark.slow  # two lm-eval runs with task indexing: 20-30 s on a busy 2-core machine
def test_simple_evaluate_with_the_icl_gen_model(task_cache: Path, tiny_model_path: Path) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    from icl_generalization.core.paths import tasks_path
    from icl_generalization.scoring.model_class import MODEL_NAME, register

    register()
    manager = TaskManager(include_path=str(tasks_path()),
                          metadata={"pretrained": str(tiny_model_path), "context_budget": BUDGET})
    runs = {}
    for flag in (True, False):
        out = lm_eval.simple_evaluate(
            model=MODEL_NAME, model_args={"pretrained": str(tiny_model_path), "prefix_cache": flag,
                                          "prefix_min_tokens": MIN_TOKENS, "device": "cpu"},
            tasks=[TASK], task_manager=manager, limit=3, log_samples=True)
        assert out is not None
        runs[flag] = out
    cached, stock = runs[True], runs[False]
    assert set(cached["results"][TASK]) >= {"acc,none", "acc_norm,none"}
    assert cached["results"][TASK]["acc,none"] == stock["results"][TASK]["acc,none"]
    lls = [[float(r[0][0]) for r in s["resps"]] for s in cached["samples"][TASK]]
    lls_stock = [[float(r[0][0]) for r in s["resps"]] for s in stock["samples"][TASK]]
    assert len(lls) == 3 and all(len(x) == 4 for x in lls)
    for a, b in zip(lls, lls_stock, strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 1e-4


def _brute_force_tokens(inputs: list[list[int]], shareable: list[int], min_tokens: int) -> int:
    """Every split of the requests into groups, each group sharing its longest allowed common prefix."""

    def shared(members: list[int]) -> int:
        first = inputs[members[0]]
        n = min(min(len(inputs[m]) for m in members), *(shareable[m] for m in members))
        k = 0
        while k < n and all(inputs[m][k] == first[k] for m in members):
            k += 1
        return k

    def best(rest: list[int]) -> int:
        if not rest:
            return 0
        head, others = rest[0], rest[1:]
        options = []
        for mask in range(1 << len(others)):  # the group holding `head`
            members = [head] + [o for b, o in enumerate(others) if mask >> b & 1]
            left = [o for b, o in enumerate(others) if not mask >> b & 1]
            size = sum(len(inputs[m]) for m in members)
            if len(members) > 1:
                length = shared(members)
                if length < min_tokens:
                    continue
                size -= (len(members) - 1) * length
            options.append(size + best(left))
        return min(options)

    return best(list(range(len(inputs))))


def test_plan_groups_is_optimal_on_random_icl_shaped_cases() -> None:
    # ICL-shaped: a few contexts (some sharing a header), each followed by questions whose choices share the
    # question, every context much longer than the text after it. Brute force tries every grouping.
    rng = random.Random(7)
    for _ in range(120):
        header = [rng.randrange(3) for _ in range(rng.randrange(0, 3))]
        inputs, shareable = [], []
        for _ in range(rng.randrange(1, 3)):
            context = header + [rng.randrange(3) for _ in range(rng.randrange(6, 10))]
            for _ in range(rng.randrange(1, 3)):
                question = [rng.randrange(3) for _ in range(rng.randrange(0, 2))]
                for _ in range(rng.randrange(1, 4)):
                    inputs.append(context + question + [rng.randrange(3) for _ in range(rng.randrange(1, 3))])
                    shareable.append(len(context) + len(question))
        inputs, shareable = inputs[:7], shareable[:7]  # brute force is exponential
        min_tokens = rng.randrange(1, 8)
        plan = _plan(inputs, shareable, min_tokens)
        members = sorted([*plan.ordinary, *(m for g in plan.groups for m in g.members)])
        assert members == list(range(len(inputs)))
        for g in plan.groups:
            assert g.prefix_length >= min_tokens and len(g.members) >= 2
            assert all(inputs[m][:g.prefix_length] == inputs[g.members[0]][:g.prefix_length] for m in g.members)
            assert all(shareable[m] >= g.prefix_length for m in g.members)
        assert plan.tokens == _brute_force_tokens(inputs, shareable, min_tokens)


def test_plan_groups_documents_its_limit_on_sandwiched_requests() -> None:
    # Runs of the sorted order are not always optimal: here requests 1 and 3 could share 2 tokens around the
    # deep group {0, 2, 4}, which the run-based programme cannot express. Pinned so a change is deliberate.
    inputs = [[3, 2, 3, 0, 0, 0], [3, 2, 0], [3, 2, 3, 0, 0, 3, 1], [3, 2, 3, 2, 3, 2], [3, 2, 3, 0, 0, 2, 1]]
    shareable = [5, 2, 6, 5, 10]
    plan = _plan(inputs, shareable, min_tokens=2)
    assert plan.tokens == 19 and _brute_force_tokens(inputs, shareable, 2) == 17


def test_tasks_of_one_run_that_share_a_context_compute_it_once(task_cache: Path, tiny_model_path: Path,
                                                               tmp_path: Path) -> None:
    """lm-eval hands every task's loglikelihood requests to one call, so ``plan_groups`` sees them together: a
    context two tasks share (here the task and a user's variant of it) is computed once for both."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from icl_generalization.core.paths import tasks_path

    variant = f"{TASK}_variant"
    original = tasks_path() / "reversal_curse" / f"{TASK}.yaml"
    (tmp_path / f"{variant}.yaml").write_text(f"include: {original}\ntask: {variant}\n")
    manager = TaskManager(include_path=[str(tasks_path()), str(tmp_path)],
                          metadata={"pretrained": str(tiny_model_path), "context_budget": BUDGET})
    stats = {}
    for tasks in ([TASK], [TASK, variant]):
        lm = PrefixCachedHFLM(pretrained=str(tiny_model_path), prefix_min_tokens=MIN_TOKENS, device="cpu")
        out = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=6)
        assert out is not None
        stats[len(tasks)] = dict(lm.prefix_stats)
        if len(tasks) == 2:
            assert out["results"][TASK]["acc,none"] == out["results"][variant]["acc,none"]
    alone, together = stats[1], stats[2]
    assert together["cached_requests"] == 2 * alone["cached_requests"]
    assert together["groups"] == alone["groups"]  # one prefix per distinct context, not one per task
    # The second task adds only its questions and choices: no context tokens run again.
    assert together["packed_tokens"] - alone["packed_tokens"] < alone["packed_tokens"] / 2
