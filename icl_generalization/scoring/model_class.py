"""The package's lm-eval model class and its registration.

``ICLGenLM`` is lm-eval's ``HFLM`` with the package's conveniences: ``pretrained`` may be an embedded model
name (default ``smollm2-135m``) and defaults to it, and the device defaults to CUDA only when there is one.

Finetuned checkpoints load with ``checkpoint=<manifest.yaml or adapter folder>`` (or lm-eval's ``peft=``):
the base model is checked, every file's sha256 verified and the model loaded from a private copy of the
verified bytes, LoRA merged unless ``merge_adapter=False``, pickle weights refused unless the manifest and
``allow_pickle=True`` both allow them; the results' config then names the checkpoint and the sha256 of what
was loaded (see ``weights/loading.py``).

Its log-likelihoods run each long shared context once (``scoring.PrefixCachedHFLM``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from icl_generalization.core.errors import UserError
from icl_generalization.core.validation import flag
from icl_generalization.scoring.cached_hflm import PrefixCachedHFLM
from icl_generalization.tasks.options import TASK_ONLY_OPTIONS
from icl_generalization.weights.default_model import DEFAULT_MODEL, resolve_model
from icl_generalization.weights.loading import Checkpoint, apply_adapter, open_checkpoint

MODEL_NAME = "icl-gen"


class ICLGenLM(PrefixCachedHFLM):
    def __init__(self, pretrained: str | None = None, device: str | None = None, checkpoint: str | None = None,
                 peft: str | None = None, merge_adapter: Any = True, allow_pickle: Any = False,
                 checkpoint_sha256: str | None = None, **kwargs: Any) -> None:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        # lm-eval hands every --model_args entry to the task loaders as well; the task options that are not
        # model arguments too belong to the loaders only, so they are dropped instead of reaching
        # from_pretrained. The set comes from TaskOptions, so a new option cannot be forgotten here.
        model_kwargs = {k: v for k, v in kwargs.items() if k not in TASK_ONLY_OPTIONS}
        if checkpoint and peft:
            raise UserError("give either checkpoint= or peft=, not both")
        self._merge_adapter = flag(merge_adapter, "merge_adapter")
        self._checkpoint: Checkpoint | None = None
        # The checkpoint is verified before any weights load (a wrong base or a changed file fails fast), and
        # everything HFLM loads from it comes from the verified private copy, which lives only for __init__.
        with contextlib.ExitStack() as opened:
            if checkpoint or peft:
                self._checkpoint = opened.enter_context(open_checkpoint(
                    str(checkpoint or peft), pretrained=pretrained, allow_pickle=flag(allow_pickle, "allow_pickle"),
                    expected_sha256=checkpoint_sha256))
                pretrained = self._checkpoint.base_name
            self.model_name = pretrained or DEFAULT_MODEL
            base_path = resolve_model(pretrained)
            if self._checkpoint and self._checkpoint.method == "full":
                # A full finetune is a model folder of its own (tokenizer included); the base was only checked.
                base_path = str(self._checkpoint.folder)
            super().__init__(pretrained=base_path, device=device, **model_kwargs)
        if self._checkpoint and self._checkpoint.method == "full":
            self.pretrained = str(self._checkpoint.source)  # not the private copy, which is gone

    def _create_model(self, *args: Any, **kwargs: Any) -> None:
        # lm-eval would wrap a peft= adapter itself (unmerged, unverified); the checkpoint path does it instead.
        kwargs.pop("peft", None)
        super()._create_model(*args, **kwargs)
        if self._checkpoint and self._checkpoint.method == "lora":
            # getattr: HFLM assigns ``_model`` without a type mypy can infer.
            self._model = apply_adapter(getattr(self, "_model"), self._checkpoint,  # noqa: B009
                                        merge=self._merge_adapter)

    def get_model_info(self) -> dict[str, Any]:
        info: dict[str, Any] = super().get_model_info()
        info["base_model"] = self.model_name
        if self._checkpoint:
            info.update(self._checkpoint.info(), checkpoint_merged=self._merge_adapter)
        return info


def register() -> None:
    """Register ``icl-gen`` with lm-eval's model registry (idempotent).

    lm-eval fills its registry lazily with its own models on first lookup only while the registry is
    empty, so its models are imported first: registering ours into an empty registry would hide ``hf``.
    """
    import lm_eval.models  # noqa: F401
    from lm_eval.api.registry import model_registry, register_model

    if MODEL_NAME not in model_registry:
        register_model(MODEL_NAME)(ICLGenLM)
