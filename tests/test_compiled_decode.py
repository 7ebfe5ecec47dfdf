"""The compiled decode step samples what the eager one does, and refuses what it does not implement."""

import shutil

import pytest

torch = pytest.importorskip("torch")

from rewardgym.trainers.compiled_decode import padded_capacity  # noqa: E402
from rewardgym.trainers.config import TrainConfig  # noqa: E402
from rewardgym.trainers.models import DecoderLM, ModelConfig, Tokenizer  # noqa: E402
from rewardgym.trainers.rollout import sample  # noqa: E402

pytestmark = pytest.mark.torch

needs_compiler = pytest.mark.skipif(not (shutil.which("g++") or shutil.which("clang++")),
                                    reason="torch.compile's CPU backend needs a C++ compiler")


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train_bpe(["Reach 19 with [12, 7]. <think>12 + 7 = 19</think> <answer>12 + 7</answer>"] * 5,
                               vocab_size=300)


def tiny(tok, **extra) -> DecoderLM:
    torch.manual_seed(0)
    return DecoderLM(ModelConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **extra))


def sharp(tok) -> DecoderLM:
    """Weights scaled up from the tiny init: attention far from uniform, so a wrong mask or position
    shows in the log-probs."""
    model = tiny(tok)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.mul_(20.0)
    return model


def test_capacity_rounds_up_to_a_multiple_of_64():
    assert [padded_capacity(n) for n in (1, 64, 65, 89, 128)] == [64, 64, 128, 128, 128]


@pytest.mark.slow
@needs_compiler
def test_compiled_greedy_sampling_matches_eager(tok):
    model = sharp(tok)
    # two prompts of different widths (left padding), each repeated (a shared prompt pass), and a
    # stop string so rows finish at different steps and keep decoding as padding
    prompts = ["Reach 19 with [12, 7].", "Reach 19"] * 3
    kwargs = dict(max_new_tokens=20, temperature=0.0, stop=("8",))
    eager = sample(model, tok, prompts, **kwargs)
    compiled = sample(model, tok, prompts, compile=True, **kwargs)
    assert compiled.lengths == eager.lengths and len(set(eager.lengths)) > 1
    assert torch.equal(compiled.batch.input_ids, eager.batch.input_ids)
    assert torch.allclose(compiled.logprobs, eager.logprobs, atol=1e-5)
    assert compiled.texts == eager.texts


def test_compile_refuses_a_mixture_of_experts_model(tok):
    with pytest.raises(ValueError, match="dense models only"):
        sample(tiny(tok, num_experts=4), tok, ["Reach 19"], max_new_tokens=2, compile=True)


def test_train_config_refuses_compile_with_expert_parallel_or_fp8():
    for extra in ({"num_experts": 4, "expert_parallel": True}, {"fp8": "rollout"}):
        with pytest.raises(ValueError, match="compile=true"):
            TrainConfig(compile=True, **extra)
