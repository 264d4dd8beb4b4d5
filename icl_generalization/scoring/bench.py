"""``icl-gen bench prefix-cache``: stock ``HFLM`` against ``PrefixCachedHFLM`` over context lengths, one process.

Both paths wrap the very same model object, and a forward pre-hook counts every token either path feeds it, so
the figures are ratios taken on one machine at one time. Per context length (the task's ``context_budget``):

- the cached path scores ``limit`` questions (or all of them);
- the stock path, which costs a full forward of the context per request, is timed on the requests of the first
  ``stock_questions`` questions only, and its time and tokens are **scaled** to the cached path's requests
  (x requests / sampled requests); the report marks those figures as scaled;
- exactness (largest per-request log-likelihood difference, chosen answer and greedy flags) is compared on the
  sampled requests, which both paths scored;
- tokens run are set against the two-level minimum: each shared context once, each question once, each choice
  once (``minimum_tokens``), counted from the task's own contexts, not from the scorer's plan;
- peak memory of each path (``peak_memory``: CUDA allocations, or the process's peak RSS on Linux; the method is
  recorded).

``random_config`` swaps the model for a Llama-architecture config of a real size with random weights
(``random_models``), tokenized by the chosen model's tokenizer: throughput needs no trained weights.
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
FULL_WINDOW = 0  # a length meaning the task's default budget: the model's window less the task's margin
DEFAULT_LENGTHS = (1024, 2048, 4096, FULL_WINDOW)


@dataclass(frozen=True)
class BenchConfig:
    model: str | None = None  # embedded name, folder or hub id; default: the default model
    random_config: str | None = None  # a ``random_models`` config with random weights, `model`'s tokenizer
    task: str = DEFAULT_TASK
    lengths: tuple[int, ...] = DEFAULT_LENGTHS  # context budgets in tokens; FULL_WINDOW: the model's window
    limit: int | None = 25  # questions scored on the cached path per length; None: every question
    stock_questions: int = 2  # questions timed on the stock path per length, scaled to `limit`
    device: str | None = None  # default: cuda when there is one
    dtype: str = "float32"
    stock_batch_size: int = 1
    min_tokens: int = 256
    batch_tokens: int = 1024
    batch_groups: int | None = None  # contexts per cached forward; None: the cached model class's default
    recheck_nats: float | None = None  # near-tie bound per scored token; None: the cached model class's default
    threads: int | None = None  # torch CPU threads; default: torch's own choice

    def __post_init__(self) -> None:
        for name in ("stock_questions", "stock_batch_size", "min_tokens", "batch_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise UserError(f"limit must be a positive integer or 'all', got {self.limit!r}")
        if not self.lengths or any(not isinstance(n, int) or n < 0 for n in self.lengths):
            raise UserError(f"lengths must be positive token counts or 'full', got {self.lengths!r}")
        for name in ("threads", "batch_groups"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UserError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.dtype not in DTYPES:
            raise UserError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        from icl_generalization.scoring.random_models import RANDOM_CONFIGS

        if self.random_config is not None and self.random_config not in RANDOM_CONFIGS:
            raise UserError(f"random-config must be one of {', '.join(RANDOM_CONFIGS)}, got {self.random_config!r}")


def parse_lengths(text: str) -> tuple[int, ...]:
    """``1024,2048,full`` -> (1024, 2048, FULL_WINDOW)."""
    lengths = []
    for part in text.split(","):
        word = part.strip().lower()
        if word == "full":
            lengths.append(FULL_WINDOW)
        elif word.isdigit() and int(word) > 0:
            lengths.append(int(word))
        else:
            raise UserError(f"lengths: {part.strip()!r} is neither a positive token count nor 'full'")
    return tuple(lengths)


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def build_requests(task_name: str, model_path: str, context_budget: int,
                   limit: int | None) -> tuple[list[Any], dict[str, Any]]:
    """The task's loglikelihood Instances through lm-eval's own TaskManager (as `icl-gen eval` builds them)."""
    from lm_eval.tasks import TaskManager

    from icl_generalization.core.paths import tasks_path

    metadata: dict[str, Any] = {"pretrained": model_path}
    if context_budget != FULL_WINDOW:
        metadata["context_budget"] = context_budget
    manager = TaskManager(include_path=str(tasks_path()), metadata=metadata)
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


@dataclass(frozen=True)
class Timed:
    results: list[tuple[float, bool]]
    seconds: float
    tokens: int
    peak_mib: float
    memory_method: str


def _timed(lm: Any, instances: list[Any], seen: dict[str, int], device: Any) -> Timed:
    from icl_generalization.scoring.peak_memory import peak_memory

    start_tokens = seen["tokens"]
    with peak_memory(device) as peak:
        start = time.perf_counter()
        out = lm.loglikelihood(instances, disable_tqdm=True)
        seconds = time.perf_counter() - start
    return Timed(out, seconds, seen["tokens"] - start_tokens, peak.mib, peak.method)


def _shared_context(instance: Any) -> str:
    """The text a request shares with others: the task's in-context documents where the row names them
    (``query`` = context + ``prompt``, as ``harness`` writes it), else lm-eval's context (shared by the choices)."""
    doc = instance.doc if isinstance(instance.doc, dict) else {}
    query, prompt = doc.get("query"), doc.get("prompt")
    if isinstance(query, str) and isinstance(prompt, str) and prompt and query.endswith(prompt):
        return query[:-len(prompt)]
    return str(instance.args[0])


def minimum_tokens(lm: Any, instances: Sequence[Any]) -> dict[str, int]:
    """The fewest tokens a scorer must run, whatever it does, at two levels of sharing.

    ``one_level``: each shared context once plus the rest of every request (question + choice). ``two_level``:
    each shared context once, each question once, each choice once. Requests are grouped by the text they share
    (``_shared_context``), independently of ``plan_groups``; a group's shared prefix is the token-level common
    prefix of its members' contexts (tokenization may merge the context's last characters with the question's
    first, so the text alone does not give the count).
    """
    groups: dict[str, list[tuple[list[int], list[int]]]] = defaultdict(list)
    for instance in instances:
        groups[_shared_context(instance)].append(lm._encode_pair(*instance.args))
    one_level = two_level = 0
    for pairs in groups.values():
        shared = 0
        if len(pairs) > 1:
            first = pairs[0][0]
            shared = min(len(ctx) for ctx, _ in pairs)
            for ctx, _ in pairs[1:]:
                shared = next((k for k in range(shared) if ctx[k] != first[k]), shared)
        one_level += sum(len(ctx) + len(cont) - 1 for ctx, cont in pairs) - (len(pairs) - 1) * shared
        questions = {tuple(ctx[shared:]) for ctx, _ in pairs}
        two_level += shared + sum(len(q) for q in questions) + sum(len(cont) - 1 for _, cont in pairs)
    return {"one_level": one_level, "two_level": two_level}


def _chosen(instances: Sequence[Any], results: Sequence[tuple[float, bool]]) -> dict[int, int]:
    by_doc: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for inst, (ll, _) in zip(instances, results, strict=True):
        by_doc[inst.doc_id].append((inst.idx, ll))
    return {doc: max(choices, key=lambda c: c[1])[0] for doc, choices in by_doc.items()}


def _load(config: BenchConfig) -> tuple[Any, Any, str, str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from icl_generalization.scoring.random_models import random_model
    from icl_generalization.weights.default_model import DEFAULT_MODEL, resolve_model

    if config.threads:
        torch.set_num_threads(config.threads)
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    path = resolve_model(config.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    name = config.model or DEFAULT_MODEL
    dtype = getattr(torch, config.dtype)
    model: Any
    if config.random_config:
        special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                   "pad_token_id": tokenizer.pad_token_id}
        model = random_model(config.random_config, len(tokenizer), dtype, device, special)
        name = f"{config.random_config} (random weights, {name}'s tokenizer)"
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        model.to(device).eval()
    return model, tokenizer, path, name


def _one_length(budget: int, config: BenchConfig, path: str, stock: Any, cached: Any, seen: dict[str, int],
                device: Any) -> dict[str, Any]:
    instances, shape = build_requests(config.task, path, budget, config.limit)
    first_docs = sorted({i.doc_id for i in instances})[:config.stock_questions]
    sampled = [k for k, i in enumerate(instances) if i.doc_id in first_docs]
    _log(f"budget {budget or 'full'}: {shape['requests']} requests ({shape['questions']} questions, contexts up "
         f"to {shape['context_tokens_max']} tokens); stock path on {len(sampled)} of them first")
    stock_run = _timed(stock, [instances[k] for k in sampled], seen, device)
    _log(f"stock: {stock_run.seconds:.1f} s; now the cached path on all {len(instances)}")
    before = dict(cached.prefix_stats)
    cached_run = _timed(cached, instances, seen, device)
    scale = len(instances) / len(sampled)
    stock_seconds, stock_tokens = stock_run.seconds * scale, round(stock_run.tokens * scale)
    minimum = minimum_tokens(cached, instances)
    pairs = [(stock_run.results[j], cached_run.results[k]) for j, k in enumerate(sampled)]
    sampled_instances = [instances[k] for k in sampled]
    return {
        "context_budget": budget or "full", **shape,
        "stock_sample": {"questions": len(first_docs), "requests": len(sampled), "scale": scale,
                         "seconds": stock_run.seconds, "tokens": stock_run.tokens},
        "seconds": {"cached": cached_run.seconds, "stock_scaled": stock_seconds},
        "tokens": {"cached": cached_run.tokens, "stock_scaled": stock_tokens, **minimum,
                   "cached_over_two_level": cached_run.tokens / minimum["two_level"]},
        "speedup": stock_seconds / cached_run.seconds,
        "token_bound": stock_tokens / cached_run.tokens,
        "peak_mib": {"stock": stock_run.peak_mib, "cached": cached_run.peak_mib},
        "memory_method": cached_run.memory_method,
        "max_abs_diff": max(abs(a[0] - b[0]) for a, b in pairs),
        "answers_agree": _chosen(sampled_instances, [a for a, _ in pairs]) ==
        _chosen(sampled_instances, [b for _, b in pairs]),
        "greedy_agree": all(a[1] == b[1] for a, b in pairs),
        **{key: cached.prefix_stats[key] - before[key] for key in ("waves", "wave_groups", "rechecked_requests")},
    }


def run_prefix_cache_bench(config: BenchConfig) -> dict[str, Any]:
    import torch
    import transformers
    from lm_eval.models.huggingface import HFLM

    from icl_generalization.scoring.cached_hflm import PrefixCachedHFLM

    model, tokenizer, path, name = _load(config)
    stock = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=config.stock_batch_size)
    cached = PrefixCachedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=config.stock_batch_size,
                              prefix_min_tokens=config.min_tokens, prefix_batch_tokens=config.batch_tokens,
                              prefix_batch_groups=config.batch_groups, prefix_recheck_nats=config.recheck_nats)
    device = next(model.parameters()).device
    result: dict[str, Any] = {
        "config": asdict(config), "model": name, "model_path": path, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or
        platform.machine(), "torch_threads": torch.get_num_threads(), "dtype": config.dtype,
        "parameters": sum(p.numel() for p in model.parameters()),
        "attention": model.config._attn_implementation, "torch": torch.__version__,
        "batch_groups": cached.prefix_settings.groups_per_forward(device),
        "recheck_nats": cached.prefix_settings.recheck_per_token(getattr(torch, config.dtype)),
        "transformers": transformers.__version__,
    }
    # The cached path's one-time probe (scoring.probe) runs now, so neither path's tokens or time include it.
    result["prefix_cache_off"] = cached.prefix_cache_verdict()
    seen, remove_hook = _token_counter(model)
    try:
        with torch.no_grad():  # one small forward first, so one-time kernel setup is timed on neither path
            model(input_ids=torch.tensor([[tokenizer.eos_token_id or 0] * 8], device=device))
        result["lengths"] = [_one_length(budget, config, path, stock, cached, seen, device)
                             for budget in config.lengths]
    finally:
        remove_hook()
    return result


def format_report(result: dict[str, Any]) -> str:
    rows = result["lengths"]
    sample = rows[0]["stock_sample"]
    lines = [
        f"model {result['model']} ({result['parameters'] / 1e6:,.0f}M parameters) on {result['device']} "
        f"({result['device_name']}, {result['torch_threads']} threads), {result['dtype']}, attention "
        f"{result['attention']}; task {result['config']['task']}",
        f"stock hf (batch {result['config']['stock_batch_size']}) timed on the first {sample['questions']} "
        "questions' requests at each length and SCALED to the cached path's requests (columns marked ~)",
        "",
        "| context budget | context tokens | questions | requests | cached s | stock s ~ | speed-up | token bound "
        "| speed-up / bound | tokens cached | two-level minimum | cached / minimum | peak MiB cached | "
        "peak MiB stock | max abs diff | answers agree |",
        "|---|" + "---:|" * 14 + "---|",
    ]
    for r in rows:
        t = r["tokens"]
        lines.append(
            f"| {r['context_budget']} | {r['context_tokens_max']:,} | {r['questions']} | {r['requests']} | "
            f"{r['seconds']['cached']:.1f} | {r['seconds']['stock_scaled']:.1f} | {r['speedup']:.1f}x | "
            f"{r['token_bound']:.1f}x | {r['speedup'] / r['token_bound']:.2f} | {t['cached']:,} | "
            f"{t['two_level']:,} | {t['cached_over_two_level']:.3f} | {r['peak_mib']['cached']:,.0f} | "
            f"{r['peak_mib']['stock']:,.0f} | {r['max_abs_diff']:.1e} | "
            f"{'yes' if r['answers_agree'] and r['greedy_agree'] else 'NO'} |")
    lines += ["", f"peak memory: {rows[0]['memory_method']}; exactness on the stock-sampled requests"]
    if any(r["rechecked_requests"] for r in rows):
        lines.append(f"near ties scored again the stock way (cached s includes them; prefix_recheck_nats "
                     f"{result['recheck_nats']:g} per token): "
                     + ", ".join(f"{r['context_budget']}: {r['rechecked_requests']} of {r['requests']} requests"
                                 for r in rows))
    if result["batch_groups"] > 1:
        lines.append(f"contexts batched (up to {result['batch_groups']} per forward): "
                     + ", ".join(f"{r['context_budget']}: {r['wave_groups']} of {r['contexts']} contexts in "
                                 f"{r['waves']} waves" for r in rows))
    if result["prefix_cache_off"]:
        lines.append(f"prefix cache OFF for this model: {result['prefix_cache_off']}")
    return "\n".join(lines)


def write_result(result: dict[str, Any], out: OutputFile) -> None:
    """Write the figures as JSON into ``out``, claimed by the caller before the (long) benchmark ran."""
    out.write_text(out.path, json.dumps(result, indent=2, sort_keys=True) + "\n")
