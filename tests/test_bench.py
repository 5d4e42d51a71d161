"""`python -m rcfd bench` on CPU with the tiny shape: every phase runs and the report is complete."""

import json
import math

import pandas as pd
import pytest
import torch

from rcfd.cli import main
from rcfd.train import floors as F
from rcfd.train.bench import peak_tflops
from rcfd.train.floors import model_flops
from rcfd.train.rl import PPOConfig, RLConfig
from rcfd.utils import InputError

THROUGHPUTS = ["gen_s", "gen_tok_s", "train_s", "train_tok_s", "step_s_ours", "step_s_trl", "speedup_vs_trl",
               "gemm_gflops_fp32", "gemm_gflops_bf16", "memory_gbs", "gen_floor_s", "gen_x_floor", "train_floor_s",
               "train_x_floor", "step_floor_s_ours", "step_x_floor_ours", "step_floor_s_trl", "step_x_floor_trl"]
# no GPU peak FLOP/s on CPU (no MFU); no compiled decoding either (CUDA only, as in training)
NOT_ON_CPU = ["gen_mfu", "train_mfu", "step_mfu_ours", "step_mfu_trl", "gen_x_floor_compiled",
              "gen_s_compiled", "gen_tok_s_compiled"]


@pytest.mark.parametrize("cpu_bf16", [False, True])
def test_bench_tiny_cpu(tmp_path, cpu_bf16):
    # the bf16 case also runs our step with its speed settings (shared prefill, merged sampling)
    params = {"prompts": 2, "prompt_tokens": 4, "new_tokens": 4, "warmup": 1, "steps": 2, "device": "cpu",
              "cpu_bf16": cpu_bf16, "shared_prefill": cpu_bf16, "merged_generation": cpu_bf16,
              "cpu_bf16_sampling": cpu_bf16, "repeats": 2}
    assert main(["bench", "--shape", "tiny", "--out", str(tmp_path), "--params", json.dumps(params)]) == 0
    row = json.loads((tmp_path / "cpu-tiny-movies.json").read_text())
    for key in ["device", "torch", "transformers", "trl", "shape", "prompts", "sequences", "prompt_tokens",
                "new_tokens", "params_matmul", "params_lora"]:
        assert key in row
    assert (row["shape"], row["sequences"], row["prompt_tokens"], row["new_tokens"]) == ("tiny", 4, 4, 4)
    assert all(math.isfinite(row[k]) and row[k] > 0 for k in THROUGHPUTS), row
    assert all(math.isnan(row[k]) for k in NOT_ON_CPU) and row["cpu_bf16"] is cpu_bf16
    assert row["shared_prefill"] is row["merged_generation"] is row["cpu_bf16_sampling"] is cpu_bf16
    # the speed-up over 2 alternating repeats: its median within its range; every time above its floor
    assert row["speedup_vs_trl_min"] <= row["speedup_vs_trl"] <= row["speedup_vs_trl_max"] and row["repeats"] == 2
    assert min(row["gen_x_floor"], row["train_x_floor"], row["step_x_floor_ours"], row["step_x_floor_trl"]) > 1
    csv = pd.read_csv(tmp_path / "cpu-tiny-movies.csv")
    assert set(csv.columns) == set(row)
    assert csv["gen_tok_s"].iloc[0] > 0 and csv["train_mfu"].isna().all()


def test_bench_rejects_unknown_shape(tmp_path):
    assert main(["bench", "--shape", "gpt5", "--out", str(tmp_path)]) == 2


def test_flops_and_peaks():
    # a frozen base: 2 N forward + 2 N backward per token; LoRA weights 6 per token
    assert model_flops(body=10, head=0, lora=0, tokens=1, completion_tokens=1, train=True) == 40
    assert model_flops(body=0, head=0, lora=1, tokens=1, completion_tokens=1, train=True) == 6
    assert model_flops(body=10, head=5, lora=0, tokens=3, completion_tokens=1, train=False) == 70
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989 and peak_tflops("NVIDIA H100 PCIe") == 756
    assert peak_tflops("NVIDIA A100-SXM4-80GB") == 312 and math.isnan(peak_tflops("Some GPU"))


def test_floors_by_hand():
    """The roofline floors of rcfd.train.floors against hand computation, on a made-up machine."""
    from transformers import LlamaConfig

    m = F.Machine(threads=1, gemm_flops={"float32": 100.0, "bfloat16": 400.0}, bandwidth=1000.0)
    assert F.training_floor(m, 800.0, "bfloat16") == 2.0
    # 10 weights, 1 prompt sampled twice, prompt 3, 2 new tokens, 4 cache bytes a position, in fp32 (4 B):
    # prefill 2*10*1*3 / 100 = 0.6 s; token 1 reads 40 + 2*3*4 = 64 B (0.064 s) vs 40 FLOPs (0.4 s);
    # token 2: 40 + 2*4*4 = 72 B (0.072 s) vs 0.4 s: compute-bound both
    assert F.sampling_floor(m, "float32", 10, 1, 2, 3, 2, 4) == pytest.approx(0.6 + 0.4 + 0.4)
    slow = F.Machine(threads=1, gemm_flops={"float32": 1e6, "bfloat16": 1e6}, bandwidth=10.0)
    assert F.sampling_floor(slow, "bfloat16", 10, 1, 2, 3, 2, 4) == pytest.approx(60 / 1e6 + (20 + 24) / 10 + (20 + 32) / 10)
    # SmolLM2-135M: 30 layers x 3 key-value heads x 64 dims x (K, V), 2 bytes in bf16
    smollm = LlamaConfig(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3)
    assert F.kv_bytes_per_token(smollm, "bfloat16") == 2 * 30 * 3 * 64 * 2
    # the measurement on this machine: positive rates, bf16 and fp32 both
    measured = F.measure_machine("cpu", shape=(64, 64, 64))
    assert measured.bandwidth > 0 and set(measured.gemm_flops) == {"float32", "bfloat16"}
    assert all(v > 0 for v in measured.gemm_flops.values())


# plain TRL sampling and fp32 training: each test turns on the setting it checks
PLAIN_RL = {"cpu_bf16": False, "merged_generation": False, "kl_logprobs": "recompute"}
PLAIN_SAMPLING = {"shared_prefill": False, "cpu_bf16": False, "attention": "", "inverse_cdf": False}


def tiny_rl_trainer(tmp_path, beta: float = 0.0, sampling: dict | None = None, **rl_settings):
    """A factory of one-step RCfD RLOO trainers on the tiny synthetic policy and RM (on CPU), plain
    (PLAIN_RL, PLAIN_SAMPLING) but for `sampling` (config `<task>.sampling`) and `rl_settings`."""
    from rcfd.rewards import ClassifierReward, RewardModelConfig, make_reward_func
    from rcfd.train import bench
    from rcfd.train import rl as RL
    from rcfd.train.checkpoints import Checkpoints

    cfg = bench.BenchConfig(shape="tiny", prompts=2, prompt_tokens=4, new_tokens=3, device="cpu")
    tok = bench.synthetic_tokenizer(512)
    rm_path = bench.save_reward_model(tok, "tiny", tmp_path / "rm")
    rm = ClassifierReward(str(rm_path), RewardModelConfig(max_length=16), "cpu")
    rows = [{"prompt": p, "demo_reward": 0.5} for p in ["w2 w3", "w4 w5 w6 w7 w8 w9", "w10", "w11 w12"]]
    rl = RL.RLConfig(steps=1, prompts_per_step=2, num_generations=2, max_new_tokens=3, device="cpu",
                     **{**PLAIN_RL, **rl_settings}, sampling={**PLAIN_SAMPLING, **(sampling or {})})

    def trainer(name):
        model, _, _ = bench.build_policy(cfg, "cpu")
        return RL.rl_trainer(model, tok, rows, make_reward_func("rcfd", rm), beta, rl, Checkpoints(tmp_path / name))

    return trainer


def test_cpu_bf16_trains_under_bf16_autocast(tmp_path):
    """`rl.cpu_bf16` (the default) runs TRL's forward and backward under bf16 autocast on CPU and
    still trains; off, fp32; PPO, which has its own loop, refuses it."""
    assert tiny_rl_trainer(tmp_path)("fp32").accelerator.mixed_precision == "no"
    assert RLConfig().cpu_bf16 and not RLConfig().gradient_checkpointing
    t = tiny_rl_trainer(tmp_path, cpu_bf16=True)("bf16")
    assert t.accelerator.mixed_precision == "bf16"
    before = {n: p.detach().clone() for n, p in t.model.named_parameters() if p.requires_grad}
    t.train()
    assert t.state.global_step == 1
    after = dict(t.model.named_parameters())
    assert all(torch.isfinite(after[n]).all() for n in before)
    assert any(not torch.equal(before[n], after[n].detach()) for n in before)  # the LoRA weights moved
    with pytest.raises(InputError, match="rl.cpu_bf16"):
        PPOConfig(cpu_bf16=True)


def test_cpu_bf16_sampling_samples_merged_under_autocast(tmp_path):
    """`sampling.cpu_bf16`: TRL's sampling runs under bf16 autocast (with merged_generation, on
    the merged weights), every requires_grad flag is restored after it (only the LoRA weights
    train), and the step trains; off, sampling is fp32. PPO refuses it."""
    from peft.tuners.lora import LoraLayer

    for on in (False, True):
        t = tiny_rl_trainer(tmp_path, sampling={"cpu_bf16": on}, merged_generation=True)(f"bf16_sampling_{on}")
        flags = {n: p.requires_grad for n, p in t.model.named_parameters()}
        layers = [m for m in t.model.modules() if isinstance(m, LoraLayer)]
        seen, original_generate_single = [], t._generate_single_turn

        def spy(*args, seen=seen, layers=layers, generate=original_generate_single, **kwargs):
            seen.append((torch.is_autocast_enabled("cpu"), all(layer.merged for layer in layers)))
            return generate(*args, **kwargs)

        t._generate_single_turn = spy
        t.train()
        assert seen and all(s == (on, True) for s in seen)
        assert {n: p.requires_grad for n, p in t.model.named_parameters()} == flags
        assert t.state.global_step == 1
    with pytest.raises(InputError, match="sampling.cpu_bf16"):
        PPOConfig(sampling={**PLAIN_SAMPLING, "cpu_bf16": True})


def test_compiled_generation_settings(tmp_path, monkeypatch):
    """On CUDA the RL trainer decodes with a static cache sized once for the longest prompt and with
    transformers' compiled forward (TRL turns it off); elsewhere it keeps TRL's settings. Checked on
    CPU by pretending to be on CUDA: the settings, and that a step runs with the static cache."""
    from rcfd.train import rl

    trainer = tiny_rl_trainer(tmp_path)
    default = trainer("default").generation_config
    assert default.disable_compile and default.cache_implementation is None
    monkeypatch.setattr(rl, "compiled_generation", lambda cfg, device: True)
    t = trainer("compiled")
    assert not t.generation_config.disable_compile
    assert (t.generation_config.cache_implementation, t.generation_config.max_cache_len) == ("static", 6 + 3)
    t.train()
    assert t.state.global_step == 1


def test_rl_warns_once_when_every_advantage_is_zero(tmp_path, caplog):
    """The RL trainer carries the stall warning; it fires once, after `patience` logged steps in a row
    where every prompt's samples got the same reward (TRL's `frac_reward_zero_std` = 1), not before
    and not after a step that still had variance."""
    from transformers import TrainerState

    from rcfd.train.rl import StallWarning

    trainer = tiny_rl_trainer(tmp_path)("stall")
    assert any(isinstance(c, StallWarning) for c in trainer.callback_handler.callbacks)
    warn, state = StallWarning(patience=3), TrainerState()
    with caplog.at_level("WARNING", logger="rcfd"):
        for step, frac in enumerate([1.0, 1.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0], start=1):
            state.global_step = step
            warn.on_log(None, state, None, logs={"frac_reward_zero_std": frac, "reward": 0.0})
    stalls = [r.getMessage() for r in caplog.records if "RL stalled" in r.getMessage()]
    assert stalls == [stalls[0]] and "step 6" in stalls[0]


def test_merged_generation_samples_merged_and_restores_the_base_weights(tmp_path):
    """`rl.merged_generation`: during sampling every LoRA layer is merged (and the merged model gives
    the adapter's outputs), after it the frozen base weights are bit for bit what they were (merging
    and unmerging alone would round them), and training still moves the LoRA weights. PPO refuses it."""
    from peft.tuners.lora import LoraLayer

    from rcfd.train.rl import PPOConfig

    t = tiny_rl_trainer(tmp_path, merged_generation=True)("merged")
    layers = [m for m in t.model.modules() if isinstance(m, LoraLayer)]
    for layer in layers:  # a non-zero adapter, so that merging changes the weights
        torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.5)
    base = {id(layer): layer.get_base_layer().weight.detach().clone() for layer in layers}
    lora = {n: p.detach().clone() for n, p in t.model.named_parameters() if "lora_" in n}
    seen, probe = [], torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        t.model.eval()
        unmerged_logits = t.model(probe).logits
        t.model.train()

    original_generate_single = t._generate_single_turn

    def spy(*args, **kwargs):
        with torch.no_grad():
            t.model.eval()
            seen.append((all(layer.merged for layer in layers), t.model(probe).logits))
            t.model.train()
        return original_generate_single(*args, **kwargs)

    t._generate_single_turn = spy
    t.train()
    assert seen and all(merged for merged, _ in seen)
    torch.testing.assert_close(seen[0][1], unmerged_logits, atol=1e-4, rtol=1e-4)  # the same policy, merged
    assert not any(layer.merged for layer in layers)
    assert all(torch.equal(layer.get_base_layer().weight, base[id(layer)]) for layer in layers)
    assert any(not torch.equal(p, lora[n]) for n, p in t.model.named_parameters() if "lora_" in n)
    with pytest.raises(InputError, match="rl.merged_generation"):
        PPOConfig(merged_generation=True)


def test_cpu_autocast_decoding_samples_as_autocast_with_weights_cast_once():
    """utils.cpu_autocast_decoding: under no_grad (as the samplers run) the sampled tokens and scores
    are those of plain bf16 autocast (the same bf16 weights), each weight is cast to bf16 once per
    block instead of once per decoded token, and every requires_grad flag is what it was; disabled,
    it is fp32."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from rcfd.sampling import cpu_autocast_decoding
    from rcfd.train import bench

    model, _, _ = bench.build_policy(bench.BenchConfig(shape="tiny", device="cpu"), "cpu")
    model.eval().requires_grad_(False)
    model.model.norm.weight.requires_grad_(True)  # a trainable weight keeps its flag
    flags = {n: p.requires_grad for n, p in model.named_parameters()}

    class WeightCasts(TorchDispatchMode):
        """Collects the distinct bf16 weights the matmuls receive, by storage (autocast's casts;
        held, so that no storage is freed and reused)."""
        seen = {}
        weight_arg = {torch.ops.aten.linear.default: 1, torch.ops.aten.mm.default: 1, torch.ops.aten.addmm.default: 2}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            pos = self.weight_arg.get(func)
            if pos is not None and args[pos].dtype == torch.bfloat16:
                WeightCasts.seen[args[pos].untyped_storage().data_ptr()] = args[pos]
            return func(*args, **(kwargs or {}))

    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    kw = dict(do_sample=True, top_k=0, pad_token_id=0, eos_token_id=None, output_scores=True,
              return_dict_in_generate=True)
    runs, casts = {}, {}
    for name, block in (("autocast", lambda: torch.autocast("cpu", dtype=torch.bfloat16)),
                        ("decoding", lambda: cpu_autocast_decoding(model, True, "cpu"))):
        for tokens in (1, 6):
            torch.manual_seed(3)
            WeightCasts.seen = {}
            with torch.no_grad(), block(), WeightCasts():
                runs[name, tokens] = model.generate(input_ids=ids, max_new_tokens=tokens, **kw)
            casts[name, tokens] = len(WeightCasts.seen)
    assert torch.equal(runs["autocast", 6].sequences, runs["decoding", 6].sequences)
    for a, b in zip(runs["autocast", 6].scores, runs["decoding", 6].scores):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert casts["autocast", 6] == 6 * casts["autocast", 1] > 0  # every token casts every weight again
    assert casts["decoding", 6] == casts["decoding", 1] == casts["autocast", 1]  # once per block
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    with cpu_autocast_decoding(model, False, "cpu"):
        assert not torch.is_autocast_enabled("cpu")


def test_prefilled_generation_equals_generate_own_prefill():
    """sampling.prefilled: prompts repeated for their samples (one left-padded) are prefilled once,
    on the distinct rows, and `generate` then gives the same scores (up to rounding) and the same
    sampled tokens under one seed as with its own prefill of every row; with no repeated row the
    inputs pass through untouched."""
    from rcfd.sampling import prefilled
    from rcfd.train import bench

    model, _, _ = bench.build_policy(bench.BenchConfig(shape="tiny", device="cpu"), "cpu")
    tok = bench.synthetic_tokenizer(512)
    enc = tok(["w5 w6 w7 w8 w9", "w5 w6 w7 w8 w9", "w3 w4", "w3 w4", "w3 w4"], return_tensors="pt", padding=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert (mask == 0).any()  # left padding is part of what is shared
    prefill_rows = []
    hook = model.register_forward_pre_hook(lambda m, args, kw: prefill_rows.append(kw["input_ids"].shape), with_kwargs=True)
    inputs = prefilled(model, ids, mask)
    hook.remove()
    assert prefill_rows == [torch.Size([2, ids.shape[1] - 1])]
    assert inputs["past_key_values"].get_seq_length() == ids.shape[1] - 1
    kw = dict(do_sample=True, top_k=0, max_new_tokens=6, pad_token_id=0, eos_token_id=None,
              output_scores=True, return_dict_in_generate=True)
    runs = []
    for given in (dict(input_ids=ids, attention_mask=mask), inputs):
        torch.manual_seed(3)
        runs.append(model.generate(**given, **kw))
    plain, shared = runs
    assert torch.equal(plain.sequences, shared.sequences)
    for a, b in zip(plain.scores, shared.scores):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    distinct = tok(["w5 w6", "w3 w4"], return_tensors="pt", padding=True)
    assert set(prefilled(model, distinct["input_ids"], distinct["attention_mask"])) == {"input_ids", "attention_mask"}


def test_shared_prefill_in_rloo_and_generation(tmp_path, monkeypatch):
    """`sampling.shared_prefill` routes TRL's sampling through sampling.prefilled (its batch repeats
    each prompt num_generations times) and the step trains."""
    from rcfd import sampling as S

    calls = []

    def spy(model, input_ids, attention_mask=None):
        calls.append(input_ids.shape[0])
        return real(model, input_ids, attention_mask)

    real = S.prefilled
    monkeypatch.setattr(S, "prefilled", spy)
    t = tiny_rl_trainer(tmp_path, sampling={"shared_prefill": True})("shared")
    t.train()
    assert calls == [4] and t.state.global_step == 1  # 2 prompts x 2 generations


def test_shared_prefix_loss_gives_trl_log_probabilities_and_gradient(tmp_path):
    """trl_patches.SharedPrefixLoss (sampling.shared_prefill in the loss): on a batch of repeated, left-padded
    prompts with right-padded completions, the log-probabilities, entropies and the LoRA gradient
    equal TRL's own forward (fp32, up to rounding), and the prompt runs once per distinct prompt."""
    from peft.tuners.lora import LoraLayer

    from rcfd.models import LoraSettings
    from rcfd.train.trl_patches import SharedPrefixLoss

    # TRL's forward called here directly (no LossLogprobs); LoRA dropout 0 so that two passes can agree
    t = tiny_rl_trainer(tmp_path, old_logprobs="recompute", lora=LoraSettings(dropout=0.0))("plain")
    for layer in (m for m in t.model.modules() if isinstance(m, LoraLayer)):  # a non-zero adapter
        torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.5)
    tok = t.processing_class
    prompts = tok(["w5 w6 w7 w8", "w5 w6 w7 w8", "w3 w4", "w3 w4"], return_tensors="pt", padding=True)
    completions = torch.tensor([[9, 10, 11], [12, 13, 0], [14, 0, 0], [15, 16, 17]])
    input_ids = torch.cat([prompts["input_ids"], completions], 1)
    mask = torch.cat([prompts["attention_mask"], (completions != 0).long()], 1)
    assert (prompts["attention_mask"] == 0).any()
    t.model.train()
    lora = [p for n, p in t.model.named_parameters() if "lora_" in n]

    def run():
        t.model.zero_grad()
        logps, entropy, _ = t._get_per_token_logps_and_entropies(t.model, input_ids, mask, 3, compute_entropy=True)
        (logps * (completions != 0)).sum().backward()
        return logps.detach(), entropy.detach(), [p.grad.clone() for p in lora]

    plain = run()
    SharedPrefixLoss(t)
    rows = []
    hook = t.model.register_forward_pre_hook(lambda m, args, kw: rows.append(kw["input_ids"].shape), with_kwargs=True)
    shared = run()
    hook.remove()
    assert rows == [torch.Size([2, input_ids.size(1) - 4]), torch.Size([4, 4])]  # distinct prefixes, then every row
    torch.testing.assert_close(shared[0], plain[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shared[1], plain[1], atol=1e-5, rtol=1e-5)
    for a, b in zip(shared[2], plain[2]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.fixture
def eager_calls(monkeypatch) -> list:
    """One entry per call of transformers' eager attention (Llama) while the test runs."""
    from transformers.models.llama import modeling_llama

    calls, real = [], modeling_llama.eager_attention_forward

    def eager(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(modeling_llama, "eager_attention_forward", eager)
    return calls


def test_sampling_attention_is_eager_while_sampling_only(tmp_path, eager_calls):
    """`sampling.attention`: sampling runs transformers' eager attention (sampling.sampling_attention),
    the model's own implementation (sdpa) is back for the loss and after an error; "" keeps the
    model's; PPO refuses it, and an unknown implementation is refused by name."""
    from rcfd.sampling import sampling_attention

    t = tiny_rl_trainer(tmp_path, sampling={"attention": "eager"})("eager")
    base = t.model.get_base_model()
    assert base.config._attn_implementation == "sdpa"
    seen, original = [], t._generate_single_turn

    def spy(*args, **kwargs):
        seen.append(base.config._attn_implementation)
        return original(*args, **kwargs)

    t._generate_single_turn = spy
    t.train()
    assert seen == ["eager"] and eager_calls and t.state.global_step == 1
    assert base.config._attn_implementation == "sdpa"  # the loss's forward ran after sampling, with sdpa
    with pytest.raises(RuntimeError), sampling_attention(base, "eager"):
        raise RuntimeError
    assert base.config._attn_implementation == "sdpa"
    with sampling_attention(base, ""):
        assert base.config._attn_implementation == "sdpa"
    with pytest.raises(InputError, match="sampling.attention"):
        PPOConfig(sampling={**PLAIN_SAMPLING, "attention": "eager"})
    with pytest.raises(InputError, match="sampling.attention"):
        RLConfig(sampling={"attention": "flash"})


def test_generate_samples_with_eager_attention_only_when_asked(tiny_models, eager_calls):
    from rcfd.evaluate import generate as G

    rows = [{"id": i, "prompt": p} for i, p in enumerate(["This quiet film", "Her new cast"])]
    outs = {}
    for attention in ("", "eager"):
        eager_calls.clear()
        cfg = G.GenerateConfig(max_new_tokens=4, device="cpu", sampling={"attention": attention})
        outs[attention] = G.generate(tiny_models["llama"], None, rows, cfg)
        assert bool(eager_calls) is (attention == "eager")
    assert [len(o) for o in outs.values()] == [2, 2]


def test_inverse_cdf_multinomial_draws_the_distribution():
    """utils.inverse_cdf_multinomial: one draw per row with each row's probabilities (weights need
    not sum to 1), a weight of 0 never drawn (also at the row's ends, also when u is at the top of
    its range), the same draws for one seed; other shapes go to torch.multinomial; bad rows fail."""
    from rcfd.sampling import inverse_cdf_multinomial

    weights = torch.tensor([[0.0, 0.1, 0.0, 0.6, 0.3, 0.0], [0.0, 0.0, 2.0, 0.0, 2.0, 0.0]])
    n = 40_000
    torch.manual_seed(0)
    draws = inverse_cdf_multinomial(weights.repeat(n, 1), 1)
    assert draws.shape == (2 * n, 1) and draws.dtype == torch.int64
    for row, w in enumerate(weights):
        freq = torch.bincount(draws[row::2, 0], minlength=6).double() / n
        p = (w / w.sum()).double()
        assert (freq[p == 0] == 0).all()
        assert (freq - p).abs().max() < 4 * math.sqrt(0.25 / n)  # 4 standard errors at most
    torch.manual_seed(0)
    assert torch.equal(draws, inverse_cdf_multinomial(weights.repeat(n, 1), 1))
    # u at the top of its range lands on the last positive weight, not on the zeros after it
    ones = torch.full_like(weights[:, :1], 1 - 2 ** -24)
    real_rand = torch.rand
    try:
        torch.rand = lambda *a, **k: ones
        assert inverse_cdf_multinomial(weights, 1)[:, 0].tolist() == [4, 4]
        torch.rand = lambda *a, **k: torch.zeros_like(ones)
        assert inverse_cdf_multinomial(weights, 1)[:, 0].tolist() == [1, 2]
    finally:
        torch.rand = real_rand
    assert inverse_cdf_multinomial(weights, 2).shape == (2, 2)  # torch.multinomial's
    for bad in (torch.tensor([[0.5, float("nan")]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[-0.1, 1.0]])):
        with pytest.raises(RuntimeError, match="probability rows"):
            inverse_cdf_multinomial(bad, 1)


def test_inverse_cdf_sampling_in_generate_and_rloo(tiny_models, tmp_path):
    """`sampling.inverse_cdf`, in generation and RLOO: transformers' token draws go through
    sampling.inverse_cdf_multinomial inside the sampling block only (torch.multinomial is itself again
    after it, also after an error); a generation is deterministic for one seed; an RLOO step trains;
    PPO refuses the RL key; off, torch.multinomial samples."""
    from rcfd import sampling as S
    from rcfd.evaluate import generate as G
    from rcfd.sampling import token_draws

    real, icdf = torch.multinomial, S.inverse_cdf_multinomial
    calls = []

    def counting(*args, **kwargs):
        calls.append(args[0].shape[0])
        return icdf(*args, **kwargs)

    rows = [{"id": i, "prompt": p} for i, p in enumerate(["This quiet film", "Her new cast"])]
    outs = {}
    for inverse_cdf in (False, True, True):
        cfg = G.GenerateConfig(max_new_tokens=4, samples_per_prompt=2, device="cpu",
                               sampling={**PLAIN_SAMPLING, "inverse_cdf": inverse_cdf})
        calls.clear()
        S.inverse_cdf_multinomial = counting
        try:
            outs.setdefault(inverse_cdf, []).append(G.generate(tiny_models["llama"], None, rows, cfg))
        finally:
            S.inverse_cdf_multinomial = icdf
        assert bool(calls) is inverse_cdf and torch.multinomial is real
    assert outs[True][0] == outs[True][1] and len(outs[False][0]) == 4
    with pytest.raises(RuntimeError), token_draws("cpu", inverse_cdf=True):
        assert torch.multinomial is not real
        raise RuntimeError
    assert torch.multinomial is real
    with token_draws("cuda", inverse_cdf=True):
        assert torch.multinomial is real
    t = tiny_rl_trainer(tmp_path, sampling={"inverse_cdf": True})("icdf")
    seen = []
    original = t._generate_single_turn

    def spy(*args, **kwargs):
        seen.append(torch.multinomial is not real)
        return original(*args, **kwargs)

    t._generate_single_turn = spy
    S.inverse_cdf_multinomial = counting
    calls.clear()
    try:
        t.train()
    finally:
        S.inverse_cdf_multinomial = icdf
    assert seen == [True] and calls and t.state.global_step == 1 and torch.multinomial is real
    with pytest.raises(InputError, match="sampling.inverse_cdf"):
        PPOConfig(sampling={**PLAIN_SAMPLING, "inverse_cdf": True})


def test_grouped_attention_equals_eager_without_copying_key_value_heads(eager_calls):
    """utils.grouped_attention (`sampling_attention: grouped`): on a grouped-query model (4 query
    heads, 2 key/value heads) the scores and sampled tokens are eager attention's (fp32 up to
    rounding; the same tokens under one seed), transformers' eager path (and its repeat_kv) is not
    called, and the model's own implementation is back after the block."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from rcfd.sampling import sampling_attention

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, intermediate_size=128, vocab_size=512)).eval()
    assert model.config._attn_implementation == "sdpa"
    ids = torch.tensor([[0, 0, 5, 6, 7], [9, 10, 11, 12, 13]])
    kw = dict(attention_mask=(ids != 0).long(), do_sample=True, top_k=0, max_new_tokens=6, pad_token_id=0,
              eos_token_id=None, output_scores=True, return_dict_in_generate=True)
    runs = {}
    for impl in ("eager", "grouped"):
        eager_calls.clear()
        torch.manual_seed(3)
        with torch.no_grad(), sampling_attention(model, impl):
            runs[impl] = model.generate(ids, **kw)
        assert bool(eager_calls) is (impl == "eager")
        assert model.config._attn_implementation == "sdpa"
    assert torch.equal(runs["eager"].sequences, runs["grouped"].sequences)
    for a, b in zip(runs["eager"].scores, runs["grouped"].scores):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert RLConfig().sampling.attention == "grouped"  # the default


def test_kl_from_the_sampled_tokens_log_probabilities(tmp_path, monkeypatch):
    """`rl.kl_logprobs: sampling` (beta > 0): the KL penalty reads each sampled token's
    log-probability recorded at its draw (utils.token_draws) instead of TRL's no-grad forward of
    the sampling policy, so one no-grad forward (the reference's) is left; the KL it logs is the
    recomputed one's (fp32, no LoRA dropout, the same samples under one seed), the step trains;
    the key's preconditions are refused by name."""
    from peft.tuners.lora import LoraLayer
    from trl import RLOOTrainer

    from rcfd.models import LoraSettings

    passes = []
    real = RLOOTrainer._get_per_token_logps_and_entropies

    def counted(self, *args, **kwargs):
        if not torch.is_grad_enabled():
            passes.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RLOOTrainer, "_get_per_token_logps_and_entropies", counted)
    runs = {}
    for source in ("recompute", "sampling"):
        t = tiny_rl_trainer(tmp_path, beta=0.1, kl_logprobs=source, lora=LoraSettings(dropout=0.0))(source)
        torch.manual_seed(1)
        for layer in (m for m in t.model.modules() if isinstance(m, LoraLayer)):  # a policy away from the reference
            torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.5)
        passes.clear()
        torch.manual_seed(2)
        t.train()
        runs[source] = (len(passes), t.state.log_history[0])
        assert t.state.global_step == 1
    (n_recompute, recomputed), (n_sampled, sampled) = runs["recompute"], runs["sampling"]
    assert (n_recompute, n_sampled) == (2, 1)
    assert abs(recomputed["kl"]) > 1e-3
    assert sampled["kl"] == pytest.approx(recomputed["kl"], rel=1e-4, abs=1e-6)
    for bad in (dict(top_p=0.9), dict(old_logprobs="recompute"), dict(num_iterations=2)):
        with pytest.raises(InputError, match="rl.kl_logprobs"):  # at beta > 0 only
            tiny_rl_trainer(tmp_path, beta=0.1, kl_logprobs="sampling", **bad)("bad")
        tiny_rl_trainer(tmp_path, beta=0.0, kl_logprobs="sampling", **bad)("beta0")  # the KL is not used
    with pytest.raises(InputError, match="rl.kl_logprobs"):
        PPOConfig(kl_logprobs="sampling")
    assert RLConfig().kl_logprobs == "sampling" and PPOConfig().kl_logprobs == "recompute"
    with pytest.raises(InputError, match="rl.kl_logprobs"):
        RLConfig(kl_logprobs="draws")
