"""A scripted GPT: real weights, chosen so the model follows a given token sequence.

Every block's output projections are zero, so each block passes the residual through
unchanged, and the embedding is the identity: the final hidden state is the current token's
own direction, and the lm_head maps it to the token that follows it in the script. Greedy
decoding (and sampling at usual temperatures: the scripted token gets a logit of 15 after the
softcap, every other token 0) then walks the script token by token, through the real engine.

It lets the tests drive everything downstream of the model — stop tokens, tool calls,
streaming text, the TUI — deterministically, without a trained checkpoint.
"""

from __future__ import annotations

import torch

from model.gpt import GPT, GPTConfig

SCRIPTED_LOGIT = 100.0  # before the softcap, which turns it into ~15


def scripted_gpt(vocab_size: int, script: list[int], sequence_len: int = 256, seed: int = 0) -> GPT:
    """A GPT whose greedy continuation of ``script[i]`` is ``script[i + 1]``.

    Each token may have only one successor in the script (``ValueError`` otherwise); a token
    without one gets a uniform next-token distribution. Attention weights are random, so the
    engine's attention path still runs real numbers; they cannot change the output.
    """
    successor: dict[int, int] = {}
    for current, following in zip(script, script[1:]):
        if successor.setdefault(current, following) != following:
            raise ValueError(f"token {current} is followed by both {successor[current]} and {following} in the script")
    n_embd = -(-vocab_size // 64) * 64  # one dimension per token, in heads of 64
    config = GPTConfig(
        sequence_len=sequence_len, vocab_size=vocab_size, n_layer=1, n_head=n_embd // 64, n_kv_head=n_embd // 64, n_embd=n_embd
    )
    gpt = GPT(config).init_weights(seed=seed, zero_outputs=True)
    with torch.no_grad():
        gpt.transformer.wte.weight.copy_(torch.eye(vocab_size, n_embd))
        for current, following in successor.items():
            gpt.lm_head.weight[following, current] = SCRIPTED_LOGIT
    return gpt.eval()
