"""GRPO math against hand-computed values."""

import math

import pytest

torch = pytest.importorskip("torch")

from rewardgym.trainers import grpo  # noqa: E402

pytestmark = pytest.mark.torch
LOG = math.log


def test_group_advantages_with_std_scaling():
    rewards = torch.tensor([1.0, 0, 0, 0, 1, 1, 0, 0])
    adv = grpo.group_advantages(rewards, 4, eps=0.0)
    # group 1: mean .25, sample std .5; group 2: mean .5, sample std sqrt(1/3)
    s = 0.5 / math.sqrt(1 / 3)
    assert adv.tolist() == pytest.approx([1.5, -0.5, -0.5, -0.5, s, s, -s, -s], abs=1e-6)


def test_group_advantages_dr_grpo_only_centres():
    adv = grpo.group_advantages(torch.tensor([1.0, 0, 0, 0, 2, 2, 2, 2]), 4, scale_std=False)
    assert adv.tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0])


def test_group_advantages_rejects_ragged_groups():
    with pytest.raises(ValueError, match="groups of 4"):
        grpo.group_advantages(torch.zeros(6), 4)


def test_informative_groups_drops_zero_variance():
    keep = grpo.informative_groups(torch.tensor([1.0, 1, 0, 1, 0, 0]), 2)
    assert keep.tolist() == [False, False, True, True, False, False]


def test_overlong_penalty_is_linear_inside_the_buffer():
    pen = grpo.overlong_penalty(torch.tensor([5, 6, 8, 10, 12]), max_length=10, buffer=4)
    assert pen.tolist() == pytest.approx([0, 0, -0.5, -1, -1])


def test_kl_k3():
    kl = grpo.kl_k3(torch.tensor([LOG(0.5)]), torch.tensor([LOG(0.25)]))
    assert kl.item() == pytest.approx(0.5 + LOG(2) - 1)
    assert grpo.kl_k3(torch.tensor([0.3]), torch.tensor([0.3])).item() == 0


def test_aggregations():
    values = torch.tensor([[1.0, 2, 3], [4, 0, 0]])
    mask = torch.tensor([[1.0, 1, 1], [1, 0, 0]])
    assert grpo.aggregate(values, mask, "token_mean").item() == pytest.approx(2.5)
    assert grpo.aggregate(values, mask, "seq_mean").item() == pytest.approx(3.0)
    assert grpo.aggregate(values, mask, "seq_sum_norm", max_length=4).item() == pytest.approx(1.25)
    with pytest.raises(ValueError, match="unknown aggregation"):
        grpo.aggregate(values, mask, "mean")


def _loss(adv, logp=(0.5, 0.5), old=(0.25, 0.5), **kw):
    return grpo.policy_loss(torch.tensor([[LOG(p) for p in logp]]), torch.tensor([[LOG(p) for p in old]]),
                            torch.tensor([adv]), torch.ones(1, 2), **kw)


def test_clip_higher_caps_positive_advantage_at_one_plus_eps_high():
    loss, stats = _loss(1.0, eps_low=0.2, eps_high=0.28)  # ratios 2 and 1
    assert loss.item() == pytest.approx(-(1.28 + 1) / 2)
    assert stats.clip_fraction == pytest.approx(0.5)
    assert stats.ratio_mean == pytest.approx(1.5)


def test_negative_advantage_is_not_clipped_above_but_is_below():
    loss, stats = _loss(-1.0)  # ratio 2 with A < 0 keeps its gradient: loss 2
    assert loss.item() == pytest.approx((2 + 1) / 2)
    assert stats.clip_fraction == 0
    loss, stats = _loss(-1.0, logp=(0.25, 0.5), old=(0.5, 0.5), eps_low=0.2)  # ratio .5 -> clipped at .8
    assert loss.item() == pytest.approx((0.8 + 1) / 2)
    assert stats.clip_fraction == pytest.approx(0.5)


def test_kl_term_adds_beta_times_k3():
    logp = torch.tensor([[LOG(0.5)]])
    loss, stats = grpo.policy_loss(logp, logp, torch.tensor([0.0]), torch.ones(1, 1),
                                   ref_logp=torch.tensor([[LOG(0.25)]]), beta=0.1)
    assert loss.item() == pytest.approx(0.1 * (0.5 + LOG(2) - 1))
    assert stats.kl == pytest.approx(0.5 + LOG(2) - 1)
    with pytest.raises(ValueError, match="ref_logp"):
        grpo.policy_loss(logp, logp, torch.tensor([0.0]), torch.ones(1, 1), beta=0.1)


def test_gspo_uses_the_geometric_mean_ratio_for_every_token():
    logp = torch.tensor([[LOG(0.5), LOG(0.5)]], requires_grad=True)
    old = torch.tensor([[LOG(0.25), LOG(0.5)]])
    ratio = grpo.importance_ratio(logp, old, torch.ones(1, 2), "sequence")
    assert ratio.tolist()[0] == pytest.approx([math.sqrt(2)] * 2)
    loss, _ = grpo.policy_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 2), eps_low=1, eps_high=1,
                               ratio_level="sequence")
    loss.backward()
    assert logp.grad.tolist()[0] == pytest.approx([-math.sqrt(2) / 2] * 2)


def test_token_ratio_gradient():
    logp = torch.tensor([[LOG(0.5), LOG(0.5)]], requires_grad=True)
    loss, _ = grpo.policy_loss(logp, torch.tensor([[LOG(0.25), LOG(0.5)]]), torch.tensor([1.0]),
                               torch.ones(1, 2), eps_low=1, eps_high=1)
    loss.backward()
    assert logp.grad.tolist()[0] == pytest.approx([-1.0, -0.5])


def test_on_policy_gradient_is_minus_advantage_weighted_score():
    # ratio == 1 at the first of mu steps: d loss / d logp = -A / (own length * sequences)
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.1]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    loss, _ = grpo.policy_loss(logp, logp.detach(), torch.tensor([2.0, -1.0]), mask, aggregation="seq_mean")
    loss.backward()
    assert logp.grad.flatten().tolist() == pytest.approx([-0.5, -0.5, 0.5, 0.0])  # -A / len / B


def test_minibatches_cover_every_rollout_each_epoch():
    batches = list(grpo.minibatches(5, 2, 3, torch.Generator().manual_seed(0)))
    assert len(batches) == 9
    for epoch in range(3):
        seen = torch.cat(batches[epoch * 3:(epoch + 1) * 3]).sort().values
        assert seen.tolist() == [0, 1, 2, 3, 4]
