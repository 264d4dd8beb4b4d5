"""``PrefixCachedHFLM``: lm-eval's ``HFLM`` that runs each long shared context once (see ``prefix_cache``).

The questions of an in-context shard share one context string, so their requests share a long token prefix.
``_loglikelihood_tokens`` groups requests by that prefix at the token level, computes each group's prefix once
and scores the rest of every request (question + choice) against its cache. Results are HFLM's
``(log-likelihood, is-greedy)`` pairs in the original order; requests without a long shared prefix go through
HFLM's own path unchanged.

``generate_until`` does the same for generation: requests whose encoded contexts share a long prefix generate
from one computed prefix (``generate_from_prefix``, one request at a time, through HFLM's own
``_model_generate``: its stop-sequence criteria and sampling defaults), with HFLM's encoding, left truncation and
post-processing of each request; the others go through HFLM's batched ``generate_until``.

Model arguments (``--model_args``): ``prefix_cache`` (default true), ``prefix_min_tokens`` (shortest prefix
worth sharing, default 256), ``prefix_batch_tokens`` (most tokens in one forward, default 1024),
``prefix_memory_mb`` (memory budget of one forward; default 2 GiB on CPU, half the free memory on CUDA) and
``prefix_batch_groups`` (most groups of different contexts scored side by side in one forward,
``scoring.group_batches``; default 8 on CUDA, where small forwards leave the device idle, and 1 elsewhere) and
``prefix_recheck_nats`` (see below).

In half precision the cached path's log-likelihoods differ from stock scoring's by rounding, which can swap two
choices that are nearly tied. A question (the requests sharing one context) whose best choice does not lead by
more than ``prefix_recheck_nats`` per scored token on each side (``scoring.near_ties``) is scored again the stock
way, so the cached path chooses stock's answers: default ``RECHECK_NATS`` per dtype in bf16 and fp16 (measured on
the default model, docs/performance.md), 0 (off) in float32, where the paths agree to about 1e-5.

Unlike HFLM, a request longer than the model's window is refused (``ContextBudgetError``) instead of being
cut from the left with a log line: for an in-context task that cut silently drops the evidence.

The cached path is trusted only on models where it has proved itself: on first use a short probe is scored
both ways (``scoring.probe``). A model that fails it, or whose cached path raises later, is scored the stock way
with one log line saying why: an architecture the cached path does not fit costs speed, never a wrong number
or a crashed evaluation.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text
from tqdm import tqdm

from icl_generalization.core.errors import ContextBudgetError, UserError
from icl_generalization.core.validation import flag, non_negative_float, positive_int
from icl_generalization.scoring.attention import masked_attention
from icl_generalization.scoring.group_batches import GroupWork, plan_waves, score_wave
from icl_generalization.scoring.near_ties import near_tie_requests
from icl_generalization.scoring.prefix_cache import (
    PrefixCacheConfig,
    ScoredContinuation,
    compute_prefix,
    generate_from_prefix,
    packed_tokens,
    score_continuations,
    unsupported_reason,
)
from icl_generalization.scoring.probe import cached_path_verdict, distrust

log = logging.getLogger(__name__)

DEFAULT_MIN_TOKENS = 256
GPU_BATCH_GROUPS = 8
# Per scored token, how far a half-precision cached log-likelihood may be from stock's before its question is
# scored again: on the default model in bf16 the differences were 0.031 at the 95th percentile and 0.078 at most
# (docs/performance.md), so 0.05 catches the usual near ties without rescoring most questions. fp16 keeps three
# more bits of mantissa, an eighth of bf16's rounding; its value is scaled, not measured (no GPU was lent).
RECHECK_NATS = {torch.bfloat16: 0.05, torch.float16: 0.01}
# HFLM's request triple: ((context, continuation) strings or None, context tokens, continuation tokens).
Request = tuple[Any, list[int], list[int]]


@dataclass(frozen=True)
class Group:
    members: tuple[int, ...]  # request indices
    prefix_length: int  # tokens the members share and the cache holds


@dataclass(frozen=True)
class Plan:
    groups: tuple[Group, ...]
    ordinary: tuple[int, ...]  # request indices for HFLM's own path
    tokens: int  # tokens this plan runs through the model


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if differ.size else n


def plan_groups(shareable: Sequence[Sequence[int]], lengths: Sequence[int], min_tokens: int) -> Plan:
    """Split requests into prefix-sharing groups that minimise the tokens run.

    ``lengths[i]`` is how many tokens the model reads for request i (context + continuation, minus the last
    token) and ``shareable[i]`` the start of them that may sit in a shared prefix (its context: the prefix's last
    logits predict the first scored token, so a prefix must end at or before the continuation starts). Equal
    contexts are held once (1,200 requests on one 8k-token context keep one array, not 1,200), and nothing is
    concatenated. With the shareable parts sorted lexicographically, the common prefix of any run of requests
    is the minimum of its neighbours' common prefixes, and the best split into runs is a small dynamic
    programme: a group of k requests sharing L tokens costs sum(lengths) - (k - 1) * L; a run sharing fewer
    than ``min_tokens`` is never a group.

    This also handles contexts nested inside others, where merging at the shortest shared prefix would re-run
    the longer contexts' tails. Runs are optimal when each context is long beside the text after it, as in ICL
    tasks (a test checks this against brute force); a short request sorted between the members of a deep group
    could pair with one on the far side, which runs cannot express (the exact optimum needs a DP over the
    prefix tree; not worth it here). The programme is quadratic in the size of a sharing run, vectorised:
    1,200 requests on one 2,200-token context take well under a second, negligible beside the model.
    """
    if min_tokens < 1:
        raise ValueError(f"min_tokens must be at least 1, got {min_tokens}")
    n = len(shareable)
    if len(lengths) != n:
        raise ValueError("shareable and lengths differ in length")
    # Only the shareable part of a request can be shared, so requests are sorted and compared on that part
    # alone; sorting whole inputs would let a continuation's tokens split requests that could share.
    # Big-endian fixed-width bytes sort like the token lists (a prefix first) but compare with memcmp.
    distinct: dict[bytes, int] = {}
    arrays: list[np.ndarray] = []
    keys: list[bytes] = []
    which: list[int] = []  # request -> its distinct shareable part
    for part in shareable:
        array = np.asarray(part, dtype=np.uint32)
        key = array.astype(">u4").tobytes()
        k = distinct.setdefault(key, len(arrays))
        if k == len(arrays):
            arrays.append(array)
            keys.append(key)
        which.append(k)
    del distinct
    order = sorted(range(n), key=lambda i: keys[which[i]])
    sorted_lengths = np.array([lengths[i] for i in order], dtype=np.int64)
    near = np.zeros(n, dtype=np.int64)  # near[k]: what sorted requests k-1 and k may share
    for k in range(1, n):
        a, b = which[order[k - 1]], which[order[k]]
        near[k] = len(arrays[a]) if a == b else _common_prefix(arrays[a], arrays[b])
    total = np.concatenate([[0], np.cumsum(sorted_lengths)])
    best = np.zeros(n + 1, dtype=np.int64)
    choice: list[tuple[int, int]] = [(0, 0)] * (n + 1)  # (start, shared) of the last group of the first j
    low = 0  # the first sorted request of the current run whose neighbours all share >= min_tokens
    for j in range(1, n + 1):
        best[j], choice[j] = best[j - 1] + sorted_lengths[j - 1], (j - 1, 0)
        if j < 2 or near[j - 1] < min_tokens:
            low = j - 1
            continue
        # Candidate groups: sorted requests i .. j-1 for i = j-2 down to low, vectorised over i; what such a
        # group shares is the running minimum of the neighbours' shares.
        starts = np.arange(j - 2, low - 1, -1)
        shared = np.minimum.accumulate(near[low + 1:j][::-1])
        cost = best[starts] + total[j] - total[starts] - (j - 1 - starts) * shared
        k = int(np.argmin(cost))
        if cost[k] < best[j]:
            best[j], choice[j] = cost[k], (int(starts[k]), int(shared[k]))
    groups: list[Group] = []
    ordinary: list[int] = []
    j = n
    while j > 0:
        i, length = choice[j]
        if length:
            groups.append(Group(members=tuple(order[i:j]), prefix_length=length))
        else:
            ordinary.append(order[i])
        j = i
    return Plan(groups=tuple(reversed(groups)), ordinary=tuple(sorted(ordinary)), tokens=int(best[n]))


def _work(requests: Sequence[Request], group: Group) -> GroupWork:
    """A group's scoring, built when it runs (one context's tokens at a time, not every group's at once). Its
    prefix lies inside every member's context: ``plan_groups`` shares contexts only."""
    return GroupWork(prefix=tuple(requests[group.members[0]][1][:group.prefix_length]),
                     continuations=tuple(tuple(requests[i][1][group.prefix_length:] + requests[i][2])
                                         for i in group.members),
                     n_scored=tuple(len(requests[i][2]) for i in group.members))


def _optional_count(value: object, name: str) -> int | None:
    # lm-eval passes `--model_args x=None` as the string "None".
    return None if value is None or str(value).lower() == "none" else positive_int(value, name)


@dataclass(frozen=True)
class PrefixSettings:
    """The model arguments of the cached path, validated with the names a user types."""

    enabled: bool = True
    min_tokens: int = DEFAULT_MIN_TOKENS
    cache: PrefixCacheConfig = field(default_factory=PrefixCacheConfig)
    batch_groups: int | None = None  # None: GPU_BATCH_GROUPS on CUDA, 1 elsewhere
    recheck_nats: float | None = None  # None: RECHECK_NATS of the dtype the model computes in

    @classmethod
    def from_model_args(cls, prefix_cache: Any = True, prefix_min_tokens: Any = DEFAULT_MIN_TOKENS,
                        prefix_batch_tokens: Any = None, prefix_memory_mb: Any = None,
                        prefix_batch_groups: Any = None, prefix_recheck_nats: Any = None) -> PrefixSettings:
        batch = _optional_count(prefix_batch_tokens, "prefix_batch_tokens")
        recheck = None if prefix_recheck_nats is None or str(prefix_recheck_nats).lower() == "none" \
            else non_negative_float(prefix_recheck_nats, "prefix_recheck_nats")
        return cls(enabled=flag(prefix_cache, "prefix_cache"),
                   min_tokens=positive_int(prefix_min_tokens, "prefix_min_tokens"),
                   cache=PrefixCacheConfig(batch_tokens=batch or PrefixCacheConfig.batch_tokens,
                                           memory_mb=_optional_count(prefix_memory_mb, "prefix_memory_mb")),
                   batch_groups=_optional_count(prefix_batch_groups, "prefix_batch_groups"), recheck_nats=recheck)

    def recheck_per_token(self, dtype: torch.dtype) -> float:
        return self.recheck_nats if self.recheck_nats is not None else RECHECK_NATS.get(dtype, 0.0)

    def groups_per_forward(self, device: torch.device) -> int:
        if self.batch_groups is not None:
            return self.batch_groups
        return GPU_BATCH_GROUPS if device.type == "cuda" else 1

    def __post_init__(self) -> None:
        if self.min_tokens < 1:
            raise UserError(f"prefix_min_tokens must be a positive integer, got {self.min_tokens!r}")


@dataclass(frozen=True)
class GenerationRequest:
    """One ``generate_until`` request as HFLM runs it in a batch of its own."""

    context: list[int]  # encoded and left-truncated to leave room for the new tokens
    until: list[str]  # stop sequences, the end-of-text string included
    max_length: int  # context + new tokens (or the request's own ``max_length``)
    kwargs: dict[str, Any]  # the rest of the normalised gen_kwargs (do_sample, temperature, ...)


# lm-eval ships no type information, so HFLM is Any to mypy; the overridden methods are typed here.
class PrefixCachedHFLM(HFLM):  # type: ignore[misc]
    def __init__(self, *args: Any, prefix_cache: Any = True, prefix_min_tokens: Any = DEFAULT_MIN_TOKENS,
                 prefix_batch_tokens: Any = None, prefix_memory_mb: Any = None, prefix_batch_groups: Any = None,
                 prefix_recheck_nats: Any = None, **kwargs: Any) -> None:
        # Validated before the (slow) model load, so a typo fails at once.
        self.prefix_settings = PrefixSettings.from_model_args(prefix_cache, prefix_min_tokens, prefix_batch_tokens,
                                                              prefix_memory_mb, prefix_batch_groups,
                                                              prefix_recheck_nats)
        super().__init__(*args, **kwargs)
        self._join_cpu_processes(tensor_parallel=kwargs.get("tp_plan") is not None)
        # Running totals over this object's life: what the cached path did (logged, read by the benchmark).
        # planned_tokens: the plan's one-level count (each prefix once, every tail whole); packed_tokens: what the
        # cached path ran (each prefix once, each packed trie, where a question's choices share the question);
        # waves, wave_groups: forwards that batched groups of different contexts, and the groups in them, whose
        # padding (wave_padding_tokens) ran on top of packed_tokens; rechecked_requests: near ties scored again
        # the stock way in half precision.
        # generate_*: the same for generate_until, whose planned tokens are prompt tokens (new tokens cost the same
        # on both paths).
        self.prefix_stats = {"groups": 0, "cached_requests": 0, "ordinary_requests": 0, "planned_tokens": 0,
                             "packed_tokens": 0, "waves": 0, "wave_groups": 0, "wave_padding_tokens": 0,
                             "rechecked_requests": 0,
                             "generate_groups": 0, "generate_cached_requests": 0,
                             "generate_ordinary_requests": 0, "generate_planned_tokens": 0}
        self._prefix_warned: set[str] = set()
        self._packed = True  # the modes the probe proved (prefix_cache_verdict sets them)
        self._questions: list[tuple[str | None, int] | None] | None = None  # set while loglikelihood runs
        self._batched = False

    def _join_cpu_processes(self, tensor_parallel: bool = False) -> None:
        """Split the requests over the launched processes when they run on CPU, as HFLM does on GPUs.

        HFLM forms its ``Accelerator`` (gloo on CPU) whenever several processes are launched, but takes the
        rank and world size from it only when it counts more than one GPU; on CPU every process would score
        every request and each would write the results as "rank 0". Processes launched without forming a
        group at all (on CPU, accelerate needs ``ACCELERATE_USE_CPU=true``) would do the same: refused.
        """
        accelerator = getattr(self, "accelerator", None)
        if accelerator is not None and accelerator.num_processes > 1 and self.world_size == 1:
            self._rank = accelerator.process_index
            self._world_size = accelerator.num_processes
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        if launched > 1 and self.world_size == 1 and not tensor_parallel:
            raise UserError(f"{launched} processes were launched but they formed no process group, so each would "
                            "score every request and write the results; on CPU, set ACCELERATE_USE_CPU=true")

    def _collective_batch_size(self, requests: Sequence[Request], override_bs: int | None) -> int | None:
        """Resolve ``batch_size=auto`` where every process takes part.

        HFLM detects an automatic batch size with a collective (every process takes the smallest), at its first
        batch. The cached path hands each process's stock path a different subset of its requests, or none, so
        a detection there could wait forever for a process that never calls it; it runs here instead, once per
        call, which every process makes with the same number of requests (lm-eval pads them).
        """
        if self.world_size == 1 or override_bs is not None or self.batch_size != "auto" or not requests:
            return override_bs
        longest = max(range(len(requests)), key=lambda i: len(requests[i][1]) + len(requests[i][2]))
        size: int = self._detect_batch_size(requests, longest)
        return size

    def _refuse_overlong(self, requests: Sequence[Request]) -> None:
        # HFLM would keep the last max_length + 1 tokens and log a warning: the evidence at the front is lost.
        too_long = [len(ctx) + len(cont) for _, ctx, cont in requests if len(ctx) + len(cont) > self.max_length + 1]
        if too_long:
            raise ContextBudgetError(
                f"{len(too_long)} of {len(requests)} requests exceed the model's window of {self.max_length} "
                f"tokens (longest {max(too_long)}); shorten the context (--metadata context_budget=N) or raise "
                "--model_args max_length=N if the model supports it")

    def _cache_unsupported(self) -> str | None:
        if not self.prefix_settings.enabled:
            return "prefix_cache=false"
        if self.backend != "causal":
            return f"backend {self.backend!r} is not causal"
        return unsupported_reason(self.model)

    def prefix_cache_verdict(self) -> str | None:
        """Why this model is scored the stock way (``None``: the cached path passed its probe).

        The probe runs on the first call per model object, under the same autocast as scoring; later calls and
        other instances sharing the model reuse its verdict. Benchmarks call this first so the probe's tokens
        and time are counted on neither path.
        """
        reason = self._cache_unsupported()
        if reason is not None:
            return reason
        dtype = self.mixed_precision_dtype or next(self.model.parameters()).dtype
        with self._autocast():
            verdict = cached_path_verdict(self.model, self.max_length, self.prefix_settings.cache, dtype)
        self._packed, self._batched = verdict.packed, verdict.batched
        if verdict.trusted and not verdict.batched and self.prefix_settings.groups_per_forward(self.device) > 1:
            self._warn_once(f"prefix cache scores one context per forward: batching contexts "
                            f"{verdict.unbatched_because or 'needs the packed mode'}", log.info)
        if verdict.trusted and not verdict.packed:
            self._warn_once(f"prefix cache unpacked (one forward per continuation after the cached prefix): packing "
                            f"{verdict.unpacked_because}", log.info)
        return verdict.reason

    def _warn_stock(self, reason: str) -> None:
        if reason != "prefix_cache=false":
            self._warn_once(f"prefix cache off, scoring the stock way: {reason}", log.warning)

    def _warn_once(self, line: str, emit: Callable[[str], None]) -> None:
        # Once per line: loglikelihood_rolling calls _loglikelihood_tokens per batch.
        if line not in self._prefix_warned:
            self._prefix_warned.add(line)
            emit(line)

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        # The same context as HFLM._model_call, so mixed_precision_dtype means the same on both paths.
        with torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                            enabled=self.mixed_precision_dtype is not None):
            yield

    def _loglikelihood_tokens(self, requests: list[Request], disable_tqdm: bool = False,
                              override_bs: int | None = None) -> list[tuple[float, bool]]:
        self._refuse_overlong(requests)
        override_bs = self._collective_batch_size(requests, override_bs)
        reason = self._cache_unsupported()
        lengths = [len(ctx) + len(cont) - 1 for _, ctx, cont in requests]
        plan = None
        if reason is None and len(requests) >= 2:
            plan = plan_groups([ctx for _, ctx, _ in requests], lengths, self.prefix_settings.min_tokens)
            # The probe runs only where the cached path would: a task without shared contexts never pays it.
            reason = self.prefix_cache_verdict() if plan.groups else None
        if reason is not None or plan is None:
            if reason is not None:
                self._warn_stock(reason)
            return self._stock(requests, range(len(requests)), disable_tqdm, override_bs)
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        if plan.ordinary:
            for i, answer in zip(plan.ordinary, self._stock(requests, plan.ordinary, disable_tqdm, override_bs),
                                 strict=True):
                results[i] = answer
        if plan.groups:
            self._score_groups(requests, plan.groups, results, disable_tqdm)
            self._recheck_near_ties(requests, results, plan, disable_tqdm, override_bs)
        if any(r is None for r in results):  # the cached path failed part-way: the rest the stock way
            rest = [i for i, r in enumerate(results) if r is None]
            for i, answer in zip(rest, self._stock(requests, rest, disable_tqdm, override_bs), strict=True):
                results[i] = answer
        self._record_plan(plan, len(requests), sum(lengths), "", "prefix cache", "tokens")
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        # Which question each request belongs to, for the half-precision recheck: HFLM tokenizes the requests in
        # order and hands them to _loglikelihood_tokens, which sees only strings and tokens.
        self._questions = [None if r.doc_id is None else (r.task_name, r.doc_id) for r in requests]
        try:
            answers: list[tuple[float, bool]] = super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        finally:
            self._questions = None
        return answers

    def _recheck_near_ties(self, requests: Sequence[Request], results: list[tuple[float, bool] | None], plan: Plan,
                           disable_tqdm: bool, override_bs: int | None) -> None:
        """Score again the stock way every question the cached path scored whose answer half-precision rounding
        could flip (``scoring.near_ties``), so the answers are stock's. Only ``loglikelihood`` calls name the
        questions; other callers (``loglikelihood_rolling``) have none to flip."""
        dtype = self.mixed_precision_dtype or next(self.model.parameters()).dtype
        per_token = self.prefix_settings.recheck_per_token(dtype)
        cached = [i for g in plan.groups for i in g.members if results[i] is not None]
        questions = self._questions
        if per_token <= 0 or not cached or questions is None or len(questions) != len(requests):
            return
        scores = [answer[0] for i in cached if (answer := results[i]) is not None]  # every one: cached is filtered
        near = [cached[k] for k in near_tie_requests([requests[i] for i in cached], [questions[i] for i in cached],
                                                     scores, per_token)]
        if not near:
            return
        log.info("prefix cache: %d of %d cached requests are near ties in %s (within %g nats per scored token); "
                 "scoring their questions again the stock way", len(near), len(cached),
                 str(dtype).removeprefix("torch."), per_token)
        for i, answer in zip(near, self._stock(requests, near, disable_tqdm, override_bs), strict=True):
            results[i] = answer
        self.prefix_stats["rechecked_requests"] += len(near)

    def _record_plan(self, plan: Plan, n_requests: int, stock_tokens: int, key: str, label: str, unit: str) -> None:
        """Add one call's plan to ``prefix_stats`` (keys prefixed by ``key``) and log it in one line."""
        stats = self.prefix_stats
        stats[f"{key}groups"] += len(plan.groups)
        stats[f"{key}cached_requests"] += n_requests - len(plan.ordinary)
        stats[f"{key}ordinary_requests"] += len(plan.ordinary)
        stats[f"{key}planned_tokens"] += plan.tokens
        log.info("%s: %d groups (shared prefixes of %s tokens), %d requests cached, %d ordinary; at most %d %s to run "
                 "instead of %d", label, len(plan.groups), sorted({g.prefix_length for g in plan.groups}),
                 n_requests - len(plan.ordinary), len(plan.ordinary), plan.tokens, unit, stock_tokens)

    def _stock(self, requests: Sequence[Request], indices: Sequence[int], disable_tqdm: bool,
               override_bs: int | None) -> list[tuple[float, bool]]:
        subset = [requests[i] for i in indices]
        stock: list[tuple[float, bool]] = super()._loglikelihood_tokens(subset, disable_tqdm=disable_tqdm,
                                                                        override_bs=override_bs)
        return stock

    def _score_groups(self, requests: Sequence[Request], groups: Sequence[Group],
                      results: list[tuple[float, bool] | None], disable_tqdm: bool) -> None:
        """Score the groups on the cached path; if it raises, stop and leave the rest for the stock path."""
        pbar = tqdm(total=sum(len(g.members) for g in groups), disable=(disable_tqdm or self.rank != 0),
                    desc="Running loglikelihood requests (prefix cache)")
        try:
            self._score_cached(requests, groups, results, pbar)
        except Exception as error:  # a shape the probe did not meet; never worth a crashed evaluation
            self._distrust_after(error)
        finally:
            pbar.close()

    def _distrust_after(self, error: Exception) -> None:
        """The cached path raised after its probe passed: this model is scored the stock way from now on, with
        one warning; the caller leaves its unscored requests to the stock path."""
        reason = f"the cached path failed after its probe passed ({type(error).__name__}: {error})"
        distrust(self.model, reason)
        self._warn_stock(reason)

    def _score_cached(self, requests: Sequence[Request], groups: Sequence[Group],
                      results: list[tuple[float, bool] | None], pbar: tqdm) -> None:
        config = self.prefix_settings.cache
        # A flash-attention model runs the packed forwards in SDPA and goes back to its kernel afterwards.
        with self._autocast(), masked_attention(self.model):
            waves: list[list[int]] = []
            shapes: list[tuple[int, int]] = []
            alone = list(range(len(groups)))
            if self._batched:
                shapes = [_work(requests, g).shape for g in groups]
                waves, alone = plan_waves(self.model, shapes, self.prefix_settings.groups_per_forward(self.device),
                                          config)
            for wave in waves:
                works = [_work(requests, groups[g]) for g in wave]
                try:
                    wave_scores = score_wave(self.model, works, config, self.softmax_dtype)
                except torch.OutOfMemoryError:  # the estimate was short for this wave; its groups fit alone
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
                    log.info("prefix cache: a wave of %d contexts ran out of memory; scoring them one at a time",
                             len(wave))
                    alone.extend(wave)
                    continue
                self._count_wave(works, [shapes[g] for g in wave])
                for g, group_scores in zip(wave, wave_scores, strict=True):
                    self._record(requests, groups[g], group_scores, results, pbar)
            for g in alone:
                work = _work(requests, groups[g])
                prefix = compute_prefix(self.model, work.prefix, config)
                scored = score_continuations(self.model, prefix, work.continuations, work.n_scored, config,
                                             self.softmax_dtype, self._packed)
                self.prefix_stats["packed_tokens"] += prefix.length + packed_tokens(
                    self.model, prefix.length, work.continuations, config, self._packed)
                self._record(requests, groups[g], scored, results, pbar)
                del prefix, work  # free the cache before the next group's prefix is computed

    def _count_wave(self, works: Sequence[GroupWork], shapes: Sequence[tuple[int, int]]) -> None:
        """What a wave ran: every row padded to the longest prefix and the longest trie."""
        real = sum(length + size for length, size in shapes)
        padded = len(works) * (max(length for length, _ in shapes) + max(size for _, size in shapes))
        self.prefix_stats["waves"] += 1
        self.prefix_stats["wave_groups"] += len(works)
        self.prefix_stats["packed_tokens"] += real
        self.prefix_stats["wave_padding_tokens"] += padded - real

    def _record(self, requests: Sequence[Request], group: Group, scored: Sequence[ScoredContinuation],
                results: list[tuple[float, bool] | None], pbar: tqdm) -> None:
        for i, s in zip(group.members, scored, strict=True):
            answer = (s.total, s.greedy)
            results[i] = answer
            if requests[i][0] is not None:
                self.cache_hook.add_partial("loglikelihood", requests[i][0], answer)
            pbar.update(1)

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        reason = self._cache_unsupported()
        prepared: list[GenerationRequest] = []
        plan = None
        if reason is None and len(requests) >= 2:
            prepared = [self._prepare_generation(*r.args) for r in requests]
            # A prefix must leave a context token out: generation starts from a forward over a non-empty suffix.
            plan = plan_groups([p.context[:-1] for p in prepared], [len(p.context) for p in prepared],
                               self.prefix_settings.min_tokens)
            reason = self.prefix_cache_verdict() if plan.groups else None
        if reason is not None or plan is None:
            if reason is not None:
                self._warn_stock(reason)
            stock: list[str] = super().generate_until(requests, disable_tqdm=disable_tqdm)
            return stock
        results: list[str | None] = [None] * len(requests)
        if plan.groups:
            self._generate_groups(requests, prepared, plan.groups, results, disable_tqdm)
        # One stock call for the ordinary requests and whatever a failed cached path left. With several processes
        # and batch_size=auto, HFLM detects the batch size with a collective in every call, so every process
        # makes that one call, if need be with nothing to generate.
        rest = [i for i, r in enumerate(results) if r is None]
        if rest or (self.world_size > 1 and self.batch_size == "auto"):
            answers = super().generate_until([requests[i] for i in rest], disable_tqdm=disable_tqdm)
            for i, answer in zip(rest, answers, strict=True):
                results[i] = answer
        self._record_plan(plan, len(requests), sum(len(p.context) for p in prepared), "generate_",
                          "prefix cache (generate_until)", "prompt tokens")
        return [r for r in results if r is not None]

    def _prepare_generation(self, context: str, gen_kwargs: dict[str, Any]) -> GenerationRequest:
        """HFLM.generate_until's preparation of one request (kwargs, stop sequences, encoding, truncation)."""
        kwargs = dict(normalize_gen_kwargs(gen_kwargs, self.max_gen_toks))
        eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
        max_gen_toks = int(kwargs.pop("max_gen_toks"))
        max_ctx_len = self.max_length - max_gen_toks
        if max_ctx_len <= 0:
            raise UserError(f"requested max tokens to generate ({max_gen_toks}) must be less than the model's "
                            f"maximum sequence length ({self.max_length})")
        # tok_batch_encode, not tok_encode: HFLM encodes generation contexts as a batch (its special-token rule
        # differs); a batch of one is what stock generation of this request alone reads.
        ids, _ = self.tok_batch_encode([context], left_truncate_len=max_ctx_len, truncation=self.truncation)
        tokens: list[int] = ids[0].tolist()
        if "max_length" in kwargs:
            self._warn_once("`max_length` in generation kwargs. Please use `max_gen_toks` instead.", log.warning)
        max_length = int(kwargs.pop("max_length", len(tokens) + max_gen_toks))
        return GenerationRequest(context=tokens, until=until, max_length=max_length, kwargs=kwargs)

    def _finish_generation(self, tokens: list[int], until: list[str]) -> str:
        """HFLM.generate_until's post-processing of one generated row: thinking tokens, decoding, stop sequences."""
        if isinstance(self.think_end_token, int):
            marks = [k for k, t in enumerate(tokens) if t == self.think_end_token]
            if marks:
                tokens = tokens[marks[-1] + 1:]
        text: str = self.tok_decode(tokens)
        if isinstance(self.think_end_token, int):
            text = text.lstrip()
        think = self.think_end_token if isinstance(self.think_end_token, str) else None
        finished: str = postprocess_generated_text(generation=text, stop=until, think_end_token=think)
        return finished

    def _generate_groups(self, requests: Sequence[Instance], prepared: Sequence[GenerationRequest],
                         groups: Sequence[Group], results: list[str | None], disable_tqdm: bool) -> None:
        """Generate the groups on the cached path; if it raises, stop and leave the rest for the stock path."""
        pbar = tqdm(total=sum(len(g.members) for g in groups), disable=(disable_tqdm or self.rank != 0),
                    desc="Running generate_until requests (prefix cache)")
        try:
            for group in groups:
                with self._autocast(), masked_attention(self.model):  # as the probe proved the prefix's forwards
                    prefix = compute_prefix(self.model, prepared[group.members[0]].context[:group.prefix_length],
                                            self.prefix_settings.cache)
                for i in group.members:
                    request = prepared[i]
                    # HFLM's own generate call (autocast, stop-sequence criteria over the whole prompt, sampling
                    # defaults), handed the prefix's cache; generation runs in the model's own attention, as stock.
                    new = generate_from_prefix(self.model, prefix, request.context[group.prefix_length:],
                                               generate=self._generate_call(request))
                    results[i] = answer = self._finish_generation(new[0].tolist(), request.until)
                    self.cache_hook.add_partial("generate_until", requests[i].args, answer)
                    pbar.update(1)
                del prefix  # free the cache before the next group's prefix is computed
        except Exception as error:  # a shape the probe did not meet; never worth a crashed evaluation
            self._distrust_after(error)
        finally:
            pbar.close()

    def _generate_call(self, request: GenerationRequest) -> Callable[..., torch.Tensor]:
        def run(input_ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            out: torch.Tensor = self._model_generate(context=input_ids, max_length=request.max_length,
                                                     stop=request.until, **request.kwargs, **kwargs)
            return out

        return run


__all__ = ["GenerationRequest", "Group", "Plan", "PrefixCachedHFLM", "PrefixSettings", "plan_groups"]
