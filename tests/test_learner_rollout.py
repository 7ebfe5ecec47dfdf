"""Stop-string detection in sampling: only tokens that can end a stop string trigger a decode."""

import pytest

torch = pytest.importorskip("torch")

from rewardgym.trainers.models import DecoderLM, ModelConfig, Tokenizer  # noqa: E402
from rewardgym.trainers.rollout import sample, stop_candidates  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train_bpe(["Reach 19 with [12, 7]. <think>12 + 7 = 19</think> <answer>12 + 7</answer> café"] * 5,
                               vocab_size=300)


def test_stop_candidates_are_the_tokens_holding_the_last_character(tok):
    texts = [tok.decode([i]) for i in range(tok.vocab_size)]
    marked = stop_candidates(tok, ("</answer>",)).tolist()
    assert marked == [">" in text for text in texts]
    assert any(marked) and not all(marked)


def test_stop_candidates_for_non_ascii_and_whitespace_endings(tok):
    texts = [tok.decode([i]) for i in range(tok.vocab_size)]
    partial = [i for i, text in enumerate(texts) if "\ufffd" in text]
    assert partial  # byte-level BPE: lone high bytes
    assert all(stop_candidates(tok, ("café",))[partial])
    assert not any(stop_candidates(tok, ("</answer>",))[partial])
    assert bool(stop_candidates(tok, ("x ",)).all())


def test_rows_end_at_the_first_stop_string(tok):
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    stop = ("e", "o")
    out = sample(model, tok, ["Reach 19"] * 32, max_new_tokens=24, temperature=2.0, stop=stop,
                 generator=torch.Generator().manual_seed(1))
    stopped = 0
    for ids, length, truncated in zip(out.batch.completion_ids.tolist(), out.lengths, out.truncated):
        ids = ids[:length]
        if truncated or ids[-1] == tok.eos_token_id:
            assert not any(s in tok.decode(ids[:-1]) for s in stop)
            continue
        stopped += 1
        assert any(s in tok.decode(ids) for s in stop) and not any(s in tok.decode(ids[:-1]) for s in stop)
    assert stopped > 0
