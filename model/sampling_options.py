"""The command-line options every generating command takes (``ask``, ``chat``, ``replay``):
``--checkpoint`` and the sampling settings, turned into ``SamplingParams``; ``--quantize``;
``--server`` and ``--api-key``. For CLI modules only;
library functions take ``SamplingParams``."""

from model.events import SamplingParams

_DEFAULTS = SamplingParams()


def add_sampling_arguments(parser, seed_default: int | None = None, seed_help: str = "seed for reproducible output") -> None:
    """``--checkpoint`` and the sampling options every generating command takes."""
    parser.add_argument("--checkpoint", metavar="DIR", default=None,
                        help="model checkpoint directory, or a nanochat folder (converted once into a cache) "
                        "(default: the bundled model in checkpoints/default)")
    parser.add_argument("--temperature", type=float, default=_DEFAULTS.temperature, metavar="T",
                        help=f"sampling temperature, 0 = greedy (default {_DEFAULTS.temperature})")
    parser.add_argument("--top-k", type=int, default=_DEFAULTS.top_k, metavar="K",
                        help=f"sample among the K most likely tokens, 0 = off (default {_DEFAULTS.top_k})")
    parser.add_argument("--top-p", type=float, default=_DEFAULTS.top_p, metavar="P",
                        help=f"nucleus sampling, 1 = off (default {_DEFAULTS.top_p})")
    parser.add_argument("--seed", type=int, default=seed_default, metavar="S", help=seed_help)
    parser.add_argument("--max-tokens", type=int, default=_DEFAULTS.max_tokens, metavar="N",
                        help=f"the most tokens in one reply (default {_DEFAULTS.max_tokens})")
    add_quantize_argument(parser)


def add_quantize_argument(parser) -> None:
    """``--quantize int8``: run the weights int8, quantized as the model loads (nothing written)."""
    parser.add_argument("--quantize", choices=("int8",), default=None,
                        help="run the weights as int8, quantized at load time (an int8 checkpoint runs int8 anyway)")


def add_server_arguments(parser) -> None:
    """``--server URL`` and ``--api-key``: generate on a vLLM server or ``glasschat serve``
    instead of in this process (``--checkpoint`` then only names the tokenizer to render with)."""
    parser.add_argument("--server", metavar="URL", default=None,
                        help="generate on this OpenAI/vLLM-style server (e.g. http://127.0.0.1:8000) instead of locally")
    parser.add_argument("--api-key", metavar="KEY", default=None,
                        help="API key for --server (default: $GLASSCHAT_API_KEY)")


def sampling_params(args) -> SamplingParams:
    """The ``SamplingParams`` of options added by ``add_sampling_arguments`` (checked)."""
    return SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                          seed=args.seed, max_tokens=args.max_tokens)
