"""Our tokenizer in Hugging Face's format: ``tokenizer.json`` (a byte-level BPE with our split
pattern and the nine special tokens), ``tokenizer_config.json`` and ``special_tokens_map.json``,
so ``AutoTokenizer.from_pretrained(DIR)`` loads it and a server such as vLLM tokenizes and
detokenizes as glasschat does. Written with the standard library: exporting needs neither
transformers nor tokenizers.

The conversion is exact for a BPE-trained vocabulary: tiktoken merges the lowest-ranked pair
first and a token's rank is the order it was made in, so the merge list in rank order — each
token split into the two parts that BPE over the lower-ranked tokens leaves it in — makes
Hugging Face's BPE (which applies merges by their position in the list) produce the same ids.
Hugging Face's byte-level BPE spells bytes as printable characters (GPT-2's byte-to-unicode
table); the vocabulary is written in that spelling.
"""

from __future__ import annotations

import json
from functools import cache

from tokenizer.specials import SPECIAL_TOKENS


@cache
def byte_to_unicode() -> dict[int, str]:
    """GPT-2's table: printable bytes stand for themselves, the others for code points 256+."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _spell(token: bytes) -> str:
    table = byte_to_unicode()
    return "".join(table[b] for b in token)


def _split(token: bytes, ranks: dict[bytes, int]) -> tuple[bytes, bytes]:
    """The two parts BPE leaves ``token`` in using only the tokens ranked below it."""
    limit = ranks[token]
    parts = [bytes([b]) for b in token]
    while len(parts) > 2:
        best = None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < limit and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            break
        i = best[1]
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    if len(parts) != 2:
        raise ValueError(f"token {token!r} is not the merge of two lower-ranked tokens: not a BPE vocabulary")
    return parts[0], parts[1]


def tokenizer_json(ranks: dict[bytes, int], pattern: str, special_ids: dict[str, int]) -> dict:
    vocab = {_spell(token): rank for token, rank in ranks.items()}
    merges = []
    for token, _ in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) > 1:
            left, right = _split(token, ranks)
            merges.append([_spell(left), _spell(right)])
    added = [{"id": special_ids[name], "content": name, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for name in SPECIAL_TOKENS]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def hf_tokenizer_files(tokenizer, context: int) -> dict[str, str]:
    """File name -> text of the Hugging Face tokenizer files for ``tokenizer``."""
    special = {"bos_token": "<|bos|>", "eos_token": "<|assistant_end|>", "pad_token": "<|bos|>"}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special,
        "model_max_length": context,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "additional_special_tokens": [n for n in SPECIAL_TOKENS if n not in special.values()],
    }
    return {
        "tokenizer.json": json.dumps(tokenizer_json(tokenizer.ranks, tokenizer.pattern, tokenizer.special_ids),
                                     ensure_ascii=False),
        "tokenizer_config.json": json.dumps(config, indent=2) + "\n",
        "special_tokens_map.json": json.dumps(special, indent=2) + "\n",
    }
