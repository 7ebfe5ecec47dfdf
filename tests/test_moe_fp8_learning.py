"""A tiny DeepSeek-V3-style model (sigmoid-routed experts plus a shared one) trained with every
projection in FP8 still learns countdown: the issue's end-to-end check that MoE and FP8 compose.

Learning is measured as the held-out completion loss on countdown reference solutions (tasks the
model never saw), against the same model trained in full precision from the same start: FP8 must
reach nearly the same loss, far below where both began.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from rewardgym.trainers.models import DecoderLM, ModelConfig, Tokenizer  # noqa: E402
from rewardgym.trainers.models.fp8 import FP8Linear, to_fp8  # noqa: E402
from rewardgym.trainers.models.moe import MoE  # noqa: E402
from rewardgym.trainers.models.tokenizer import fixed_phrases  # noqa: E402
from rewardgym.trainers.sft import reference_pairs, run_sft, sft_batch, sft_loss  # noqa: E402

ENV = "rewardgym/Countdown-Easy-v0"


def held_out_loss(model: DecoderLM, tokenizer: Tokenizer, pairs) -> float:
    model.eval()
    with torch.no_grad():
        return float(sft_loss(model, sft_batch(tokenizer, pairs)))


@pytest.mark.slow
def test_tiny_moe_fp8_model_learns_countdown():
    torch.set_num_threads(1)
    train = reference_pairs(ENV, range(10_000_000, 10_000_600))
    held_out = reference_pairs(ENV, range(20_000_000, 20_000_064))
    tokenizer = Tokenizer.train_bpe((t for pair in train for t in pair), vocab_size=384,
                                    phrases=fixed_phrases([p for p, _ in train]))
    torch.manual_seed(0)
    start = DecoderLM(ModelConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, num_experts=4, num_experts_per_tok=2,
        moe_intermediate_size=64, n_shared_experts=1, scoring_func="sigmoid",
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    full = DecoderLM(start.config)
    full.load_state_dict(start.state_dict())
    fp8 = to_fp8(start)
    assert any(isinstance(m, FP8Linear) for m in fp8.modules()) and any(isinstance(m, MoE) for m in fp8.modules())
    initial = held_out_loss(full, tokenizer, held_out)

    settings = dict(steps=120, batch_size=16, lr=3e-3, seed=0)
    run_sft(full, tokenizer, train, **settings)
    fp8_losses = run_sft(fp8, tokenizer, train, **settings)
    after_full, after_fp8 = held_out_loss(full, tokenizer, held_out), held_out_loss(fp8, tokenizer, held_out)

    assert fp8_losses[-1] < 0.5 * fp8_losses[0]
    assert after_fp8 < 0.4 * initial, (initial, after_fp8)
    assert after_fp8 < 1.15 * after_full, (after_full, after_fp8)
    # the router balanced its load from the bias alone (no auxiliary loss): some bias moved
    assert any(float(m.gate.e_score_correction_bias.abs().max()) > 0 for m in fp8.modules() if isinstance(m, MoE))
