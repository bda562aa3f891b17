"""Exporting a checkpoint for Hugging Face transformers (``NanoChatForCausalLM``).

The output directory holds ``config.json`` (``model_type: nanochat``), ``generation_config.json``
and ``model.safetensors`` under transformers' parameter names, so
``AutoModelForCausalLM.from_pretrained(DIR)`` loads it and anything that serves transformers
models (vLLM, TGI, multi-GPU inference) can run a model trained or imported here. The tokenizer
is written in Hugging Face's format (``tokenizer.json`` and its config, ``model.hf_tokenizer``:
``AutoTokenizer.from_pretrained(DIR)`` loads it, so vLLM runs with it) and in ours, under
``tokenizer/``.

transformers computes the rotary tables in fp32 where this model rounds them to bf16, so the
two score text slightly apart (on the bundled model a token's log probability by up to 0.016
nats; ``bench/vllm_check.py`` measures it through vLLM) and generations can part ways at
near-ties. transformers is not needed to export.

transformers' model is nanochat's late-2025 architecture. The 2026 generations' features
(per-layer lambdas, sliding windows, value embeddings, q/k scaling, smear, backout) are not in
it, so a checkpoint that uses any of them is refused in one line naming them, before anything
is written: an export would load and silently compute a different model. Padded vocabulary
rows are dropped (the logits never read them); a rotary base and a softcap go into the config.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from glasschat.atomic import atomic_path, atomic_write_text, check_dir_target, make_dir
from glasschat.errors import UserError
from model.checkpoint import TOKENIZER_DIR, load_model, read_config
from model.hf_tokenizer import hf_tokenizer_files

_LAYER_NAMES = {
    "attn.c_q": "self_attn.q_proj",
    "attn.c_k": "self_attn.k_proj",
    "attn.c_v": "self_attn.v_proj",
    "attn.c_proj": "self_attn.o_proj",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}


def hf_name(name: str) -> str:
    """transformers' name for one of our parameters."""
    if name == "transformer.wte.weight":
        return "model.embed_tokens.weight"
    if name == "lm_head.weight":
        return name
    _, _, layer, module, linear, weight = name.split(".")  # transformer.h.{i}.attn.c_q.weight
    return f"model.layers.{layer}.{_LAYER_NAMES[f'{module}.{linear}']}.{weight}"


def hf_config(gpt, tokenizer, dtype: torch.dtype) -> dict:
    c = gpt.config
    return {
        "architectures": ["NanoChatForCausalLM"],
        "model_type": "nanochat",
        "vocab_size": c.vocab_size,
        "hidden_size": c.n_embd,
        "intermediate_size": 4 * c.n_embd,
        "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head,
        "num_key_value_heads": c.n_kv_head,
        "head_dim": c.head_dim,
        "max_position_embeddings": c.sequence_len,
        "hidden_act": "relu2",
        "rms_norm_eps": torch.finfo(torch.float32).eps,  # torch's default, which our RMSNorm uses
        "rope_parameters": {"rope_type": "default", "rope_theta": float(c.rotary_base)},
        "final_logit_softcapping": c.softcap,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "bos_token_id": tokenizer.bos_id,
        "eos_token_id": tokenizer.encode_special("<|assistant_end|>"),
        "pad_token_id": tokenizer.bos_id,
        "dtype": str(dtype).removeprefix("torch."),
    }


def missing_in_transformers(config) -> list[str]:
    """The features of ``config`` that transformers' ``NanoChatForCausalLM`` does not have."""
    missing = []
    if config.lambdas:
        missing.append("per-layer resid/x0 lambdas")
    if any(w < config.sequence_len - 1 for w in config.windows):
        missing.append("sliding-window attention")
    if config.value_embed_layers:
        missing.append("value embeddings")
    if config.qk_scale != 1:
        missing.append(f"q/k scaling ({config.qk_scale})")
    if config.smear_channels:
        missing.append("smear")
    if config.backout_layer >= 0:
        missing.append("backout")
    return missing


def export_hf(checkpoint: str | os.PathLike, out: str | os.PathLike, dtype: torch.dtype = torch.float32) -> Path:
    """Write checkpoint ``checkpoint`` as a transformers model directory ``out``."""
    config, data = read_config(checkpoint)
    missing = missing_in_transformers(config)
    if missing:
        generation = data.get("metadata", {}).get("nanochat_generation")
        what = f"a nanochat {generation} checkpoint" if generation else "this checkpoint"
        raise UserError(f"{checkpoint}: {what} uses {', '.join(missing)}, which transformers' NanoChatForCausalLM "
                        "does not have; refusing to export a model that would compute something else")
    out = check_dir_target(out)
    gpt, tokenizer = load_model(checkpoint)
    vocab = config.vocab_size  # padded rows dropped
    tensors = {hf_name(name): (t[:vocab] if name in ("transformer.wte.weight", "lm_head.weight") else t).detach().to(dtype).contiguous()
               for name, t in gpt.state_dict().items()}
    config = hf_config(gpt, tokenizer, dtype)
    stops = [tokenizer.encode_special("<|assistant_end|>"), tokenizer.bos_id]
    generation = {"bos_token_id": tokenizer.bos_id, "eos_token_id": stops, "pad_token_id": tokenizer.bos_id}
    make_dir(out)
    tokenizer.save(out / TOKENIZER_DIR)
    for name, text in hf_tokenizer_files(tokenizer, gpt.config.sequence_len).items():
        atomic_write_text(out / name, text)
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(tensors, tmp, metadata={"format": "pt"})
    atomic_write_text(out / "generation_config.json", json.dumps(generation, indent=2) + "\n")
    atomic_write_text(out / "config.json", json.dumps(config, indent=2) + "\n")
    return out
