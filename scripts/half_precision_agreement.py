"""How far cached and stock scoring in half precision are from fp32 and from each other, and what the near-tie
recheck (``prefix_recheck_nats``) does about it, on one task of the pack.

Scores the task's first ``--questions`` questions three ways on one model: the cached path in float32 (the
reference: it equals stock fp32 to about 1e-5), the cached path in ``--dtype`` with the recheck off, and stock
``hf`` in ``--dtype``. Prints the differences (in nats, and per scored token: largest and 95th percentile), how
many answers each agrees on, and for each bound how many questions the recheck would score again and how many
answers then equal stock's. The figures in docs/performance.md ("Half precision") come from:

    PYTHONPATH=. python scripts/half_precision_agreement.py icl_gen_reversal_curse_p2d_reverse_icl --budget 1024
    PYTHONPATH=. python scripts/half_precision_agreement.py icl_gen_semantic_reversal_icl --budget 2048
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch
from lm_eval.models.huggingface import HFLM
from transformers import AutoModelForCausalLM, AutoTokenizer

from icl_generalization.scoring.bench import build_requests
from icl_generalization.scoring.cached_hflm import PrefixCachedHFLM
from icl_generalization.scoring.near_ties import near_tie_requests
from icl_generalization.weights.default_model import resolve_model


def _answers(questions: Sequence[Any], scores: Sequence[float]) -> dict[Any, int]:
    by_question: dict[Any, list[float]] = defaultdict(list)
    for question, score in zip(questions, scores, strict=True):
        by_question[question].append(score)
    return {q: max(range(len(v)), key=v.__getitem__) for q, v in by_question.items()}


def _differences(a: Sequence[float], b: Sequence[float], tokens: Sequence[int]) -> dict[str, float]:
    per_token = sorted(abs(x - y) / n for x, y, n in zip(a, b, tokens, strict=True))
    return {"largest_nats": max(abs(x - y) for x, y in zip(a, b, strict=True)), "per_token_largest": per_token[-1],
            "per_token_p95": per_token[int(0.95 * (len(per_token) - 1))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("task")
    parser.add_argument("--budget", type=int, default=1024, help="context budget in tokens")
    parser.add_argument("--questions", type=int, default=25)
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16"))
    parser.add_argument("--model", default=None, help="default: the embedded default model")
    parser.add_argument("--bounds", default="0.03,0.05,0.1", help="recheck bounds to try, nats per scored token")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    instances, _ = build_requests(args.task, path, args.budget, args.questions)
    questions = [(i.task_name, i.doc_id) for i in instances]
    half = getattr(torch, args.dtype)

    def score(dtype: torch.dtype, model_class: type[HFLM], **kwargs: Any) -> tuple[list[float], Any]:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
        lm = model_class(pretrained=model, tokenizer=tokenizer, batch_size=1, **kwargs)
        start = time.perf_counter()
        out = [ll for ll, _ in lm.loglikelihood(instances, disable_tqdm=True)]
        return out, (lm, time.perf_counter() - start)

    reference, (lm, _) = score(torch.float32, PrefixCachedHFLM)
    cached, _ = score(half, PrefixCachedHFLM, prefix_recheck_nats=0)
    stock, _ = score(half, HFLM)
    requests = [((i.args[0], i.args[1]), *lm._encode_pair(*i.args)) for i in instances]
    tokens = [len(r[2]) for r in requests]
    truth, cached_answers, stock_answers = (_answers(questions, s) for s in (reference, cached, stock))
    report: dict[str, Any] = {
        "task": args.task, "budget": args.budget, "dtype": args.dtype, "questions": len(truth),
        "requests": len(instances), "scored_tokens": sorted(set(tokens)),
        "stock_vs_fp32": _differences(stock, reference, tokens),
        "cached_vs_fp32": _differences(cached, reference, tokens),
        "cached_vs_stock": _differences(cached, stock, tokens),
        "answers_equal": {"stock_fp32": sum(stock_answers[q] == truth[q] for q in truth),
                          "cached_fp32": sum(cached_answers[q] == truth[q] for q in truth),
                          "cached_stock": sum(cached_answers[q] == stock_answers[q] for q in truth)},
        "recheck": []}
    for bound in (float(b) for b in args.bounds.split(",")):
        near = near_tie_requests(requests, questions, cached, bound)
        final = list(cached)
        for i in near:
            final[i] = stock[i]
        after = _answers(questions, final)
        report["recheck"].append({"nats_per_token": bound, "questions_rechecked": len({questions[i] for i in near}),
                                  "answers_equal_to_stock": sum(after[q] == stock_answers[q] for q in truth)})
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
