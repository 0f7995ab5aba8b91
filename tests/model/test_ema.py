"""The weight average (train.ema_decay): the update rule, its use in training, exact resume."""

from pathlib import Path

import pytest
import torch

from croco_pipeline.errors import CrocoConfigError
from croco_pipeline.model.config import TrainConfig
from croco_pipeline.model.ema import WeightAverage, warmed_decay
from fixtures_train import TinyPair, fresh_tiny_pair, tiny_scene


def test_the_decay_warms_up_to_its_value() -> None:
    assert warmed_decay(0.99, 0) == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    assert warmed_decay(0.99, 8) == pytest.approx(0.5)  # 9 / 18
    assert warmed_decay(0.99, 10_000) == 0.99


def test_the_average_follows_the_update_rule_of_a_slow_reference() -> None:
    model = fresh_tiny_pair()
    average = WeightAverage(model, 0.9)
    reference = {k: v.clone().double() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    for t in range(12):  # the warm-up (0.1, 0.18, ...) then 0.9
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=g))
        model.elev[1].num_batches_tracked += 3
        average.update(model)
        d = min(0.9, (1 + t) / (10 + t))
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                reference[k] = d * reference[k] + (1 - d) * v.double()
            else:
                reference[k] = v.double()
    for k, v in average.module.state_dict().items():
        torch.testing.assert_close(v.double(), reference[k], rtol=1e-5, atol=1e-5, msg=k)
    assert (
        int(average.module.state_dict()["elev.1.num_batches_tracked"]) == 36
    )  # copied, not averaged
    assert average.updates == 12


def test_a_decay_outside_zero_one_is_refused() -> None:
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(TinyPair(), 1.0)
    with pytest.raises(CrocoConfigError, match="train.ema_decay"):
        TrainConfig.from_params({"ema_decay": 1.0})


class _Interrupted(Exception):
    """Stands in for a crash after the first epoch's checkpoint."""


def _crash(epoch: int, record: dict[str, float]) -> None:
    raise _Interrupted


def _train(tmp: Path | None, on_epoch_end=None, validate=None, **kw):
    from croco_pipeline.data.stack import NormalisationStats
    from croco_pipeline.model.trainer import train

    stacks, index = tiny_scene()
    params = {"epochs": 2, "batch_size": 8, "steps_per_epoch": 3, "optimizer": "adam", "lr": 1e-2,
              "device": "cpu", "progress": False, "seed": 3, "loss": "info_nce",
              "sampling": "random", "checkpoint_dir": str(tmp) if tmp else None, **kw}  # fmt: skip
    stats = NormalisationStats("global_minmax", 0.0, 255.0, 50.0)
    model = fresh_tiny_pair() if not kw.get("resume") else TinyPair()
    config = TrainConfig.from_params(params)
    return train(model, stacks, index, stats, config, validate, on_epoch_end), model


def test_off_trains_exactly_as_before_and_on_keeps_and_validates_the_average(
    tmp_path: Path,
) -> None:
    default, _ = _train(None)
    off, _ = _train(None, ema_decay=0.0)
    assert all(torch.equal(v, off.last_state[k]) for k, v in default.last_state.items())
    seen: list[dict[str, torch.Tensor]] = []

    def validate(module: torch.nn.Module, epoch: int) -> dict[str, float]:
        seen.append({k: v.clone() for k, v in module.state_dict().items()})
        return {"top1": float(epoch)}  # the last epoch is the best

    on, trained = _train(tmp_path, validate=validate, ema_decay=0.5)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    # returned, kept and validated: the average, not the trained weights
    assert all(torch.equal(v, ckpt["average"]["weights"][k]) for k, v in on.last_state.items())
    assert all(torch.equal(v, on.best_state[k]) for k, v in on.last_state.items())
    assert all(torch.equal(v, seen[-1][k]) for k, v in on.last_state.items())
    assert all(torch.equal(v, ckpt["model"][k]) for k, v in trained.state_dict().items())
    assert not torch.equal(on.last_state["elev.5.weight"], ckpt["model"]["elev.5.weight"])
    assert ckpt["average"]["updates"] == 6  # 2 epochs of 3 steps


def test_resume_restores_the_average_exactly(tmp_path: Path) -> None:
    straight, _ = _train(tmp_path / "a", ema_decay=0.8)
    with pytest.raises(_Interrupted):
        _train(tmp_path / "b", _crash, ema_decay=0.8)
    torch.manual_seed(99)  # everything must come from last.pt, the average included
    resumed, _ = _train(tmp_path / "b", ema_decay=0.8, resume=True)
    for key, value in straight.last_state.items():
        assert torch.equal(value, resumed.last_state[key]), key
    # the control: an average restarted from the trained weights at resume ends elsewhere
    with pytest.raises(_Interrupted):
        _train(tmp_path / "c", _crash, ema_decay=0.8)
    ckpt = torch.load(tmp_path / "c" / "last.pt", weights_only=True)
    ckpt["average"] = {"weights": ckpt["model"], "updates": 0}
    torch.save(ckpt, tmp_path / "c" / "last.pt")
    lost, _ = _train(tmp_path / "c", ema_decay=0.8, resume=True)
    assert any(not torch.equal(v, lost.last_state[k]) for k, v in straight.last_state.items())


def test_resuming_with_the_average_switched_on_or_off_names_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(_Interrupted):
        _train(tmp_path / "a", _crash)
    with pytest.raises(CrocoConfigError, match="train.ema_decay.*holds no average"):
        _train(tmp_path / "a", ema_decay=0.9, resume=True)
    with pytest.raises(_Interrupted):
        _train(tmp_path / "b", _crash, ema_decay=0.9)
    with pytest.raises(CrocoConfigError, match="train.ema_decay.*holds an average"):
        _train(tmp_path / "b", ema_decay=0.0, resume=True)
