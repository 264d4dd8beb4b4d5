"""A 2-layer Llama with random weights and the default model's real tokenizer, saved as a folder.

The real BPE tokenizer keeps the leading-space and boundary behaviour of the real model, while the forward
pass costs milliseconds. ``max_position_embeddings`` is small so context budgets bite. The tests' fixture and
the `wheel` nox session (which runs this file: ``python tests/tiny_model.py OUT``) build it the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

# A LoRA recipe small enough for the tiny model: four steps, a checkpoint every two (resume tests need one).
TINY_RECIPE = """\
description: tiny test recipe
method: lora
lora_r: 4
lora_alpha: 8
lora_dropout: 0.0
learning_rate: 0.02
batch_size: 4
max_steps: 4
max_length: 64
split: none
logging_steps: 1
save_steps: 2
data_config: {people_per_set: 4, train_templates: 3}
"""


def build_tiny_llama(out: Path, tokenizer_path: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


if __name__ == "__main__":
    from icl_generalization.weights.default_model import converted_path

    print(build_tiny_llama(Path(sys.argv[1]), converted_path()))
