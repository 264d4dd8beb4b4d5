"""Text generation for augmentation: transformers on any device (with the prefix cache), or vLLM on GPUs.

Every backend implements :class:`GenerationBackend` and returns, per prompt, ``n`` samples as :class:`Sample`
(text, number of new tokens, whether the token limit cut it), so the output format does not depend on the backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from icl_generalization.core.errors import UserError


@dataclass(frozen=True)
class Sample:
    text: str
    new_tokens: int
    hit_limit: bool


@dataclass(frozen=True)
class Sampling:
    n: int
    temperature: float
    top_p: float
    max_new_tokens: int


class GenerationBackend(Protocol):
    """What augmentation needs from a text generator (docs/ARCHITECTURE.md: add a generation backend)."""

    # Tokens the model can attend to; global mode sizes the shared corpus to fit it.
    window: int
    # How many times a shared prefix was computed (reported in the augmentation statistics).
    prefix_computations: int
    # How it draws samples: part of a corpus's identity, so a resumed corpus never mixes two samplers' draws.
    sampler: str

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under the backend's own tokenizer, without special tokens."""
        ...

    def generate(self, prompts: list[str], sampling: Sampling, seed: int) -> list[list[Sample]]:
        """``sampling.n`` samples for each prompt, seeded so a rerun gives the same text."""
        ...

    def after_prefix(self, prefix: str, suffixes: list[str], sampling: Sampling,
                     seeds: list[int]) -> list[list[Sample]]:
        """Samples for ``prefix + suffix`` per suffix (one seed each); the prefix should be computed once."""
        ...


# after_prefix draws with a seeded Gumbel-max per row (scoring.seeded_sampling), generate with transformers' own.
HF_SAMPLER = "transformers; after a prefix: seeded Gumbel-max per row (v1)"


class HFBackend:
    """transformers ``generate``; ``after_prefix`` reuses one cached prefix for every suffix."""

    def __init__(self, model_path: str, device: str | None = None, dtype: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if self.device.startswith("cuda")
                                                           else torch.float32)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.tokenizer.padding_side = "left"  # generation continues at the right edge of every row
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype)
        self.model: Any = model.to(self.device).eval()  # type: ignore[arg-type]  # transformers' stub of .to
        self.prefix_computations = 0
        self.sampler = HF_SAMPLER
        self._prefix: tuple[str, Any] | None = None  # (prefix text, its CachedPrefix): one corpus per run
        self.window = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _kwargs(self, sampling: Sampling) -> dict[str, Any]:
        greedy = sampling.temperature == 0.0
        kwargs: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens, "do_sample": not greedy,
                                  "pad_token_id": self.tokenizer.pad_token_id}
        if not greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p)
        return kwargs

    def _stop_ids(self) -> set[int]:
        """The tokens that end a sequence: the tokenizer's EOS and every one the model's generation config names."""
        configured = self.model.generation_config.eos_token_id
        ids = configured if isinstance(configured, list) else [configured]
        return {int(i) for i in [*ids, self.tokenizer.eos_token_id] if i is not None}

    def _samples(self, rows: Any, sampling: Sampling) -> list[Sample]:
        out = []
        stops = self._stop_ids()
        for row in rows.tolist():
            # A sequence ends at its first stop token; generate fills the rest of a stopped row with pads.
            end = next((k for k, t in enumerate(row) if t in stops), len(row))
            tokens = row[:end]
            text = str(self.tokenizer.decode(tokens, skip_special_tokens=True))
            out.append(Sample(text=text, new_tokens=len(tokens),
                              hit_limit=len(tokens) >= sampling.max_new_tokens))
        return out

    def generate(self, prompts: list[str], sampling: Sampling, seed: int) -> list[list[Sample]]:
        import torch

        torch.manual_seed(seed)
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        with torch.no_grad():
            out = self.model.generate(**enc, num_return_sequences=sampling.n, **self._kwargs(sampling))
        samples = self._samples(out[:, enc["input_ids"].shape[1]:], sampling)
        return [samples[i * sampling.n:(i + 1) * sampling.n] for i in range(len(prompts))]

    def after_prefix(self, prefix: str, suffixes: list[str], sampling: Sampling,
                     seeds: list[int]) -> list[list[Sample]]:
        from icl_generalization.scoring.prefix_cache import compute_prefix
        from icl_generalization.scoring.prefix_generation import generate_many_from_prefix
        from icl_generalization.scoring.seeded_sampling import Decoding

        if self._prefix is None or self._prefix[0] != prefix:
            ids = self.tokenizer(prefix, add_special_tokens=False)["input_ids"]
            self._prefix = (prefix, compute_prefix(self.model, ids))
            self.prefix_computations += 1
        cached = self._prefix[1]
        suffix_ids = [self.tokenizer(s, add_special_tokens=False)["input_ids"] for s in suffixes]
        longest = cached.length + max((len(s) for s in suffix_ids), default=0) + sampling.max_new_tokens
        if self.window and longest > self.window:
            raise UserError(f"the prefix, the longest suffix and {sampling.max_new_tokens} new tokens need {longest} "
                            f"tokens; the model's window holds {self.window}")
        # Many suffixes per generate call, each sampled from its own seed: a document's text does not depend on
        # the documents batched with it (scoring/prefix_generation.py).
        decoding = Decoding(temperature=sampling.temperature, top_p=sampling.top_p)
        rows = generate_many_from_prefix(self.model, cached, suffix_ids, seeds, sampling.n, decoding=decoding,
                                         max_new_tokens=sampling.max_new_tokens,
                                         pad_token_id=self.tokenizer.pad_token_id)
        return [self._samples(r, sampling) for r in rows]


class VLLMBackend:
    """vLLM for large runs on GPUs; its automatic prefix caching shares the corpus across global-mode calls."""

    def __init__(self, model_path: str, dtype: str | None = None) -> None:
        try:
            from vllm import LLM
        except ImportError:
            raise UserError("--backend vllm needs the vllm package (a GPU install): pip install vllm") from None
        self.llm = LLM(model=model_path, dtype=dtype or "auto", enable_prefix_caching=True)
        self.tokenizer = self.llm.get_tokenizer()
        self.prefix_computations = 0
        self.sampler = "vllm"
        self.window = int(self.llm.llm_engine.model_config.max_model_len)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _run(self, prompts: list[str], sampling: Sampling, seeds: list[int]) -> list[list[Sample]]:
        from vllm import SamplingParams

        params = [SamplingParams(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
                                 max_tokens=sampling.max_new_tokens, seed=seed) for seed in seeds]
        outputs = self.llm.generate(prompts, params)
        return [[Sample(text=o.text, new_tokens=len(o.token_ids), hit_limit=o.finish_reason == "length")
                 for o in result.outputs] for result in outputs]

    def generate(self, prompts: list[str], sampling: Sampling, seed: int) -> list[list[Sample]]:
        return self._run(prompts, sampling, [seed + i for i in range(len(prompts))])

    def after_prefix(self, prefix: str, suffixes: list[str], sampling: Sampling,
                     seeds: list[int]) -> list[list[Sample]]:
        # vLLM's automatic prefix caching computes the shared corpus once and reuses its blocks.
        self.prefix_computations = 1
        return self._run([prefix + s for s in suffixes], sampling, seeds)
