"""Tokenizer: a thin wrapper over the ``tokenizers`` library.

It loads any Hugging Face ``tokenizer.json``, or trains a small byte-level BPE in-process (digits
split one by one, which helps arithmetic) for the embedded tiny model. The wrapper adds only what
the learner needs: batch encode/decode and the ids of the end-of-sequence and padding tokens.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import AddedToken
from tokenizers import Tokenizer as _HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

EOS = "<|endoftext|>"
PAD = "<|pad|>"


class Tokenizer:
    def __init__(self, inner: _HFTokenizer, *, eos_token_id: int, pad_token_id: int | None = None):
        self.inner = inner
        self.eos_token_id = eos_token_id
        self.pad_token_id = eos_token_id if pad_token_id is None else pad_token_id

    @property
    def vocab_size(self) -> int:
        return self.inner.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.inner.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.inner.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        return self.inner.decode(ids, skip_special_tokens=True)

    def decode_batch(self, batch: list[list[int]]) -> list[str]:
        return self.inner.decode_batch(batch, skip_special_tokens=True)

    def save(self, directory: str | Path) -> None:
        self.inner.save(str(Path(directory, "tokenizer.json")))

    @classmethod
    def load(cls, directory: str | Path, *, eos_token_id: int | None = None,
             pad_token_id: int | None = None) -> "Tokenizer":
        """Load ``directory/tokenizer.json``. Without ``eos_token_id`` the EOS is looked up by the
        usual names (``<|endoftext|>``, ``</s>``, ``<|im_end|>``, ``<|end_of_text|>``)."""
        path = Path(directory, "tokenizer.json")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no tokenizer.json in the model directory")
        inner = _HFTokenizer.from_file(str(path))
        if eos_token_id is None:
            for name in (EOS, "</s>", "<|im_end|>", "<|end_of_text|>", "<|eot_id|>"):
                eos_token_id = inner.token_to_id(name)
                if eos_token_id is not None:
                    break
            else:
                raise ValueError(f"{path}: cannot tell the end-of-sequence token; set eos_token_id in config.json")
        if pad_token_id is None:
            pad_token_id = inner.token_to_id(PAD)
        return cls(inner, eos_token_id=eos_token_id, pad_token_id=pad_token_id)

    @classmethod
    def train_bpe(cls, texts: Iterable[str], vocab_size: int = 512, phrases: Iterable[str] = ()) -> "Tokenizer":
        """A byte-level BPE trained on ``texts``; deterministic for the same inputs.

        Each of ``phrases`` becomes one token matched before BPE (for a tiny model: a prompt's fixed
        instruction, or tags such as ``</answer>``), which shortens sequences several times over."""
        inner = _HFTokenizer(models.BPE())
        inner.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
        inner.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        inner.train_from_iterator(list(texts), trainer=trainer)
        inner.add_tokens([AddedToken(p, normalized=False) for p in dict.fromkeys(phrases) if p])
        return cls(inner, eos_token_id=inner.token_to_id(EOS), pad_token_id=inner.token_to_id(PAD))


R1_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def fixed_phrases(prompts: list[str], min_chars: int = 8) -> list[str]:
    """The text every prompt starts with and the text every prompt ends with (a template's fixed
    instruction), plus the R1 tags: phrases worth one token each in a tiny in-process tokenizer."""
    prefix = os.path.commonprefix(prompts) if len(prompts) > 1 else ""
    suffix = os.path.commonprefix([p[::-1] for p in prompts])[::-1] if len(prompts) > 1 else ""
    return [p for p in (prefix, suffix) if len(p) >= min_chars] + list(R1_TAGS)
