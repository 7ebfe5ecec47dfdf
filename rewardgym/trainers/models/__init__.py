"""The learner's models: a compact decoder, its tokenizer, and Hugging Face-layout checkpoints."""

from .config import ModelConfig
from .decoder import DecoderLM, KVCache
from .hub import load_pretrained, save_pretrained
from .tokenizer import Tokenizer

__all__ = ["DecoderLM", "KVCache", "ModelConfig", "Tokenizer", "load_pretrained", "save_pretrained"]
