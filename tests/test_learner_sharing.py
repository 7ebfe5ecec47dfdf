"""The sampler's token draw, and rows that share a prompt sharing its forward pass."""

import pytest

torch = pytest.importorskip("torch")

from rewardgym.trainers.models import DecoderLM, ModelConfig, Tokenizer  # noqa: E402
from rewardgym.trainers.rollout import completion_logprobs, draw_tokens, pack, sample, shared_prompts  # noqa: E402

pytestmark = pytest.mark.torch
TINY = dict(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, eos_token_id=0, pad_token_id=1)


def test_draw_follows_the_distribution_and_never_picks_a_zero():
    probs = torch.tensor([[0.0, 0.25, 0.0, 0.75, 0.0]]).repeat(4000, 1)
    counts = torch.bincount(draw_tokens(probs, torch.Generator().manual_seed(0)), minlength=5)
    assert counts[[0, 2, 4]].tolist() == [0, 0, 0]
    assert abs(counts[3].item() / 4000 - 0.75) < 0.03  # ~4 standard deviations


def test_each_block_of_rows_draws_from_its_own_generator():
    probs = torch.rand(6, 7, generator=torch.Generator().manual_seed(5))
    both = draw_tokens(probs, [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    alone = draw_tokens(probs[3:], torch.Generator().manual_seed(2))
    assert both[3:].tolist() == alone.tolist()


def _plain_logprobs(model, batch):
    logits = model(batch.input_ids, batch.attention_mask)[:, batch.prompt_width - 1:-1]
    return logits.log_softmax(-1).gather(-1, batch.completion_ids[..., None]).squeeze(-1)


@pytest.mark.parametrize("completions", [[[4, 5, 6], [7], [8, 9], [10, 11, 12, 13], [14]], [[4]] * 5])
def test_a_shared_prompt_pass_gives_the_full_pass_logprobs_and_gradients(completions):
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(**TINY))
    prompts = [[20, 21, 22], [20, 21, 22], [30, 31], [30, 31], [40]]
    batch = pack(prompts, completions, pad_id=1)
    assert len(shared_prompts(batch.input_ids, batch.attention_mask, batch.prompt_width)[0]) == 3
    shared, _ = completion_logprobs(model, batch)
    (shared * batch.completion_mask).sum().backward()
    shared_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    plain = _plain_logprobs(model, batch)
    (plain * batch.completion_mask).sum().backward()
    real = batch.completion_mask.bool()
    assert torch.allclose(shared[real], plain[real], atol=1e-5)
    assert all(torch.allclose(a, p.grad, atol=1e-5) for a, p in zip(shared_grads, model.parameters()))


def test_sampling_a_repeated_prompt_matches_sampling_it_alone():
    tok = Tokenizer.train_bpe(["hello world <answer>1 + 2</answer> think"] * 10, vocab_size=300)
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64))
    out = sample(model, tok, ["hello"] * 2 + ["hello world think more"] * 2, max_new_tokens=8, temperature=0, stop=())
    alone = sample(model, tok, ["hello world think more"], max_new_tokens=8, temperature=0, stop=())
    assert out.texts[2] == out.texts[3] == alone.texts[0]
    logp, _ = completion_logprobs(model, out.batch)
    assert torch.allclose(logp * out.batch.completion_mask, out.logprobs, atol=1e-5)


def test_a_gathered_cache_repeats_rows_and_checks_its_capacity():
    model = DecoderLM(ModelConfig(**TINY))
    cache = model.new_cache(2, 4)
    with torch.no_grad():
        model(torch.tensor([[5, 6, 7], [8, 9, 10]]), cache=cache)
    again = cache.gather(torch.tensor([1, 1, 0]), 6)
    assert again.length == 3 and again.keys[0].shape[0] == 3 and again.capacity == 6
    assert torch.equal(again.keys[1][2, :, :3], cache.keys[1][0, :, :3])
    assert torch.equal(again.values[0][0, :, :3], cache.values[0][1, :, :3])
    with pytest.raises(ValueError, match="exceed the capacity 2"):
        cache.gather(torch.tensor([0]), 2)
