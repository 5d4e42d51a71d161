"""PPO (rcfd/train/ppo.py): its mechanics against hand computations, and a tiny run that learns."""

import math

import pytest
import torch

from rcfd.rewards import make_reward_func, whiten
from rcfd.train import bench
from rcfd.train.checkpoints import Checkpoints
from rcfd.train.ppo import PPOTrainer, gae, per_token_rewards, ppo_losses
from rcfd.train.rl import PPOConfig


def test_gae_matches_a_hand_computation():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
    values = torch.tensor([[0.5, 0.4, 0.3], [1.0, 0.5, 9.0]])  # 9.0 sits after the second row's end
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.95)
    # row 0: deltas 0.7 (last), -0.1, -0.1; A2 = 0.7, A1 = -0.1 + 0.95 * 0.7, A0 = -0.1 + 0.95 * A1
    a1 = -0.1 + 0.95 * 0.7
    expected0 = [-0.1 + 0.95 * a1, a1, 0.7]
    # row 1 ends at t = 1 (the value after it is 0): A1 = 2 - 0.5 = 1.5, A0 = (0 + 0.5 - 1) + 0.95 * 1.5
    expected1 = [-0.5 + 0.95 * 1.5, 1.5, 0.0]
    assert torch.allclose(adv, torch.tensor([expected0, expected1]))
    assert torch.allclose(ret, adv + values * mask)
    # gamma < 1 discounts the next value and the running advantage
    adv_g, _ = gae(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 0.0]]), torch.ones(1, 2), gamma=0.5, lam=1.0)
    assert torch.allclose(adv_g, torch.tensor([[0.5, 1.0]]))


def test_clipped_losses_on_a_constructed_batch():
    # token 0: A = +1, ratio 1.5 -> clipped at 1.3; token 1: A = -1, ratio 0.5 -> clipped at 0.7
    logp = torch.log(torch.tensor([[1.5, 0.5]]))
    old = torch.zeros(1, 2)
    adv = torch.tensor([[1.0, -1.0]])
    mask = torch.ones(1, 2)
    values, old_values, returns = torch.tensor([[2.0, 1.0]]), torch.tensor([[1.0, 1.0]]), torch.zeros(1, 2)
    out = ppo_losses(logp, old, values, old_values, adv, returns, mask, clip=0.3, value_clip=0.2)
    assert out["policy_loss"].item() == pytest.approx((-1.3 + 0.7) / 2)
    assert out["clipfrac"].item() == 1.0
    # value 2 moved 1 from the old 1 (clipped to 1.2): max((2-0)^2, (1.2-0)^2) = 4; token 1: 1
    assert out["value_loss"].item() == pytest.approx(0.5 * (4 + 1) / 2)
    # inside the clip range the surrogate is -A * ratio, with gradient -A
    logp = torch.zeros(1, 2, requires_grad=True)
    ppo_losses(logp, old, values, old_values, adv, returns, mask, 0.3, 0.2)["policy_loss"].backward()
    assert torch.allclose(logp.grad, torch.tensor([[-0.5, 0.5]]))


def test_kl_penalty_sign_and_the_score_at_the_last_token():
    logp = torch.tensor([[-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-2.0, -1.0, -3.0]])  # the policy likes tokens 0 and 2 more than the reference
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # the completion ends at token 1
    rewards, kl = per_token_rewards(torch.tensor([5.0]), logp, ref, mask, beta=0.1)
    assert torch.allclose(kl, torch.tensor([[1.0, 0.0, 0.0]]))  # positive where pi > pi_ref; masked after the end
    assert torch.allclose(rewards, torch.tensor([[-0.1, 5.0, 0.0]]))  # KL lowers the reward; score at the last token
    no_kl, _ = per_token_rewards(torch.tensor([5.0]), logp, None, mask, beta=0.0)
    assert torch.allclose(no_kl, torch.tensor([[0.0, 5.0, 0.0]]))
    w = whiten(torch.tensor([[1.0, 2.0, 3.0]]), mask)
    assert w[0, 2] == 0 and w[0, 0] < 0 < w[0, 1]
    # masked whitening is the unmasked one on the kept elements (one definition for RCfD and PPO)
    x = torch.tensor([[0.5, -1.0, 2.0, 7.0], [3.0, 1.0, 9.0, 9.0]])
    keep = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    assert torch.allclose(whiten(x, keep)[keep.bool()], whiten(x[keep.bool()]), atol=1e-6)
    assert (whiten(x, keep)[~keep.bool()] == 0).all()


class LowIdReward:
    """A trivially learnable reward: the fraction of a completion's words "w<id>" with id < 6 (4 of
    the 14 words a 16-token vocabulary samples)."""

    def score(self, prompts, completions):
        return [sum(int(w[1:]) < 6 for w in c.split()) / max(1, len(c.split())) for c in completions]


def test_ppo_learns_a_trivial_reward(tmp_path):
    from transformers import AutoModelForCausalLM, LlamaConfig

    from rcfd.utils import seed_everything

    seed_everything(0)
    tok = bench.synthetic_tokenizer(16)
    model = AutoModelForCausalLM.from_config(LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                                         intermediate_size=128, vocab_size=16, pad_token_id=0))
    rows = [{"prompt": p} for p in bench.random_prompts(16, 3, 16, seed=1)]
    cfg = PPOConfig(steps=40, prompts_per_step=4, num_generations=2, max_new_tokens=6,
                   learning_rate=1e-2, num_iterations=2, gradient_checkpointing=False, device="cpu", seed=0)
    ckpt = Checkpoints(tmp_path / "ckpt")
    ckpt.claim()
    history = PPOTrainer(model, tok, rows, make_reward_func("reward", LowIdReward()), 0.0, cfg, ckpt).train()
    rewards = [h["reward"] for h in history if "reward" in h]
    assert len(rewards) == 40 and all(math.isfinite(r) for r in rewards)
    first, last = sum(rewards[:4]) / 4, sum(rewards[-20:]) / 20
    assert last > 4 / 14 + 0.07 and last > first + 0.05, rewards  # chance: 4/14 (0.29); it plateaus near 0.4


def test_ppo_samples_through_the_shared_prefill(tmp_path, monkeypatch):
    """`sampling.shared_prefill` in PPO's own loop: each rollout's sampling goes through sampling.prefilled
    with every prompt repeated num_generations times, and training runs."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from rcfd.train import ppo

    calls = []
    real = ppo.prefilled
    monkeypatch.setattr(ppo, "prefilled", lambda model, ids, mask=None: calls.append(ids.shape[0]) or real(model, ids, mask))
    tok = bench.synthetic_tokenizer(16)
    model = AutoModelForCausalLM.from_config(LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                                         intermediate_size=128, vocab_size=16, pad_token_id=0))
    rows = [{"prompt": p} for p in bench.random_prompts(8, 3, 16, seed=1)]
    cfg = PPOConfig(steps=2, prompts_per_step=2, num_generations=2, max_new_tokens=4, device="cpu", seed=0)
    assert cfg.sampling.shared_prefill  # the default, as RLOO's
    ckpt = Checkpoints(tmp_path / "ckpt")
    ckpt.claim()
    history = PPOTrainer(model, tok, rows, make_reward_func("reward", LowIdReward()), 0.0, cfg, ckpt).train()
    assert calls == [4, 4] and sum("reward" in h for h in history) == 2


def test_rl_config_serves_both_optimisers_from_one_task_config(caplog):
    """rl_config: one task section (with its `sampling`) gives RLOO every setting, and PPO its own
    (`rl.ppo` on top) without the RLOO-only ones, which the log names; PPO keeps the shared prefill."""
    from rcfd.train.rl import RLConfig, rl_config

    section = {"steps": 3, "cpu_bf16": True, "kl_logprobs": "sampling", "ppo": {"gae_lambda": 0.9},
               "sampling": {"shared_prefill": True, "cpu_bf16": True, "attention": "grouped", "inverse_cdf": True}}
    rloo = rl_config(section, "rloo")
    assert type(rloo) is RLConfig and rloo.cpu_bf16 and rloo.sampling.attention == "grouped"
    with caplog.at_level("INFO", logger="rcfd"):
        ppo = rl_config(section, "ppo")
    assert isinstance(ppo, PPOConfig) and (ppo.steps, ppo.gae_lambda) == (3, 0.9)
    assert (ppo.cpu_bf16, ppo.merged_generation, ppo.kl_logprobs) == (False, False, "recompute")
    assert (ppo.sampling.shared_prefill, ppo.sampling.cpu_bf16, ppo.sampling.attention, ppo.sampling.inverse_cdf) == (
        True, False, "", False)
    said = " ".join(r.getMessage() for r in caplog.records)
    assert all(k in said for k in ("cpu_bf16", "kl_logprobs", "sampling.attention", "sampling.inverse_cdf"))
