"""Wall time of generation after a cached prefix: one ``generate`` call per suffix vs many suffixes per call.

The workload is global augmentation's: the default reversal-curse corpus cut to about ``--prefix-tokens`` tokens
as the prefix (``global_prompt_parts``), then the global instruction around each of ``--suffixes`` documents.
Both paths reuse one ``compute_prefix``; end-of-sequence is ignored so each makes exactly
``--suffixes x --new-tokens`` tokens. Greedy rows of the two paths are compared token for token.

    PYTHONPATH=$PWD HF_HUB_OFFLINE=1 python scripts/bench_batched_generation.py --threads 2

Prints one JSON object (nothing is written).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from icl_generalization.data.load import get_dataset
from icl_generalization.scoring.prefix_cache import compute_prefix, generate_from_prefix
from icl_generalization.scoring.prefix_generation import generate_many_from_prefix
from icl_generalization.scoring.seeded_sampling import Decoding
from icl_generalization.training.strategies.base import AugmentConfig
from icl_generalization.training.strategies.prompted import global_prompt_parts
from icl_generalization.weights.default_model import resolve_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix-tokens", type=int, default=1500)
    parser.add_argument("--suffixes", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    path = resolve_model(None)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(args.device).eval()

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    ds = get_dataset("reversal_curse")
    docs = [d.text for d in ds.train if d.kind == "document"][:args.suffixes]
    config = AugmentConfig(mode="global", context_budget=args.prefix_tokens, max_new_tokens=args.new_tokens)
    prefix_text, template = global_prompt_parts(ds, count, 8192, config, max(docs, key=count))
    prefix_ids = tokenizer(prefix_text, add_special_tokens=False)["input_ids"]
    suffixes = [tokenizer(template.format(document=d), add_special_tokens=False)["input_ids"] for d in docs]
    seeds = list(range(len(suffixes)))
    common = {"max_new_tokens": args.new_tokens, "eos_token_id": None, "pad_token_id": tokenizer.pad_token_id}

    start = time.perf_counter()
    prefix = compute_prefix(model, prefix_ids)
    prefix_s = time.perf_counter() - start
    report: dict[str, Any] = {"device": args.device, "threads": torch.get_num_threads(),
                              "prefix_tokens": len(prefix_ids), "suffix_tokens": [len(s) for s in suffixes],
                              "new_tokens": args.new_tokens, "prefix_s": round(prefix_s, 2)}
    for name, decoding in (("greedy", Decoding()), ("sampled", Decoding(temperature=0.8, top_p=0.95))):
        start = time.perf_counter()
        one: list[list[list[int]]] = []
        for suffix, seed in zip(suffixes, seeds, strict=True):
            torch.manual_seed(seed)  # the previous path: one generate call per suffix, global RNG
            sampling = {} if decoding.greedy else {"do_sample": True, "temperature": 0.8, "top_p": 0.95}
            one.append(generate_from_prefix(model, prefix, suffix, **common, **sampling).tolist())
        per_suffix_s = time.perf_counter() - start
        start = time.perf_counter()
        many = [r.tolist() for r in generate_many_from_prefix(model, prefix, suffixes, seeds, decoding=decoding,
                                                              **common)]
        batched_s = time.perf_counter() - start
        report[name] = {"per_suffix_s": round(per_suffix_s, 2), "batched_s": round(batched_s, 2),
                        "speedup": round(per_suffix_s / batched_s, 2),
                        "rows_equal": sum(a == b for a, b in zip(one, many, strict=True))}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
