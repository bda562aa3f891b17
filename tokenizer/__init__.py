"""Everything about text <-> token ids: special tokens, split patterns, the BPE trainer, the
``Tokenizer`` runtime over tiktoken, conversation rendering, the streaming UTF-8 decoder and
safe loading of foreign tokenizer files. Knows nothing of torch.
"""

from tokenizer.patterns import NAMED_PATTERNS, resolve_pattern
from tokenizer.specials import NUM_SPECIAL_TOKENS, SPECIAL_TOKENS, special_ids

__all__ = ["NAMED_PATTERNS", "NUM_SPECIAL_TOKENS", "SPECIAL_TOKENS", "resolve_pattern", "special_ids"]
