"""Long contexts on the cached path: memory bounded by the chunk size, never by the number of questions; a context
up to the model's whole window is scored, one past it is a one-line error."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from icl_generalization.core.errors import ContextBudgetError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CHOICES = 4


def _peak_rss_mb() -> float:
    status = Path("/proc/self/status").read_text(encoding="ascii")
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def _reset_peak() -> None:
    # Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM) to the current one.
    Path("/proc/self/clear_refs").write_text("5", encoding="ascii")


def _requests(context: list[int], questions: int, seed: int = 0) -> list[tuple[None, list[int], list[int]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(questions):
        question = [rng.randrange(1000, 40000) for _ in range(5)]
        out += [(None, context + question, [rng.randrange(1000, 40000) for _ in range(3)]) for _ in range(CHOICES)]
    return out


def _lm(model_path: Path, batch_tokens: int, **kwargs: Any) -> Any:
    from icl_generalization.scoring.model_class import ICLGenLM

    return ICLGenLM(pretrained=str(model_path), device="cpu", prefix_batch_tokens=batch_tokens, **kwargs)


def measure(model_path: Path, batch_tokens: int, questions: list[int]) -> dict[str, Any]:
    """Peak resident memory above the level before scoring, in MiB, for each number of questions on one
    1,500-token context; and the size of the requests' own token lists (lm-eval's, 8 bytes a token)."""
    import torch

    torch.set_num_threads(1)
    lm = _lm(model_path, batch_tokens)
    assert lm.prefix_cache_verdict() is None
    context = list(range(2000, 3500))  # most of the tiny model's 2,048-token window
    lm._loglikelihood_tokens(_requests(context, questions[0], seed=9), disable_tqdm=True)  # warm the allocator
    growth, sizes = [], []
    for n in questions:
        requests = _requests(context, n)
        sizes.append(sum(len(ctx) + len(cont) for _, ctx, cont in requests) * 8 / 2**20)
        _reset_peak()
        before = _peak_rss_mb()
        lm._loglikelihood_tokens(requests, disable_tqdm=True)
        growth.append(_peak_rss_mb() - before)
    assert lm.prefix_stats["cached_requests"] == (questions[0] + sum(questions)) * CHOICES
    return {"growth_mb": growth, "requests_mb": sizes}


def _measure_apart(model_path: Path, batch_tokens: int, questions: list[int]) -> dict[str, Any]:
    # A process of its own, with glibc's mmap threshold fixed: large buffers then go back to the system when
    # freed, so the peak resident size follows live memory instead of the heap's fragmentation (with the
    # default, adaptive threshold it creeps up with the number of forwards even though nothing is kept).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, __file__, str(model_path), str(batch_tokens), *map(str, questions)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's resettable peak RSS")
def test_peak_memory_does_not_grow_with_the_number_of_questions(tiny_model_path: Path) -> None:
    """The tiny model has the real 49,152-token vocabulary, so every scored token's logits and log-softmax
    weigh about 0.4 MiB: keeping them for 1,000 requests would take over a gigabyte; one 64-token forward takes
    a few tens of MiB. From 25 to 250 questions at a fixed chunk size, the peak grows by less than half of
    lm-eval's own token lists (measured 1.2-1.9 MiB against their 11.5; before the grouping held each distinct
    context once it grew by 21.8 MiB, twice those lists), nothing per scored token; a wider chunk shows that the
    measure sees one forward's size."""
    narrow = _measure_apart(tiny_model_path, 64, [25, 250])
    few, many = narrow["growth_mb"]
    kept_logits_mb = 250 * CHOICES * 3 * 49152 * 4 * 2 / 2**20
    assert many - few < min(0.5 * narrow["requests_mb"][1], kept_logits_mb / 20), narrow
    wide = _measure_apart(tiny_model_path, 512, [25])
    assert wide["growth_mb"][0] > few + 48, (narrow, wide)


def test_a_context_filling_the_window_is_scored_and_one_past_it_is_refused(tiny_model_path: Path) -> None:
    lm = _lm(tiny_model_path, batch_tokens=128, max_length=400)  # a window of 400 tokens, in prefill chunks
    window = lm.max_length
    context = list(range(2000, 2000 + window - 1))
    requests = [(None, context, [1000 + i, 2000 + i]) for i in range(3)]  # the model reads exactly `window` tokens
    got = lm._loglikelihood_tokens(requests, disable_tqdm=True)
    expected = lm._stock(requests, range(len(requests)), True, None)
    assert lm.prefix_stats["cached_requests"] == len(requests)
    assert [g[0] for g in got] == pytest.approx([e[0] for e in expected], abs=1e-3)
    with pytest.raises(ContextBudgetError) as refused:
        lm._loglikelihood_tokens([*requests, (None, [*context, 7], [1000, 2000])], disable_tqdm=True)
    message = str(refused.value)
    assert "\n" not in message and f"window of {window} tokens" in message


if __name__ == "__main__":
    print(json.dumps(measure(Path(sys.argv[1]), int(sys.argv[2]), [int(n) for n in sys.argv[3:]])))
