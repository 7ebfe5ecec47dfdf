"""Progress bar vs per-step lines, and TensorBoard logging of `rewardgym train` / `sft`."""

import sys

import pytest

torch = pytest.importorskip("torch")

from rewardgym.trainers import reporting  # noqa: E402
from rewardgym.trainers.cli import sft_main, train_main  # noqa: E402
from rewardgym.trainers.reporting import Progress, tensorboard_writer  # noqa: E402
from tests.test_trainer import TINY  # noqa: E402

pytestmark = pytest.mark.torch


def _terminal(monkeypatch, tty: bool) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: tty, raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty, raising=False)


def _run(progress: Progress) -> None:
    for i in range(3):
        progress.step(f"step {i + 1}", {"loss": 1.0 / (i + 1)}, show_line=i != 1)
    progress.close()


def test_lines_when_not_a_terminal(monkeypatch):
    _terminal(monkeypatch, False)
    lines = []
    progress = Progress(3, desc="t", log=lines.append)
    assert progress.bar is None
    _run(progress)
    assert lines == ["step 1", "step 3"]


def test_bar_on_a_terminal_replaces_lines(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    _terminal(monkeypatch, True)
    lines = []
    progress = Progress(3, desc="grpo", log=lines.append)
    assert progress.bar is not None
    _run(progress)
    assert lines == [] and "grpo" in capsys.readouterr().err


@pytest.mark.parametrize("why", ["no tqdm", "progress=false"])
def test_lines_on_a_terminal_without_tqdm_or_when_disabled(monkeypatch, why):
    _terminal(monkeypatch, True)
    if why == "no tqdm":
        monkeypatch.setattr(reporting, "_tqdm", lambda: None)
    lines = []
    progress = Progress(3, desc="t", log=lines.append, enabled=why == "no tqdm")
    assert progress.bar is None
    _run(progress)
    assert lines == ["step 1", "step 3"]


def test_missing_tensorboard_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    assert tensorboard_writer(tmp_path, enabled=False) is None
    with pytest.raises(ImportError, match="'tensorboard' package: pip install tensorboard"):
        tensorboard_writer(tmp_path)
    assert sft_main([f"run_dir={tmp_path}", "tensorboard=true", "steps=1", "examples=4", "vocab_size=300"]) == 2
    assert "needs the 'tensorboard' package" in capsys.readouterr().err


def test_train_writes_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert train_main([f"run_dir={run}", "steps=2", "tensorboard=true", *TINY]) == 0
    sft = EventAccumulator(str(run / "tensorboard" / "sft")).Reload()
    grpo = EventAccumulator(str(run / "tensorboard" / "grpo")).Reload()
    assert [e.step for e in sft.Scalars("sft/loss")] == list(range(1, 31))
    assert [e.step for e in grpo.Scalars("grpo/reward_mean")] == [1, 2]
    assert [e.step for e in grpo.Scalars("eval/accuracy")] == [0, 2]
    assert {"grpo/kl", "grpo/accuracy", "grpo/time_generate"} <= set(grpo.Tags()["scalars"])
