"""The learner's decoder: Hugging Face parity, checkpoint round trip, KV-cache generation."""

import json

import pytest

torch = pytest.importorskip("torch")

from rewardgym.trainers.models import DecoderLM, ModelConfig, Tokenizer, load_pretrained, save_pretrained  # noqa: E402
from rewardgym.trainers.models.tokenizer import fixed_phrases  # noqa: E402
from rewardgym.trainers.rollout import completion_logprobs, sample, top_p_filter  # noqa: E402

pytestmark = pytest.mark.torch
TINY = dict(vocab_size=97, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64)


def _batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 97, (3, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # left padding
    return ids, mask


def _hf_model(family, **extra):
    transformers = pytest.importorskip("transformers")
    config_cls, model_cls = {
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
        "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM),
    }[family]
    torch.manual_seed(0)
    model = model_cls(config_cls(**TINY, **extra)).eval()
    with torch.no_grad():  # random (not zero) biases and norm weights, so parity tests them
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.normal_(0, 0.5).add_(1 if "norm" in name else 0)
    return model


@pytest.mark.parametrize("family,extra", [("llama", {}), ("llama", {"tie_word_embeddings": True}),
                                          ("qwen2", {}), ("qwen3", {"head_dim": 16})])
def test_logits_match_transformers(tmp_path, family, extra):
    ref = _hf_model(family, **extra)
    ref.save_pretrained(tmp_path)
    ours, _ = load_pretrained(tmp_path)
    ids, mask = _batch()
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=mask).logits
        got = ours(ids, mask)
    keep = mask.bool()
    assert torch.allclose(got[keep], expected[keep], atol=1e-5, rtol=1e-5)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == family


def test_sharded_checkpoint_loads(tmp_path):
    ref = _hf_model("llama")
    ref.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    ours, _ = load_pretrained(tmp_path)
    ids, mask = _batch()
    with torch.no_grad():
        assert torch.allclose(ours(ids, mask)[mask.bool()], ref(input_ids=ids, attention_mask=mask).logits[mask.bool()],
                              atol=1e-5)


def test_transformers_loads_what_we_save(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    ours = DecoderLM(ModelConfig(**TINY, model_type="qwen3", head_dim=16))
    save_pretrained(ours, None, tmp_path)
    ref = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids, mask = _batch()
    with torch.no_grad():
        assert torch.allclose(ours(ids, mask)[mask.bool()], ref(input_ids=ids, attention_mask=mask).logits[mask.bool()],
                              atol=1e-5)


def test_save_load_round_trip_with_tokenizer(tmp_path):
    tok = Tokenizer.train_bpe(["<answer>12 + 3</answer> think about it"] * 5, vocab_size=300)
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64))
    save_pretrained(model, tok, tmp_path / "m")
    loaded, tok2 = load_pretrained(tmp_path / "m")
    assert tok2.encode("12 + 3") == tok.encode("12 + 3") and tok2.eos_token_id == tok.eos_token_id
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    save_pretrained(model, tok, tmp_path / "m")  # replacing an existing checkpoint leaves no debris
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_tokenizer_splits_digits_and_round_trips():
    tok = Tokenizer.train_bpe(["Using the numbers [12, 7], reach 19. <answer>12 + 7</answer>"] * 5, vocab_size=300)
    text = "<think>123 - 4 = 119</think>\n<answer>123 - 4</answer>"
    assert tok.decode(tok.encode(text)) == text
    assert all(len(tok.decode([i]).strip()) <= 1 for i in tok.encode("123") )


def test_fixed_phrases_become_single_tokens():
    prompts = ["Intro text. Q: 12 + 7? Answer:", "Intro text. Q: 3 + 4? Answer:"]
    phrases = fixed_phrases(prompts)
    assert phrases[:2] == ["Intro text. Q: ", "? Answer:"] and "</answer>" in phrases
    tok = Tokenizer.train_bpe(prompts * 3, vocab_size=280, phrases=phrases)
    ids = tok.encode(prompts[0])
    assert len(ids) == 2 + len(tok.encode("12 + 7")) and tok.decode(ids) == prompts[0]
    assert len(tok.encode("<answer>1</answer>")) == 3


def test_bad_config_is_reported(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="model_type 'gpt2' is not supported"):
        load_pretrained(tmp_path)
    with pytest.raises(ValueError, match="multiple of num_key_value_heads"):
        ModelConfig(num_attention_heads=4, num_key_value_heads=3)


def test_cached_greedy_generation_matches_full_forward_and_batching():
    tok = Tokenizer.train_bpe(["hello world <answer>1 + 2</answer> think"] * 10, vocab_size=300)
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64))
    prompts = ["hello", "hello world think more"]
    out = sample(model, tok, prompts, max_new_tokens=12, temperature=0, stop=())
    alone = sample(model, tok, prompts[1:], max_new_tokens=12, temperature=0, stop=())
    assert out.texts[1] == alone.texts[0]
    # greedy by hand, no cache: append argmax of a full forward pass
    ids = tok.encode(prompts[1])
    with torch.no_grad():
        for _ in range(12):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    assert out.batch.completion_ids[1].tolist() == ids[-12:]
    logp, _ = completion_logprobs(model, out.batch)
    assert torch.allclose(logp * out.batch.completion_mask, out.logprobs, atol=1e-5)


class ScriptedLM(torch.nn.Module):
    """Emits a fixed token script whatever the prompt: row i's next token is script[i][generated]."""

    def __init__(self, vocab_size, scripts):
        super().__init__()
        self.vocab_size, self.scripts, self.prompt_len = vocab_size, scripts, None
        self.lm_head = torch.nn.Linear(1, 1)

    def new_cache(self, batch, capacity):
        return type("Cache", (), {"length": 0})()

    def last_routing(self):
        return None  # no experts

    def forward(self, ids, mask, cache):
        if self.prompt_len is None:
            self.prompt_len = ids.shape[1]
        done = cache.length + ids.shape[1] - self.prompt_len
        cache.length += ids.shape[1]
        logits = torch.full((ids.shape[0], ids.shape[1], self.vocab_size), -1e4)
        for row, script in enumerate(self.scripts):
            logits[row, -1, script[min(done, len(script) - 1)]] = 0
        return logits


def test_sampling_stops_at_stop_string_or_eos_or_length():
    tok = Tokenizer.train_bpe(["think <answer>1 + 2</answer> more"] * 10, vocab_size=300)
    body = tok.encode("<answer>1 + 2</answer> more more more")
    stop_at = len(tok.encode("<answer>1 + 2</answer>"))
    scripts = [body, tok.encode("think") + [tok.eos_token_id] + body, tok.encode(" more" * 20)]
    out = sample(ScriptedLM(tok.vocab_size, scripts), tok, ["a", "b", "c"], max_new_tokens=16, temperature=1.0,
                 generator=torch.Generator().manual_seed(0))
    assert out.texts[0] == "<answer>1 + 2</answer>" and out.lengths[0] == stop_at
    assert out.texts[1] == "think" and out.lengths[1] == len(tok.encode("think")) + 1  # EOS counted, not shown
    assert stop_at < 16 and out.lengths[2] == 16 and out.truncated == [False, False, True]
    assert out.batch.completion_mask.sum(1).tolist() == [float(n) for n in out.lengths]


def test_sampling_is_seeded():
    tok = Tokenizer.train_bpe(["hello world <answer>1 + 2</answer> think"] * 10, vocab_size=300)
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64))
    runs = [sample(model, tok, ["x", "y"], max_new_tokens=10, temperature=1.0, top_p=0.9,
                   generator=torch.Generator().manual_seed(3)).texts for _ in range(2)]
    assert runs[0] == runs[1]


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(top_p_filter(logits, 0.75))
    assert kept.tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.01)).sum() == 1
