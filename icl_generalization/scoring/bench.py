"""``icl-gen bench prefix-cache``: stock ``HFLM`` against ``PrefixCachedHFLM`` on the same requests, one process.

Both paths wrap the very same model object, and a forward pre-hook counts every token either path feeds it, so
the figures are ratios taken on one machine at one time: tokens run, wall time, the largest per-request
log-likelihood difference, and whether every question's chosen answer (argmax over its choices) agrees.

"Minimum" is one pass over each distinct shared context plus the rest of every request (question + choice),
counted from the task's own contexts (``minimum_tokens``), not from the scorer's plan. Packed scoring has no
padding, so the cached path should sit at that figure.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from icl_generalization.core.errors import UserError
from icl_generalization.core.outputs import OutputFile

DEFAULT_TASK = "icl_gen_reversal_curse_p2d_reverse_icl"
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class BenchConfig:
    model: str | None = None  # embedded name, folder or hub id; default: the default model
    task: str = DEFAULT_TASK
    limit: int = 25  # questions timed on both paths
    context_tokens: int = 2200  # the task's context_budget (tokens for the whole prompt)
    device: str | None = None  # default: cuda when there is one
    dtype: str = "float32"
    stock_batch_size: int = 1
    min_tokens: int = 256
    batch_tokens: int = 1024
    threads: int | None = None  # torch CPU threads; default: torch's own choice
    compare: bool = True  # time stock and cached on the first `limit` questions
    full_task: bool = False  # also time the cached path alone on every question

    def __post_init__(self) -> None:
        for name in ("limit", "context_tokens", "stock_batch_size", "min_tokens", "batch_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"threads must be a positive integer, got {self.threads!r}")
        if self.dtype not in DTYPES:
            raise UserError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if not (self.compare or self.full_task):
            raise UserError("nothing to run: --skip-compare needs --full-task")


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def build_requests(task_name: str, model_path: str, context_tokens: int,
                   limit: int | None) -> tuple[list[Any], dict[str, Any]]:
    """The task's loglikelihood Instances through lm-eval's own TaskManager (as `icl-gen eval` builds them)."""
    from lm_eval.tasks import TaskManager

    from icl_generalization.core.paths import tasks_path

    manager = TaskManager(include_path=str(tasks_path()),
                          metadata={"pretrained": model_path, "context_budget": context_tokens})
    if task_name not in manager.all_tasks:
        raise UserError(f"unknown task {task_name!r}; `icl-gen eval ls tasks` lists them")
    task = manager.load([task_name])["tasks"][task_name]
    task.build_all_requests(limit=limit, rank=0, world_size=1)
    instances = [i for i in task.instances if i.request_type == "loglikelihood"]
    if not instances:
        raise UserError(f"{task_name} makes no loglikelihood requests; the benchmark needs a multiple-choice task")
    docs = {i.doc_id: i.doc for i in instances}
    shape = {"questions": len(docs), "requests": len(instances),
             "context_tokens_max": max(int(d.get("context_tokens", 0)) for d in docs.values()),
             "contexts": len({d.get("shard") for d in docs.values()})}
    return instances, shape


def _token_counter(model: Any) -> tuple[dict[str, int], Callable[[], None]]:
    seen = {"tokens": 0, "forwards": 0}

    def hook(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:
            seen["tokens"] += int(ids.numel())
            seen["forwards"] += 1

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    return seen, handle.remove


def _timed(lm: Any, instances: list[Any], seen: dict[str, int]) -> tuple[list[tuple[float, bool]], float, int]:
    start_tokens = seen["tokens"]
    start = time.perf_counter()
    out = lm.loglikelihood(instances, disable_tqdm=True)
    return out, time.perf_counter() - start, seen["tokens"] - start_tokens


def _shared_context(instance: Any) -> str:
    """The text a request shares with others: the task's in-context documents where the row names them
    (``query`` = context + ``prompt``, as ``harness`` writes it), else lm-eval's context (shared by the choices)."""
    doc = instance.doc if isinstance(instance.doc, dict) else {}
    query, prompt = doc.get("query"), doc.get("prompt")
    if isinstance(query, str) and isinstance(prompt, str) and prompt and query.endswith(prompt):
        return query[:-len(prompt)]
    return str(instance.args[0])


def minimum_tokens(lm: Any, instances: Sequence[Any]) -> int:
    """Each shared context run once plus the rest of every request, whatever the scorer does.

    Requests are grouped by the text they share (``_shared_context``), independently of ``plan_groups``; a
    group's shared prefix is the token-level common prefix of its members' contexts (tokenization may merge
    the context's last characters with the question's first, so the text alone does not give the count).
    """
    groups: dict[str, list[tuple[list[int], list[int]]]] = defaultdict(list)
    for instance in instances:
        groups[_shared_context(instance)].append(lm._encode_pair(*instance.args))
    total = 0
    for pairs in groups.values():
        inputs = [(ctx + cont)[:-1] for ctx, cont in pairs]
        shared = 0
        if len(pairs) > 1:
            first = pairs[0][0]
            shared = min(len(ctx) for ctx, _ in pairs)
            for ctx, _ in pairs[1:]:
                shared = next((k for k in range(shared) if ctx[k] != first[k]), shared)
        total += sum(len(x) for x in inputs) - (len(pairs) - 1) * shared
    return total


def _chosen(instances: Sequence[Any], results: Sequence[tuple[float, bool]]) -> dict[int, int]:
    by_doc: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for inst, (ll, _) in zip(instances, results, strict=True):
        by_doc[inst.doc_id].append((inst.idx, ll))
    return {doc: max(choices, key=lambda c: c[1])[0] for doc, choices in by_doc.items()}


def _load(config: BenchConfig) -> tuple[Any, Any, str, str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from icl_generalization.weights.default_model import DEFAULT_MODEL, resolve_model

    if config.threads:
        torch.set_num_threads(config.threads)
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    path = resolve_model(config.model)
    model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, config.dtype))
    model.to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer, path, config.model or DEFAULT_MODEL


def run_prefix_cache_bench(config: BenchConfig) -> dict[str, Any]:
    import torch
    import transformers
    from lm_eval.models.huggingface import HFLM

    from icl_generalization.scoring.cached_hflm import PrefixCachedHFLM

    model, tokenizer, path, name = _load(config)
    stock = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=config.stock_batch_size)
    cached = PrefixCachedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=config.stock_batch_size,
                              prefix_min_tokens=config.min_tokens, prefix_batch_tokens=config.batch_tokens)
    device = next(model.parameters()).device
    result: dict[str, Any] = {
        "config": asdict(config), "model": name, "model_path": path, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or
        platform.machine(), "torch_threads": torch.get_num_threads(), "dtype": config.dtype,
        "attention": model.config._attn_implementation, "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    # The cached path's one-time probe (scoring.probe) runs now, so neither path's tokens or time include it.
    result["prefix_cache_off"] = cached.prefix_cache_verdict()
    seen, remove_hook = _token_counter(model)
    try:
        with torch.no_grad():  # one small forward first, so one-time kernel setup is timed on neither path
            model(input_ids=torch.tensor([[tokenizer.eos_token_id or 0] * 8], device=device))
        if config.compare:
            instances, shape = build_requests(config.task, path, config.context_tokens, config.limit)
            result.update(shape)
            _log(f"{shape['requests']} requests ({shape['questions']} questions, contexts up to "
                 f"{shape['context_tokens_max']} tokens); stock path first, the slow one")
            stock_out, stock_s, stock_tokens = _timed(stock, instances, seen)
            _log(f"stock: {stock_s:.1f} s; now the cached path")
            cached_out, cached_s, cached_tokens = _timed(cached, instances, seen)
            minimum = minimum_tokens(cached, instances)
            diffs = [abs(a[0] - b[0]) for a, b in zip(stock_out, cached_out, strict=True)]
            result.update(
                tokens={"stock": stock_tokens, "cached": cached_tokens, "minimum": minimum,
                        "cached_over_minimum": cached_tokens / minimum},
                seconds={"stock": stock_s, "cached": cached_s}, speedup=stock_s / cached_s,
                max_abs_diff=max(diffs),
                answers_agree=_chosen(instances, stock_out) == _chosen(instances, cached_out),
                greedy_agree=all(a[1] == b[1] for a, b in zip(stock_out, cached_out, strict=True)))
        if config.full_task:
            instances, shape = build_requests(config.task, path, config.context_tokens, None)
            _log(f"full task, cached path alone: {shape['requests']} requests ({shape['questions']} questions)")
            _, full_s, full_tokens = _timed(cached, instances, seen)
            result["full_task"] = {**shape, "seconds": full_s, "tokens": full_tokens,
                                   "minimum": minimum_tokens(cached, instances)}
    finally:
        remove_hook()
    return result


def format_report(result: dict[str, Any]) -> str:
    lines = [f"model {result['model']} on {result['device']} ({result['device_name']}, "
             f"{result['torch_threads']} threads), {result['dtype']}, attention {result['attention']}"]
    if "tokens" in result:
        t, s = result["tokens"], result["seconds"]
        lines += [
            f"task {result['config']['task']}: {result['questions']} questions, {result['requests']} requests, "
            f"{result['contexts']} context(s) of up to {result['context_tokens_max']} tokens",
            f"tokens run      stock {t['stock']:>10,}   cached {t['cached']:>10,}   minimum {t['minimum']:>10,}"
            f"   (cached / minimum {t['cached_over_minimum']:.3f})",
            f"wall time       stock {s['stock']:>9.1f}s   cached {s['cached']:>9.1f}s   "
            f"speed-up {result['speedup']:.1f}x",
            f"max |log-likelihood difference| {result['max_abs_diff']:.2e}; chosen answers agree: "
            f"{'yes' if result['answers_agree'] else 'NO'}; greedy flags agree: "
            f"{'yes' if result['greedy_agree'] else 'NO'}",
        ]
    if "full_task" in result:
        f = result["full_task"]
        lines.append(f"full task, cached path alone: {f['questions']} questions, {f['requests']} requests, "
                     f"{f['contexts']} context(s), {f['tokens']:,} tokens (minimum {f['minimum']:,}) "
                     f"in {f['seconds']:.1f}s")
    return "\n".join(lines)


def write_result(result: dict[str, Any], out: OutputFile) -> None:
    """Write the figures as JSON into ``out``, claimed by the caller before the (long) benchmark ran."""
    out.write_text(out.path, json.dumps(result, indent=2, sort_keys=True) + "\n")
