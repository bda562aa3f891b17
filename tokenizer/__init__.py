"""Everything about text <-> token ids: special tokens, split patterns, the BPE trainer, the
``Tokenizer`` runtime over tiktoken, conversation rendering, the streaming UTF-8 decoder and
safe loading of foreign tokenizer files. Knows nothing of torch.
"""

from tokenizer.conversation import ConversationError, Rendered
from tokenizer.patterns import NAMED_PATTERNS, resolve_pattern
from tokenizer.runtime import Tokenizer
from tokenizer.specials import NUM_SPECIAL_TOKENS, SPECIAL_TOKENS, special_ids
from tokenizer.stream import StreamDecoder

__all__ = [
    "ConversationError",
    "NAMED_PATTERNS",
    "NUM_SPECIAL_TOKENS",
    "Rendered",
    "SPECIAL_TOKENS",
    "StreamDecoder",
    "Tokenizer",
    "resolve_pattern",
    "special_ids",
]
