"""Adapters: TRL (a real GRPOTrainer step on a tiny model) and verl (compute_score, Parquet rows)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

import rewardgym
from rewardgym.integrations import task_from
from rewardgym.integrations.verl import compute_score, export_parquet

REF = rewardgym.make("Countdown-Easy-v0").unwrapped


def test_trl_reward_func_on_strings_and_messages() -> None:
    pytest.importorskip("datasets")
    from rewardgym.integrations.trl import reward_func, to_dataset

    ds = to_dataset("Countdown-Easy-v0", 3, seed=5)
    assert ds.column_names == ["prompt", "task", "task_id"] and ds["prompt"][0][0]["role"] == "system"
    tasks = [task_from(t) for t in ds["task"]]
    assert tasks[0].meta == REF.generate(5).meta
    fn = reward_func("Countdown-Easy-v0")
    assert fn.__name__ == "rewardgym_Countdown_Easy_v0"
    messages = [[{"role": "assistant", "content": REF.reference(t)}] for t in tasks]
    assert fn(prompts=ds["prompt"], completions=messages, task=ds["task"]) == [1.0, 1.0, 1.0]
    assert fn(prompts=ds["prompt"], completions=["x", REF.reference(tasks[1]), "y"], task=ds["task"]) == [0.0, 1.0, 0.0]
    with pytest.raises(KeyError, match="no 'task' column"):
        fn(prompts=[], completions=[])


@pytest.mark.slow
@pytest.mark.torch
def test_trl_grpo_trainer_runs_a_step_with_our_reward(tmp_path) -> None:
    pytest.importorskip("trl")
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer

    from rewardgym.integrations.trl import reward_func, to_dataset

    ds = to_dataset("Countdown-Easy-v0", 4)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.train_from_iterator([m["content"] for p in ds["prompt"] for m in p],
                            trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<pad>", "<eos>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    hf_tok.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                            "{% if add_generation_prompt %}assistant: {% endif %}")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(hf_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, pad_token_id=hf_tok.pad_token_id,
                                         eos_token_id=hf_tok.eos_token_id))
    seen = []
    inner = reward_func("Countdown-Easy-v0")

    def recording(prompts=None, completions=None, **columns):
        seen.append(len(completions))
        return inner(prompts=prompts, completions=completions, **columns)

    recording.__name__ = inner.__name__
    args = GRPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=8, logging_steps=1, report_to="none", use_cpu=True, save_strategy="no")
    trainer = GRPOTrainer(model=model, reward_funcs=[recording], args=args, train_dataset=ds, processing_class=hf_tok)
    trainer.train()
    assert seen and seen[0] == 2
    assert any("rewards/rewardgym_Countdown_Easy_v0/mean" in row for row in trainer.state.log_history)


def test_verl_parquet_columns_and_compute_score(tmp_path) -> None:
    path = export_parquet("Countdown-Easy-v0", tmp_path / "train.parquet", 5, seed=2)
    rows = pq.read_table(path).to_pylist()
    assert len(rows) == 5 and set(rows[0]) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    row = rows[0]
    assert row["data_source"] == "rewardgym/Countdown-Easy-v0" and row["reward_model"]["style"] == "rule"
    assert row["prompt"][1]["role"] == "user" and row["extra_info"] == {"split": "train", "index": 0, "task_id": "countdown-2"}
    task = task_from(row["reward_model"]["ground_truth"])
    assert compute_score(row["data_source"], REF.reference(task), row["reward_model"]["ground_truth"], row["extra_info"]) \
        == {"score": 1.0, "acc": 1.0}
    assert compute_score(row["data_source"], "<answer>0</answer>", row["reward_model"]["ground_truth"])["score"] == 0.0


def test_verl_export_never_overwrites(tmp_path) -> None:
    target = tmp_path / "mine.parquet"
    target.write_text("precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_parquet("Countdown-v0", target, 2)
    assert target.read_text() == "precious"
    export_parquet("Countdown-v0", target, 2, overwrite=True)
    assert pq.read_table(target).num_rows == 2 and not list(tmp_path.glob(".*.tmp"))
