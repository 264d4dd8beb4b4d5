"""GPU check of the prefix-cached scorer: cached vs stock scoring, bf16, peak memory, in a few minutes.

Runs on a bare CUDA machine with torch and transformers only: no lm-eval, no hub, no package install. The
scorer's core (``scoring/prefix_cache.py``), the peak-memory probe and the random-weight configs are loaded
from their files, so nothing else of the package (pydantic, lm-eval) is imported.

For each model (the default model from a converted safetensors folder, and Llama-architecture configs of real
sizes with random weights: throughput needs no trained weights) and each context length, an ICL-shaped workload
of random tokens: one context, ``questions`` questions of 12-20 tokens, each with 4 choices of 1-6 tokens.

- cached: ``compute_prefix`` once, then ``score_continuations`` on every question + choice (packed tries);
- stock: one full forward of context + question + choice per request, as lm-eval's ``hf`` model at batch 1;
  timed on the first ``stock_questions`` questions and scaled to all (the JSON says so);
- both log-softmax in float32; exactness on the stock-timed requests: largest |log-likelihood difference| and
  whether each question's best choice is the same;
- peak memory of each path (``peak_memory``: ``torch.cuda.max_memory_allocated`` on CUDA);
- several contexts per forward (``scoring/group_batches.py``): ``--wave-groups`` short contexts of about
  ``--wave-length`` tokens with ``--wave-questions`` questions each, scored one group at a time and in waves of
  up to ``--wave-size`` groups; the ratio of the two times and the largest difference between them.

    python scripts/gpu_check.py --default-model /path/to/smollm2-135m --out gpu_check.json
    python scripts/gpu_check.py --device cpu --tiny --out /tmp/check.json    # the CPU smoke test
    python scripts/gpu_check.py --device cpu --dtypes float32 --default-model M --random-configs "" \
        --lengths "" --out waves.json                                           # only the waves, on CPU

The JSON is written through a temporary file and a rename, and an existing file is never replaced (the
package's ``core.outputs`` needs pydantic, which the GPU machine may lack).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import transformers

DEFAULT_VOCAB = 49152  # the default model's, for the random configs when it is not loaded
SCORING = Path(__file__).resolve().parents[1] / "icl_generalization" / "scoring"


def _load(name: str, as_name: str | None = None) -> ModuleType:
    spec = importlib.util.spec_from_file_location(as_name or f"gpu_check_{name}", SCORING / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


# The scorer imports its attention switch by package name; registered under that name, the import finds it
# in sys.modules without running the package's __init__ (which needs lm-eval).
_load("attention", "icl_generalization.scoring.attention")
prefix_cache = _load("prefix_cache", "icl_generalization.scoring.prefix_cache")
group_batches = _load("group_batches")
peak_memory = _load("peak_memory")
random_models = _load("random_models")


Question = tuple[list[int], list[list[int]]]  # the question's tokens and its four choices'


def workload(vocab: int, length: int, questions: int, seed: int = 0) -> tuple[list[int], list[Question]]:
    """A random context of ``length`` tokens and ``questions`` questions with four choices each."""
    rng = random.Random(seed)
    ids = range(3, vocab)  # clear of the usual special ids
    context = [rng.choice(ids) for _ in range(length)]
    out = []
    for _ in range(questions):
        question = [rng.choice(ids) for _ in range(rng.randint(12, 20))]
        out.append((question, [[rng.choice(ids) for _ in range(rng.randint(1, 6))] for _ in range(4)]))
    return context, out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def stock_loglikelihood(model: Any, context: list[int], continuation: list[int], n_scored: int) -> float:
    """lm-eval's hf scoring of one request at batch 1: one forward, float32 log-softmax, the scored tokens."""
    device = next(model.parameters()).device
    ids = torch.tensor([context + continuation], device=device)
    logits = model(input_ids=ids[:, :-1], use_cache=False).logits[0, -n_scored:]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return float(logprobs.gather(1, ids[0, -n_scored:, None]).sum())


def check(model: Any, name: str, length: int, questions: int, stock_questions: int,
          batch_tokens: int) -> dict[str, Any]:
    device = next(model.parameters()).device
    vocab = model.get_input_embeddings().num_embeddings
    context, asked = workload(vocab, length, questions)
    flat = [question + choice for question, choices in asked for choice in choices]
    n_scored = [len(choice) for _, choices in asked for choice in choices]  # lm-eval scores the choice only
    config = prefix_cache.PrefixCacheConfig(batch_tokens=batch_tokens)

    sampled = range(4 * stock_questions)
    with peak_memory.peak_memory(device) as stock_peak:
        _sync(device)
        start = time.perf_counter()
        stock = [stock_loglikelihood(model, context, flat[i], n_scored[i]) for i in sampled]
        _sync(device)
        stock_s = time.perf_counter() - start
    with peak_memory.peak_memory(device) as cached_peak:
        _sync(device)
        start = time.perf_counter()
        prefix = prefix_cache.compute_prefix(model, context, config)
        scored = prefix_cache.score_continuations(model, prefix, flat, n_scored, config, torch.float32)
        _sync(device)
        cached_s = time.perf_counter() - start
        cached_tokens = length + prefix_cache.packed_tokens(model, length, flat, config)
        del prefix
    cached = [s.total for s in scored]
    scale = len(flat) / len(sampled)
    best = [max(range(4), key=lambda j, q=q: values[4 * q + j]) for values in (stock, cached)
            for q in range(stock_questions)]
    stock_tokens = sum(length + len(c) - 1 for c in flat)
    # Each context once, each question once, each choice once (its last token is predicted, never run).
    two_level = length + sum(len(question) + sum(len(c) - 1 for c in choices) for question, choices in asked)
    return {
        "model": name, "context_tokens": length, "questions": questions, "requests": len(flat),
        "seconds": {"cached": cached_s, "stock_sampled": stock_s, "stock_scaled": stock_s * scale},
        "stock_sample": {"questions": stock_questions, "requests": len(sampled), "scale": scale},
        "speedup": stock_s * scale / cached_s,
        "tokens": {"cached": cached_tokens, "two_level_minimum": two_level, "stock": stock_tokens},
        "token_bound": stock_tokens / cached_tokens,
        "peak_mib": {"cached": cached_peak.mib, "stock": stock_peak.mib}, "memory_method": cached_peak.method,
        "max_abs_diff": max(abs(a - b) for a, b in zip(stock, cached, strict=False)),
        "best_choice_agree": best[:stock_questions] == best[stock_questions:],
    }


def check_waves(model: Any, name: str, groups: int, length: int, questions: int, batch_tokens: int,
                wave_size: int) -> dict[str, Any]:
    """Many short contexts, scored one group at a time and then in waves of up to ``wave_size`` groups."""
    device = next(model.parameters()).device
    vocab = model.get_input_embeddings().num_embeddings
    rng = random.Random(1)
    works = []
    for g in range(groups):
        context, asked = workload(vocab, rng.randint(length * 9 // 10, length), questions, seed=100 + g)
        continuations = tuple(tuple(question + choice) for question, choices in asked for choice in choices)
        n_scored = tuple(len(choice) for _, choices in asked for choice in choices)
        works.append(group_batches.GroupWork(tuple(context), continuations, n_scored))
    config = prefix_cache.PrefixCacheConfig(batch_tokens=batch_tokens)
    timings, results = {}, {}
    for mode in ("alone", "waves"):
        with peak_memory.peak_memory(device) as peak:
            _sync(device)
            start = time.perf_counter()
            waves, alone = group_batches.plan_waves(model, [w.shape for w in works],
                                                    wave_size if mode == "waves" else 1, config)
            scored: dict[int, list[float]] = {}
            for wave in waves:
                for g, group in zip(wave, group_batches.score_wave(model, [works[g] for g in wave], config,
                                                                    torch.float32), strict=True):
                    scored[g] = [s.total for s in group]
            for g in alone:
                prefix = prefix_cache.compute_prefix(model, works[g].prefix, config)
                scored[g] = [s.total for s in prefix_cache.score_continuations(
                    model, prefix, works[g].continuations, works[g].n_scored, config, torch.float32)]
                del prefix
            _sync(device)
        timings[mode] = {"seconds": time.perf_counter() - start, "peak_mib": peak.mib, "waves": len(waves),
                         "groups_in_waves": sum(len(w) for w in waves)}
        results[mode] = [v for g in range(groups) for v in scored[g]]
    return {"model": name, "groups": groups, "context_tokens_max": length, "questions_per_group": questions,
            "wave_size": wave_size, **timings,
            "speedup": timings["alone"]["seconds"] / timings["waves"]["seconds"],
            "max_abs_diff": max(abs(a - b) for a, b in zip(results["alone"], results["waves"], strict=True))}


def _models(args: argparse.Namespace, dtype: torch.dtype, device: torch.device) -> Iterator[tuple[str, Any]]:
    """One model at a time, so only one is in memory."""
    vocab = DEFAULT_VOCAB
    if args.default_model:
        model = transformers.AutoModelForCausalLM.from_pretrained(args.default_model, dtype=dtype,
                                                                  attn_implementation="sdpa")
        vocab = model.config.vocab_size
        yield f"default model ({Path(args.default_model).name})", model.to(device).eval()
        del model
    for name in args.random_configs:
        yield f"{name} (random weights)", random_models.random_model(name, vocab, dtype, device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--default-model", help="the converted default model's folder (safetensors)")
    parser.add_argument("--random-configs", default="llama-1b,llama-7b",
                        help=f"comma-separated, of {', '.join(random_models.RANDOM_CONFIGS)} "
                        "(default llama-1b,llama-7b)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtypes", default="bfloat16", help="comma-separated: bfloat16, float16, float32")
    parser.add_argument("--lengths", default="2048,8000", help="context tokens, comma-separated")
    parser.add_argument("--questions", type=int, default=32, help="questions per context (4 choices each)")
    parser.add_argument("--stock-questions", type=int, default=2, help="questions timed on the stock path")
    parser.add_argument("--batch-tokens", type=int, default=1024)
    parser.add_argument("--wave-groups", type=int, default=32, help="short contexts for the waves check (0: skip)")
    parser.add_argument("--wave-length", type=int, default=400, help="their longest context, in tokens")
    parser.add_argument("--wave-questions", type=int, default=2, help="questions per short context")
    parser.add_argument("--wave-size", type=int, default=8, help="most contexts per forward")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke test: the tiny config, short contexts")
    parser.add_argument("--out", required=True, help="the JSON of figures (must not exist)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.random_configs, args.lengths, args.questions = "tiny", "96,160", 3
        args.wave_groups, args.wave_length = 6, 96
    args.random_configs = [c for c in args.random_configs.split(",") if c]
    out = Path(args.out)
    if out.exists():
        parser.error(f"{out} exists; the check never replaces a file")
    device = torch.device(args.device)
    lengths = [int(n) for n in args.lengths.split(",") if n]
    figures: dict[str, Any] = {
        "device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(), "torch": torch.__version__,
        "transformers": transformers.__version__, "args": {k: v for k, v in vars(args).items() if k != "out"},
        "note": "stock seconds are timed on stock_sample requests and scaled to all requests", "runs": [],
        "waves": []}
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        for name, model in _models(args, dtype, device):
            model.requires_grad_(False)
            for length in lengths:
                print(f"[gpu_check] {name} {dtype_name} at {length} tokens", file=sys.stderr, flush=True)
                run = check(model, name, length, args.questions, args.stock_questions, args.batch_tokens)
                figures["runs"].append({"dtype": dtype_name, **run})
                print(f"  speed-up {run['speedup']:.1f}x (token bound {run['token_bound']:.1f}x), peak MiB "
                      f"cached {run['peak_mib']['cached']:.0f} / stock {run['peak_mib']['stock']:.0f}, "
                      f"max diff {run['max_abs_diff']:.2g}, best choices agree {run['best_choice_agree']}",
                      file=sys.stderr, flush=True)
            if args.wave_groups:
                print(f"[gpu_check] {name} {dtype_name}: {args.wave_groups} short contexts", file=sys.stderr,
                      flush=True)
                waves = check_waves(model, name, args.wave_groups, args.wave_length, args.wave_questions,
                                    args.batch_tokens, args.wave_size)
                figures["waves"].append({"dtype": dtype_name, **waves})
                print(f"  waves {waves['speedup']:.2f}x one group at a time ({waves['waves']['waves']} waves; "
                      f"{waves['alone']['seconds']:.1f} s / {waves['waves']['seconds']:.1f} s), max diff "
                      f"{waves['max_abs_diff']:.2g}", file=sys.stderr, flush=True)
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(figures, indent=2) + "\n")
    os.replace(temporary, out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
