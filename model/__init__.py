"""The GPT, its checkpoints (safetensors + config.json), nanochat import and Hugging Face
export, the streaming KV-cache engine with its calculator tool, training and evaluation.
Knows nothing of Textual.
"""

from model.events import GenerationStats, SamplingParams, Stop, TokenEvent

__all__ = ["GenerationStats", "SamplingParams", "Stop", "TokenEvent"]
