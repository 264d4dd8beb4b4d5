"""Log-likelihoods of continuations with the very model a finished lm-eval run scored with.

Calibration (Zhao et al. 2021, "Calibrate before use") needs each choice's log-likelihood after a content-free
prompt. lm-eval 0.4.13 has no request type for that which works on our tasks (its ``acc_mutual_info`` adds
unconditional requests, but its per-item comparison ``argmax == gold`` fails on the list of golds the syllogism
items carry), so the requests are scored after the run: the model is rebuilt through lm-eval's own registry
from the run's recorded ``model``, ``model_args``, ``batch_size`` and ``device``, exactly as lm-eval built it
(a checkpoint is verified against its manifest again), and asked through lm-eval's ``loglikelihood`` API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import JsonValue

from icl_generalization.scoring.model_class import register


@dataclass(frozen=True)
class RecordedModel:
    """What lm-eval recorded in a results file's ``config`` about the model it built."""

    model: str
    model_args: Mapping[str, JsonValue] = field(default_factory=dict)
    batch_size: JsonValue = None
    device: str | None = None


def score_continuations(recorded: RecordedModel, requests: Sequence[tuple[str, str]]) -> list[float]:
    """The log-likelihood of each ``(context, continuation)``, in order; duplicates are scored once."""
    from lm_eval.api.instance import Instance
    from lm_eval.api.registry import get_model

    register()
    unique = list(dict.fromkeys(requests))
    if not unique:
        return []
    lm = get_model(recorded.model).create_from_arg_obj(
        dict(recorded.model_args), {"batch_size": recorded.batch_size, "device": recorded.device})
    instances = [Instance(request_type="loglikelihood", doc={}, arguments=request, idx=0) for request in unique]
    scored = {request: float(ll) for request, (ll, _) in zip(unique, lm.loglikelihood(instances), strict=True)}
    return [scored[request] for request in requests]
