"""Stock vs prefix-cached ``generate_until`` on one model object, in one process, with the outputs compared.

An ICL-shaped generation workload: ``--requests`` questions after one shared context of about
``--context-tokens`` tokens (synthetic facts), greedy, ``--new-tokens`` new tokens each with no stop sequence
but the end of text, so every request generates the same amount on both paths. Stock is lm-eval's
``HFLM.generate_until`` at each ``--stock-batch-sizes``; cached is ``PrefixCachedHFLM.generate_until`` (its probe
runs before the clock starts). Prints one JSON object: seconds per path, speed-up, whether the strings are equal.

    PYTHONPATH=. python scripts/bench_generate.py                       # the default model, 8 x ~2,000 tokens
    PYTHONPATH=. python scripts/bench_generate.py --model /path/to/model --device cuda
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from typing import Any

import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from transformers import AutoModelForCausalLM, AutoTokenizer

from icl_generalization.scoring.cached_hflm import PrefixCachedHFLM
from icl_generalization.weights.default_model import resolve_model


def _context(tokenizer: Any, tokens: int) -> str:
    """Facts until the text holds ``tokens`` tokens (one encode per fact count tried, doubling then trimming)."""
    facts = [f"Fact {i}: person{i} was born in city{i % 37} and works as a {('baker', 'pilot', 'judge')[i % 3]}."
             for i in range(4 * tokens)]
    n = 1
    while len(tokenizer.encode(" ".join(facts[:n]))) < tokens:
        n *= 2
    low, high = n // 2, n
    while low < high:  # the fewest facts that reach the length
        mid = (low + high) // 2
        low, high = (mid + 1, high) if len(tokenizer.encode(" ".join(facts[:mid]))) < tokens else (low, mid)
    return " ".join(facts[:low])


def _timed(name: str, lm: HFLM, requests: list[Instance]) -> tuple[float, list[str]]:
    start = time.perf_counter()
    out: list[str] = lm.generate_until(requests, disable_tqdm=True)
    seconds = time.perf_counter() - start
    logging.getLogger("bench_generate").info("%s: %.1f s", name, seconds)  # progress, in case a later path is cut
    return seconds, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="embedded name, folder or hub id (default: the default model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--context-tokens", type=int, default=2000)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--stock-batch-sizes", default="1", help="comma-separated batch sizes of stock HFLM")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (on a shared machine, more spin against other processes)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, args.dtype)).to(args.device).eval()
    context = _context(tokenizer, args.context_tokens)
    gen_kwargs = {"until": [], "max_gen_toks": args.new_tokens, "do_sample": False}
    requests = [Instance("generate_until", {}, (f"{context}\nQuestion: where was person{7 * q} born?\nAnswer:",
                                                dict(gen_kwargs)), q) for q in range(args.requests)]
    cached = PrefixCachedHFLM(pretrained=model, tokenizer=tokenizer, device=args.device, batch_size=1)
    verdict = cached.prefix_cache_verdict()
    if verdict is not None:
        raise SystemExit(f"the cached path is off for this model: {verdict}")
    cached_s, cached_out = _timed("cached", cached, requests)
    stock: dict[str, Any] = {}
    for size in (int(s) for s in args.stock_batch_sizes.split(",")):
        stock_lm = HFLM(pretrained=model, tokenizer=tokenizer, device=args.device, batch_size=size)
        seconds, out = _timed(f"stock batch {size}", stock_lm, requests)
        stock[f"batch_{size}"] = {"seconds": round(seconds, 2), "speed_up": round(seconds / cached_s, 2),
                                  "identical": out == cached_out,
                                  "differing_requests": sum(a != b for a, b in zip(out, cached_out, strict=True))}
    print(json.dumps({
        "model": path, "device": args.device, "dtype": args.dtype, "threads": args.threads,
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "requests": args.requests, "context_tokens": len(cached.tok_encode(context)), "new_tokens": args.new_tokens,
        "cached_seconds": round(cached_s, 2), "prefix_stats": cached.prefix_stats, "stock": stock,
        "sample_output": cached_out[0],
    }, indent=2))


if __name__ == "__main__":
    main()
