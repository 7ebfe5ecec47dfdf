"""The learner's device and dtype settings on the CPU: parsing, errors, and that naming the CPU
changes nothing (the GPU side is tests/test_gpu.py)."""

import json

import pytest

torch = pytest.importorskip("torch")

from rewardgym.cli import main as rewardgym_main  # noqa: E402
from rewardgym.trainers.cli import train_main  # noqa: E402
from rewardgym.trainers.config import SFTConfig, TrainConfig, parse_config  # noqa: E402
from rewardgym.trainers.device import resolve_device  # noqa: E402
from rewardgym.trainers.models import load_pretrained  # noqa: E402
from tests.test_trainer import TINY as TRAINER_TINY  # noqa: E402
from tests.test_trainer import _metrics  # noqa: E402

pytestmark = pytest.mark.torch
ENV = "rewardgym/Countdown-Easy-v0"
TINY = [*TRAINER_TINY, "sft_examples=16", "sft_steps=6", "steps=2", "max_new_tokens=12", "eval_tasks=2",
        "overlong_buffer=10", "progress=false"]  # two steps, checkpoints at step 2
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a CUDA GPU")


def test_device_and_dtype_settings_parse():
    cfg = parse_config(TrainConfig, ["device=cuda:1", "dtype=bfloat16"])
    assert (cfg.device, cfg.dtype) == ("cuda:1", "bfloat16")
    assert (TrainConfig().device, TrainConfig().dtype) == ("auto", "float32")
    assert parse_config(SFTConfig, ["--device", "cpu"]).device == "cpu"


@pytest.mark.parametrize("argv, message", [
    (["device=gpu"], "train config: device 'gpu' not one of 'auto', 'cpu', 'cuda', 'cuda:N'"),
    (["device=cuda:x"], "device 'cuda:x'"),
    (["device=CPU"], "device 'CPU'"),
    (["dtype=float16"], "train config: dtype 'float16' not one of ('float32', 'bfloat16')"),
])
def test_bad_device_or_dtype_is_a_clear_error(argv, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config(TrainConfig, argv)


def test_sft_config_names_itself_in_errors():
    with pytest.raises(ValueError, match="^sft config: device 'tpu'"):
        SFTConfig(device="tpu")


def test_resolve_device_in_one_process():
    assert resolve_device("cpu") == torch.device("cpu")
    gpu = torch.cuda.is_available()
    assert resolve_device("auto") == (torch.device("cuda", torch.cuda.current_device()) if gpu else torch.device("cpu"))
    with pytest.raises(ValueError, match="not one of"):
        resolve_device("gpu")


@no_cuda
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="device 'cuda:0': torch sees no CUDA GPU"):
        resolve_device("cuda:0")


def test_a_distributed_job_fixes_the_device():
    rank_gpu = torch.device("cuda", 1)
    assert resolve_device("auto", rank_gpu) == rank_gpu
    assert resolve_device("cuda", rank_gpu) == rank_gpu
    assert resolve_device("cuda:1", rank_gpu) == rank_gpu
    assert resolve_device("auto", torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="device 'cuda:0': this rank of the distributed job runs on cuda:1"):
        resolve_device("cuda:0", rank_gpu)
    with pytest.raises(ValueError, match="runs on cpu"):
        resolve_device("cuda", torch.device("cpu"))


def _weights(run_dir):
    model, _ = load_pretrained(run_dir / "checkpoints" / "step-000002")
    return model.state_dict()


@no_cuda
def test_device_cpu_gives_the_default_run_here(tmp_path):
    default, cpu = tmp_path / "default", tmp_path / "cpu"
    assert train_main([f"run_dir={default}", *TINY]) == 0
    assert train_main([f"run_dir={cpu}", "device=cpu", *TINY]) == 0
    a, b = _weights(default), _weights(cpu)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _metrics(default) == _metrics(cpu)
    assert json.loads((cpu / "config.json").read_text())["device"] == "cpu"


def test_bfloat16_policy_trains_and_saves_bfloat16(tmp_path):
    run = tmp_path / "bf16"
    assert train_main([f"run_dir={run}", "device=cpu", "dtype=bfloat16", *TINY]) == 0
    assert len(_metrics(run)) == 2
    from safetensors.torch import load_file

    saved = load_file(str(run / "checkpoints" / "step-000002" / "model.safetensors"))
    assert {t.dtype for t in saved.values()} == {torch.bfloat16}
    state = torch.load(run / "checkpoints" / "step-000002" / "trainer_state.pt", weights_only=True)
    moments = [t for s in state["optimizer"]["state"].values() for t in s.values() if t.dim()]
    assert moments and all(t.device.type == "cpu" and t.dtype == torch.bfloat16 for t in moments)


def test_eval_device_option(tmp_path, capsys):
    run = tmp_path / "run"
    assert train_main([f"run_dir={run}", "device=cpu", *TINY, "steps=1"]) == 0
    common = ["--model", str(run / "start"), "--env", ENV, "--n", "2", "--max-new-tokens", "6", "--threads", "1",
              "--no-progress"]
    assert rewardgym_main(["eval", *common, "--out", str(tmp_path / "a.parquet")]) == 0
    assert rewardgym_main(["eval", *common, "--device", "cpu", "--out", str(tmp_path / "b.parquet")]) == 0
    import pyarrow.parquet as pq

    column = [pq.read_table(tmp_path / name).column("completion").to_pylist() for name in ("a.parquet", "b.parquet")]
    assert column[0] == column[1]
    assert rewardgym_main(["eval", *common, "--device", "gpu", "--out", str(tmp_path / "c.parquet")]) == 2
    assert "device 'gpu' not one of" in capsys.readouterr().err
