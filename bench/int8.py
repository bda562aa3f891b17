"""``glasschat bench int8``: how far int8 weights move a model's logits from fp32's, on held-out text.

The text: held-out eval prompts (``glasschat eval``'s, same seed) each followed by the fp32
model's own greedy reply. Both engines (the checkpoint in fp32, and quantized to int8 at load —
what ``glasschat quantize`` writes) read that text one token at a time through their decode
path, and the logits at every position are compared: the largest and the mean absolute
difference, how often the most likely token is the same, and the mean KL divergence from the
fp32 distribution. The int8 engine's error includes the kernel's on-the-fly quantization of
each matrix's input, as in use.
"""

from __future__ import annotations

import statistics

HELP = "Logit error of int8 weights against fp32 on held-out text (max, mean, top-1 agreement)."


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", metavar="DIR", default=None, help="checkpoint (default: the bundled model)")
    parser.add_argument("--per-skill", type=int, default=20, metavar="N", help="held-out prompts per skill (default 20)")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the held-out prompts (default 1234, eval's)")


def run(args) -> int:
    import torch

    from model.checkpoint import load_engine, resolve_checkpoint_dir
    from model.events import SamplingParams
    from model.training.eval_prompts import eval_items
    from model.training.recipe import word_pools

    torch.set_num_threads(1)
    directory = resolve_checkpoint_dir(args.checkpoint)
    fp32, tokenizer = load_engine(directory)
    int8, _ = load_engine(directory, "int8")
    if fp32.weight_format == "int8":
        print(f"{directory} is an int8 checkpoint: compare its float original instead")
        return 2
    _, heldout, _ = word_pools(tokenizer)
    items = eval_items(heldout, args.per_skill, seed=args.seed)
    greedy = SamplingParams(temperature=0, top_k=0, max_tokens=200)
    worst, sums, count, same, kl = 0.0, 0.0, 0, 0, []
    for item in items:
        prompt = tokenizer.render_for_completion(item.conversation)
        text = prompt + fp32.generate(prompt, greedy)[0].ids
        text = text[: fp32.config.sequence_len]
        a, b = teacher_forced_logits(fp32, text), teacher_forced_logits(int8, text)
        diff = (a - b).abs()
        worst = max(worst, float(diff.max()))
        sums += float(diff.mean(dim=1).sum())
        count += len(text)
        same += int((a.argmax(dim=1) == b.argmax(dim=1)).sum())
        kl.append(float(torch.nn.functional.kl_div(b.log_softmax(1), a.log_softmax(1), log_target=True,
                                                   reduction="batchmean")))
    print(f"{directory}: {len(items)} held-out conversations, {count} positions, logits of "
          f"{fp32.config.vocab_size} tokens (softcapped to ±15), 1 torch thread")
    print(f"  |int8 - fp32| logit: max {worst:.4f}, mean {sums / count:.5f}")
    print(f"  most likely token the same: {same / count:.2%} of positions")
    print(f"  KL(fp32 || int8) per position: mean {statistics.mean(kl):.2e}")
    return 0


def teacher_forced_logits(engine, ids: list[int]):
    """(len(ids), V) logits, each position run as a decode step after the ones before it."""
    import torch

    with torch.inference_mode():
        cache = engine._allocate_cache(1, len(ids))
        scratch = engine._scratch(1, 1)
        rows = [engine._forward(torch.tensor([token]), pos, cache, scratch)[0].clone() for pos, token in enumerate(ids)]
    return torch.stack(rows)
