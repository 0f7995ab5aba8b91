"""LARS against a hand computation, parameter groups, lr scaling and the warm-up + cosine schedule."""

import math

import pytest
import torch
from torch import nn

from croco_pipeline.model.optim import LARS, build_optimizer, param_groups, scaled_lr, warmup_cosine


def test_lars_step_matches_hand_computation() -> None:
    w = nn.Parameter(torch.tensor([3.0, 4.0]))  # ||w|| = 5
    opt = LARS([w], lr=1.0, momentum=0.9, weight_decay=0.1, eta=0.001)
    w.grad = torch.tensor([0.6, 0.8])  # ||g|| = 1
    opt.step()
    # direction (g + wd w) = (0.9, 1.2); trust = 0.001 * 5 / (1 + 0.1 * 5) = 1 / 300.
    first = torch.tensor([0.9, 1.2]) / 300
    torch.testing.assert_close(w.data, torch.tensor([3.0, 4.0]) - first)
    w.grad = torch.tensor([0.6, 0.8])
    opt.step()
    w_norm = float(torch.linalg.vector_norm(w.data))
    direction = (torch.tensor([0.6, 0.8]) + 0.1 * w.data) * 0.001 * w_norm / (1 + 0.1 * w_norm)
    expected = torch.tensor([3.0, 4.0]) - first - (0.9 * first + direction)
    torch.testing.assert_close(w.data, expected)


def test_lars_excluded_group_is_plain_sgd() -> None:
    b = nn.Parameter(torch.tensor([1.0, -1.0]))
    opt = LARS([{"params": [b], "weight_decay": 0.0, "lars": False}], lr=0.5, weight_decay=0.1)
    b.grad = torch.tensor([2.0, 2.0])
    opt.step()
    torch.testing.assert_close(b.data, torch.tensor([0.0, -2.0]))


def test_lars_zero_weight_uses_unit_trust() -> None:
    w = nn.Parameter(torch.zeros(3))
    opt = LARS([w], lr=0.1)
    w.grad = torch.ones(3)
    opt.step()
    torch.testing.assert_close(w.data, torch.full((3,), -0.1))


def test_lars_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="-1"):
        LARS([nn.Parameter(torch.ones(1))], lr=-1.0)


def test_param_groups_exclude_biases_and_norm_layers() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    decay, excluded = param_groups(net, weight_decay=0.01)
    assert decay["weight_decay"] == 0.01 and decay["lars"]
    assert excluded["weight_decay"] == 0.0 and not excluded["lars"]
    assert {id(p) for p in decay["params"]} == {id(net[0].weight), id(net[3].weight)}
    expected = {id(net[0].bias), id(net[1].weight), id(net[1].bias), id(net[3].bias)}
    assert {id(p) for p in excluded["params"]} == expected


def test_param_groups_count_a_shared_module_once() -> None:
    shared = nn.Linear(2, 2)
    net = nn.ModuleDict({"a": shared, "b": shared})
    groups = param_groups(net, 0.0)
    assert sum(len(g["params"]) for g in groups) == 2


@pytest.mark.parametrize(
    ("rule", "expected"), [("linear", 0.4), ("sqrt", 0.1 * math.sqrt(4)), ("none", 0.1)]
)
def test_lr_scaling(rule: str, expected: float) -> None:
    assert scaled_lr(0.1, 1024, 256, rule) == pytest.approx(expected)
    opt = build_optimizer(nn.Linear(2, 2), "lars", 0.1, 1e-6, 1024, 256, rule)
    assert opt.param_groups[0]["lr"] == pytest.approx(expected)


@pytest.mark.parametrize("name", ["lars", "adam", "adamw"])
def test_build_optimizer_kinds(name: str) -> None:
    opt = build_optimizer(nn.Linear(2, 2), name, 1e-3, 1e-4, 256)
    assert opt.param_groups[1]["weight_decay"] == 0.0
    assert opt.param_groups[0]["weight_decay"] == 1e-4


def test_build_optimizer_rejects_unknown_name_and_scaling() -> None:
    with pytest.raises(ValueError, match="sgd"):
        build_optimizer(nn.Linear(2, 2), "sgd", 1e-3, 0.0, 256)
    with pytest.raises(ValueError, match="cube"):
        scaled_lr(0.1, 256, 256, "cube")


def test_warmup_cosine_values() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=2.0)
    sched = warmup_cosine(opt, warmup_steps=4, total_steps=10, min_lr_ratio=0.1)
    lrs = []
    for _ in range(11):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(2.0 / 4)  # step 0: first warm-up step
    assert lrs[3] == pytest.approx(2.0)  # last warm-up step reaches the base lr
    assert lrs[4] == pytest.approx(2.0)  # cosine starts at its peak
    assert lrs[7] == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))  # half-way through the cosine
    assert lrs[10] == pytest.approx(0.2)  # the end: min_lr_ratio * base lr
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False))


def test_warmup_cosine_rejects_bad_steps() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=1.0)
    with pytest.raises(ValueError, match="12"):
        warmup_cosine(opt, warmup_steps=12, total_steps=10)


def test_lr_scale_puts_parameters_in_slower_groups_that_the_schedule_keeps() -> None:
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    slow = {id(net[0].weight): 0.1, id(net[0].bias): 0.1}
    opt = build_optimizer(net, "adam", 1e-3, 1e-4, 256, scale_lr="none", lr_scale=slow)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lr_of[id(net[0].weight)] == pytest.approx(1e-4)
    assert lr_of[id(net[0].bias)] == pytest.approx(1e-4)
    assert lr_of[id(net[1].weight)] == pytest.approx(1e-3)
    decay_of = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert decay_of[id(net[0].weight)] == 1e-4 and decay_of[id(net[0].bias)] == 0.0
    schedule = warmup_cosine(opt, 0, 10)
    weights = (net[0].weight, net[1].weight)
    before = [p.detach().clone() for p in weights]
    net(torch.ones(4, 2)).pow(2).sum().backward()
    opt.step()  # adam's first step moves each element by about its lr
    schedule.step()
    steps = [float((p.detach() - b).abs().max()) for p, b in zip(weights, before, strict=True)]
    assert steps[0] == pytest.approx(1e-4, rel=0.01) and steps[1] == pytest.approx(1e-3, rel=0.01)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lr_of[id(net[0].weight)] / lr_of[id(net[1].weight)] == pytest.approx(0.1)
