"""``glasschat bench engine``: our engine side by side with reference generation loops.

(``--weights``: the weight formats — fp32, int8 — against nanochat's own Engine on nanochat-sized
models, with peak memory per row: ``bench.engine_weights``.)

For each model config (d4/d8/d12: n_embd 256/512/768, one layer per depth unit, heads of 128),
vocabulary and prompt length, the same random fp32 weights run greedily through

- ``ours``: ``model.Engine.stream``;
- ``nanochat``: a dynamic-KV-cache loop the way nanochat's engine generates
  (``bench.engine_baselines``);
- ``recompute``: full recompute of the sequence for every token (fewer tokens: it is slow);
- ``hf``: transformers' ``NanoChatForCausalLM.generate``, when transformers is installed.

One more row races today's nanochat (92d63d4: value embeddings, lambdas, sliding windows, smear,
backout) at d12 / V32768 / SSSL / sequence 2048, where ``nanochat`` is nanochat's own ``Engine``
imported from the reference folder (``bench.engine_nanochat``), with a prompt longer than the
short window.

Printed per engine: decode tokens/s (from the median time between tokens, which shrugs off
bursts from other processes), time to first token (the prompt's prefill plus the first token:
every engine here emits its first token straight after its prefill, so this is the prefill time
as a user sees it), the ratios to the nanochat-style loop, the fraction of the memory-bandwidth
ceiling, and whether the greedy tokens equal the nanochat-style loop's. The ceiling is measured
in the same run, between the repeats of each row: the bandwidth of a large matrix-vector product,
divided by the bytes a decode step must read (every weight matrix plus the KV cache); a small
model whose weights stay in cache can pass 100%, so a target line states the most any engine
could gain over the nanochat-style loop only for a row whose bytes per step exceed the CPU's
last-level cache. Within each repeat the engines decode in
lockstep, one token each in turn (transformers' ``generate`` runs on its own after them);
figures are medians, ratios are medians of same-repeat ratios. One torch thread throughout.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

HELP = "Decode tok/s, prefill/TTFT and bandwidth fraction of the engine vs nanochat-style, recompute, transformers."
CONFIGS = {"d4": 4, "d8": 8, "d12": 12}
NANOCHAT_ROW = "92d63d4-d12"
ENGINES = ("ours", "nanochat", "recompute", "hf")
# the figures the engine is held to: (label, config, vocab, prompt or None for the shortest run, field, goal)
TARGETS = (
    ("decode >= 1.6x the nanochat-style loop at d4/V8192", "d4", 8192, None, "x_decode", 1.6),
    ("decode >= 1.35x the nanochat-style loop at d12/V65536", "d12", 65536, None, "x_decode", 1.35),
    (">= 80% of the bandwidth ceiling at d12/V65536", "d12", 65536, None, "ceiling", 0.80),
    ("P1024 time to first token >= 4x faster at d4/V65536", "d4", 65536, 1024, "x_ttft", 4.0),
    ("decode >= 1.5x nanochat's own Engine at 92d63d4 d12/V32768/SSSL", NANOCHAT_ROW, 32768, None, "x_decode", 1.5),
)

def add_arguments(parser) -> None:
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS), help="model sizes (default: all)")
    parser.add_argument("--vocabs", nargs="+", type=int, default=[8192, 65536], metavar="V", help="vocabulary sizes (default: 8192 65536)")
    parser.add_argument("--prompts", nargs="+", type=int, default=[32, 512, 1024], metavar="P",
                        help="prompt lengths in tokens (default: 32 512 1024)")
    parser.add_argument("--tokens", type=int, default=None, metavar="N",
                        help="tokens to generate per run (default 64; 32 with --weights)")
    parser.add_argument("--recompute-tokens", type=int, default=8, metavar="N",
                        help="tokens for the full-recompute loop, which is slow (default 8; 0 skips it)")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES), help="engines to run (default: all available)")
    parser.add_argument("--repeat", type=int, default=3, metavar="N", help="runs per engine; medians are shown (default 3)")
    parser.add_argument("--rows", nargs="+", choices=("sizes", "nanochat"), default=["sizes", "nanochat"],
                        help="the d4/d8/d12 rows, and the row against nanochat's own Engine at 92d63d4 (default: both)")
    parser.add_argument("--nanochat-prompts", nargs="+", type=int, default=[640], metavar="P",
                        help="prompt lengths for the nanochat row; its short window is 512 (default: 640)")
    parser.add_argument("--reference", metavar="DIR", default=None,
                        help="nanochat reference folders (default: ../shared/reference/nanochat beside the source tree)")
    parser.add_argument("--quick", action="store_true",
                        help="only the rows the targets are read from (d4/V8192/P32, d4/V65536/P1024, d12/V65536/P32, "
                        "and the nanochat row), ours and the baseline, 48 tokens: a few minutes")
    weights = parser.add_argument_group("--weights: weight formats and peak memory, one process per row")
    weights.add_argument("--weights", action="store_true",
                         help="decode tok/s and peak RSS of nanochat's Engine (fp32) and ours in fp32, int8 and int8 "
                         "quantized at load, at nanochat's d12 and d20 shapes (V65536), each in a process of its own")
    weights.add_argument("--models", nargs="+", choices=("d12", "d20"), default=["d12", "d20"],
                         help="model shapes for --weights (default: d12 d20)")
    weights.add_argument("--weight-rows", dest="weight_rows", nargs="+", choices=("nanochat", "fp32", "int8", "int8@load"),
                         default=["nanochat", "fp32", "int8", "int8@load"], help="rows for --weights (default: all)")
    weights.add_argument("--prompt", type=int, default=32, metavar="P", help="prompt length for --weights (default 32)")
    weights.add_argument("--workdir", default=None, metavar="DIR",
                         help="where --weights writes its temporary checkpoints (default: the system's temporary directory)")


def run(args) -> int:
    import torch

    if args.weights:
        from bench import engine_weights

        args.tokens, args.vocab = args.tokens or 32, 65536
        return engine_weights.run(args)
    args.tokens = args.tokens or 64
    torch.set_num_threads(1)
    if args.quick:
        groups = [("d4", 8192, [32]), ("d4", 65536, [1024]), ("d12", 65536, [32])]
        args.engines, args.tokens, args.recompute_tokens = ["ours", "nanochat"], 48, 0
    else:
        groups = [(name, vocab, args.prompts) for name in args.configs for vocab in args.vocabs]
    if "sizes" not in args.rows:
        groups = []
    engines = [e for e in args.engines if (e != "hf" or _has_transformers()) and (e != "recompute" or args.recompute_tokens)]
    bandwidth, linear_bandwidth = measure_bandwidth(), measure_bandwidth(layout="linear")
    print(f"fp32, 1 torch thread; medians of {args.repeat}; {args.tokens} tokens per run "
          f"({args.recompute_tokens} for recompute); engines: {', '.join(engines)}")
    print(f"memory bandwidth (large matrix-vector product): {bandwidth / 1e9:.1f} GB/s in the engine's "
          f"transposed layout, {linear_bandwidth / 1e9:.1f} GB/s in nn.Linear's layout; each ceiling below "
          "uses the median of measurements taken between that row's runs")
    header = (f"{'model':>5} {'vocab':>6} {'prompt':>6}  {'engine':<9} {'decode tok/s':>12} {'x nanochat':>10} "
              f"{'TTFT ms':>9} {'x nanochat':>10} {'ceiling':>8} {'same tokens':>11}")
    results = {}
    for name, vocab, prompts in groups:
        models = build_models(CONFIGS[name], vocab, max(prompts) + args.tokens, "hf" in engines)
        print(f"\n{header}")
        for prompt_len in prompts:
            cell, bandwidth = run_cell(models, engines, prompt_len, args)
            step_bytes = decode_bytes(models["gpt"], prompt_len + args.tokens // 2)
            print_cell(name, vocab, prompt_len, cell, bandwidth / step_bytes, bandwidth)
            results[(name, vocab, prompt_len)] = (cell, bandwidth / step_bytes, step_bytes)
        del models
    if "nanochat" in args.rows:
        run_nanochat_row(args, results, header)
    print_targets(results)
    return 0


def run_nanochat_row(args, results: dict, header: str) -> None:
    from bench import engine_nanochat

    folder = engine_nanochat.reference_folder(args.reference)
    if folder is None:
        print(f"\n{NANOCHAT_ROW}: not run: no nanochat reference at {args.reference or engine_nanochat.DEFAULT_REFERENCE}")
        return
    try:
        models = engine_nanochat.build_models(folder)
    except ImportError as error:  # nanochat's own imports: rustbpe, tiktoken, filelock
        print(f"\n{NANOCHAT_ROW}: not run: nanochat's package needs {error.name} (pip install -e '.[reference]')")
        return
    print(f"\n{NANOCHAT_ROW}: nanochat {models['generation']} from {folder}, d12 / V32768 / SSSL / sequence 2048; "
          "'nanochat' is its own Engine here")
    print(header)
    for prompt_len in args.nanochat_prompts:
        cell, bandwidth = run_cell(models, ["ours", "nanochat"], prompt_len, args)
        step_bytes = decode_bytes(models["gpt"], prompt_len + args.tokens // 2)
        print_cell(NANOCHAT_ROW, 32768, prompt_len, cell, bandwidth / step_bytes, bandwidth)
        results[(NANOCHAT_ROW, 32768, prompt_len)] = (cell, bandwidth / step_bytes, step_bytes)


# ---- models


def build_models(depth: int, vocab: int, sequence_len: int, with_hf: bool) -> dict:
    import torch

    from model.engine import Engine
    from model.gpt import GPT, GPTConfig

    n_embd = 64 * depth
    n_head = max(1, (n_embd + 127) // 128)
    config = GPTConfig(sequence_len=sequence_len, vocab_size=vocab, n_layer=depth, n_head=n_head, n_kv_head=n_head, n_embd=n_embd)
    tokenizer = synthetic_tokenizer(vocab)
    gpt = GPT(config).init_weights(seed=0, zero_outputs=False).eval()
    with torch.no_grad():  # a random model must not stop early: specials never win greedily
        gpt.lm_head.weight[list(tokenizer.special_ids.values())] = 0
    models = {"gpt": gpt, "tokenizer": tokenizer, "engine": Engine(gpt, tokenizer)}
    if with_hf:
        models["hf"] = hf_model(gpt, tokenizer)
    return models


def synthetic_tokenizer(vocab: int):
    """A real ``Tokenizer`` of exactly ``vocab`` tokens: the 256 bytes, then byte pairs.

    Prompts are random ids, so the merges never run; the engine still decodes every token it
    streams through it, as it would in use.
    """
    from tokenizer import Tokenizer
    from tokenizer.patterns import NANOCHAT
    from tokenizer.specials import NUM_SPECIAL_TOKENS

    ranks = {bytes([b]): b for b in range(256)}
    for index in range(vocab - NUM_SPECIAL_TOKENS - 256):
        ranks[bytes([97 + index // 256 % 26, index % 256, 65 + index // 6656])] = 256 + index
    return Tokenizer.from_ranks(ranks, NANOCHAT)


def hf_model(gpt, tokenizer):
    import torch
    from transformers import NanoChatConfig, NanoChatForCausalLM

    from model.hf_export import hf_config, hf_name

    config = NanoChatConfig.from_dict({k: v for k, v in hf_config(gpt, tokenizer, torch.float32).items() if k != "dtype"})
    model = NanoChatForCausalLM(config).eval()
    model.load_state_dict({hf_name(name): t for name, t in gpt.state_dict().items()})
    return model


# ---- runs


def run_cell(models: dict, engines: list[str], prompt_len: int, args) -> dict:
    """Per engine, per repeat: ``{"ids", "ttft", "decode"}``; and the median memory bandwidth
    measured before, between and after the repeats.

    The engines that can be stepped (all but transformers' ``generate``) decode in lockstep,
    one token each in turn, so a burst of load from another process slows them alike.
    """
    import torch

    vocab = models["gpt"].config.vocab_size - 9
    prompt = torch.randint(vocab, (prompt_len,), generator=torch.Generator().manual_seed(prompt_len)).tolist()
    runs = {engine: [] for engine in engines}
    bandwidths = [measure_bandwidth(repeat=3)]
    for _ in range(args.repeat):
        stepped = {e: token_stream(e, models, prompt, args.recompute_tokens if e == "recompute" else args.tokens)
                   for e in engines if e != "hf"}
        for engine, result in lockstep(stepped).items():
            runs[engine].append(result)
        if "hf" in engines:
            runs["hf"].append(run_hf(models, prompt, args.tokens))
        bandwidths.append(measure_bandwidth(repeat=3))
    return runs, statistics.median(bandwidths)


def token_stream(engine: str, models: dict, prompt: list[int], tokens: int):
    """A generator of token ids; nothing runs until the first ``next``."""
    from bench.engine_baselines import dynamic_cache_greedy, recompute_greedy
    from model.events import SamplingParams, TokenEvent

    if engine == "ours":
        events = models["engine"].stream(prompt, SamplingParams(temperature=0, top_k=0, max_tokens=tokens))
        return (event.id for event in events if isinstance(event, TokenEvent))
    if engine == "nanochat" and "nanochat_engine" in models:
        from bench.engine_nanochat import token_stream as nanochat_stream

        return nanochat_stream(models, prompt, tokens)
    loop = {"nanochat": dynamic_cache_greedy, "recompute": recompute_greedy}[engine]
    return loop(models["gpt"], prompt, tokens)


def lockstep(streams: dict) -> dict:
    """Time each stream's first token alone (its prefill), then step them in turn."""
    ids = {engine: [] for engine in streams}
    ttft, gaps = {}, {engine: [] for engine in streams}
    for engine, stream in streams.items():
        start = time.perf_counter()
        ids[engine].append(next(stream))
        ttft[engine] = time.perf_counter() - start
    active = dict(streams)
    while active:
        for engine, stream in list(active.items()):
            start = time.perf_counter()
            token = next(stream, None)
            if token is None:
                del active[engine]
                continue
            gaps[engine].append(time.perf_counter() - start)
            ids[engine].append(token)
    return {engine: result(ids[engine], ttft[engine], gaps[engine]) for engine in streams}


def result(ids: list[int], ttft: float, gaps: list[float]) -> dict:
    """Decode tokens/s from the median time between tokens: a median shrugs off the bursts
    other processes cause on a shared machine."""
    return {"ids": ids, "ttft": ttft, "decode": 1 / statistics.median(gaps) if gaps else 0.0}


def run_hf(models, prompt, tokens):
    import torch
    from transformers.generation.streamers import BaseStreamer

    class Clock(BaseStreamer):
        def __init__(self):
            self.times = []

        def put(self, value):
            self.times.append(time.perf_counter())

        def end(self):
            pass

    clock = Clock()
    start = time.perf_counter()
    with torch.inference_mode():
        out = models["hf"].generate(torch.tensor([prompt]), max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                    streamer=clock, pad_token_id=0)
    times = clock.times[1:]  # the first put is the prompt
    gaps = [b - a for a, b in zip(times, times[1:])]
    return result(out[0, len(prompt):].tolist(), times[0] - start, gaps)


# ---- the bandwidth ceiling


def measure_bandwidth(repeat: int = 7, layout: str = "transposed") -> float:
    """Bytes/s of fp32 matrix-vector products over 512 MB of matrices (beyond any cache).

    ``transposed`` reads a (in, out) matrix, the engine's layout; ``linear`` reads nn.Linear's
    (out, in) layout, as a plain PyTorch model does.
    """
    import torch

    matrices = [torch.randn(8192, 8192) for _ in range(2)]  # 256 MB each
    x = torch.randn(1, 8192)
    seconds = []
    with torch.inference_mode():
        for _ in range(repeat):
            start = time.perf_counter()
            for w in matrices:
                torch.mm(x, w if layout == "transposed" else w.t())
            seconds.append(time.perf_counter() - start)
    return sum(w.numel() * 4 for w in matrices) / statistics.median(seconds)


def decode_bytes(gpt, kv_len: int) -> int:
    """Bytes one decode step reads: every weight matrix (a row of each embedding aside, the
    lm_head's padding rows never read) and the KV cache (a window layer's window only)."""
    c = gpt.config
    embeddings = [name for name in gpt.state_dict() if name == "transformer.wte.weight" or name.startswith("value_embeds.")]
    weights = sum(p.numel() for name, p in gpt.named_parameters() if name not in embeddings)
    weights -= (c.padded_vocab_size - c.vocab_size) * c.n_embd
    rows = c.n_embd + len(c.value_embed_layers) * c.n_kv_head * c.head_dim
    kv = sum(2 * c.n_kv_head * c.head_dim * min(kv_len, c.window(i) + 1) for i in range(c.n_layer))
    return 4 * (weights + rows + kv)


def last_level_cache_bytes() -> int | None:
    """The size of the CPU's largest cache (Linux sysfs), or None where it cannot be read."""
    sizes = []
    try:
        for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
            text = path.read_text().strip()  # e.g. "2048K"
            digits = text.rstrip("KMG")
            if digits.isdigit():
                sizes.append(int(digits) * {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[len(digits):], 1))
    except OSError:
        return None
    return max(sizes, default=None)


# ---- report


def summarise(cell: dict, ceiling: float) -> dict:
    base = cell.get("nanochat")
    rows = {}
    for engine, runs in cell.items():
        row = {"decode": statistics.median(r["decode"] for r in runs), "ttft": statistics.median(r["ttft"] for r in runs)}
        if base:
            row["x_decode"] = statistics.median(r["decode"] / b["decode"] for r, b in zip(runs, base))
            row["x_ttft"] = statistics.median(b["ttft"] / r["ttft"] for r, b in zip(runs, base))
            n = len(runs[0]["ids"])
            row["same"] = all(r["ids"] == b["ids"][:n] for r, b in zip(runs, base))
        row["ceiling"] = row["decode"] / ceiling
        rows[engine] = row
    return rows


def print_cell(name: str, vocab: int, prompt_len: int, cell: dict, ceiling: float, bandwidth: float) -> None:
    for engine, row in summarise(cell, ceiling).items():
        x_decode = f"{row['x_decode']:.2f}x" if "x_decode" in row else "-"
        x_ttft = f"{row['x_ttft']:.2f}x" if "x_ttft" in row else "-"
        same = ("yes" if row["same"] else "NO") if "same" in row else "-"
        print(f"{name:>5} {vocab:>6} {prompt_len:>6}  {engine:<9} {row['decode']:>12.1f} {x_decode:>10} "
              f"{row['ttft'] * 1000:>9.1f} {x_ttft:>10} {row['ceiling']:>7.0%} {same:>11}")
    print(f"{'':>5} {'':>6} {'':>6}  {'ceiling':<9} {ceiling:>12.1f}   (at {bandwidth / 1e9:.1f} GB/s)")


def print_targets(results: dict) -> None:
    print("\ntargets (ours, same run):")
    cache = last_level_cache_bytes()
    for label, name, vocab, prompt_len, field, goal in TARGETS:
        prompts = sorted(p for (n, v, p) in results if (n, v) == (name, vocab))
        if prompt_len is None and prompts:
            prompt_len = prompts[0]
        if (name, vocab, prompt_len) not in results:
            print(f"  {label}: not run")
            continue
        cell, ceiling, step_bytes = results[(name, vocab, prompt_len)]
        rows = summarise(cell, ceiling)
        if field not in rows.get("ours", {}):
            print(f"  {label}: not run (needs ours and nanochat)")
            continue
        value = rows["ours"][field]
        shown = f"{value:.0%}" if field == "ceiling" else f"{value:.2f}x"
        bound = ""
        if field == "x_decode" and cache is not None and step_bytes <= cache:
            # the weights can stay in cache between steps: memory bandwidth bounds no engine here
            bound = f" (the {step_bytes / 1e6:.0f} MB a step reads fit in the {cache / 2**20:.0f} MiB last-level cache: " \
                    "the bandwidth ceiling bounds no engine here)"
        elif field == "x_decode" and cache is not None and rows["nanochat"]["ceiling"] < 1:
            # streamed from memory, no engine decodes faster than the ceiling: the most any could gain
            bound = f" (the baseline runs at {rows['nanochat']['ceiling']:.0%} of the ceiling: " \
                    f"at most {1 / rows['nanochat']['ceiling']:.2f}x is possible here)"
        print(f"  {label} (prompt {prompt_len}): {shown} {'met' if value >= goal else 'MISSED'}{bound}")
    same = [summarise(cell, ceiling)["ours"].get("same") for cell, ceiling, _ in results.values()]
    if any(s is not None for s in same):
        print(f"  identical greedy tokens to the baseline (the nanochat-style loop; nanochat's Engine in the {NANOCHAT_ROW} row) in every run: {'yes' if all(same) else 'NO'}")


def _has_transformers() -> bool:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True
