"""Throughput of the RL step on one GPU: `python -m rcfd bench --shape llama2-7b`.

A causal LM of a real architecture with random weights (bf16 on GPU, fp32 on CPU), LoRA on all
linear layers (`LoraSettings`: r 32, lora_alpha 64), at one use case's paper batch and lengths:

  (a) generation: `prompts x generations` sequences of `new_tokens` sampled with TRL's default
      settings (dynamic KV cache, eager) and with ours (static cache, compiled CUDA-graphed decoding:
      rl.RLConfig.compile_generation), against the bandwidth floor (every weight read per token);
  (b) the RL step's training phase: forward + backward of the policy-gradient loss on prompt +
      completion (TRL's fused log-prob head and gradient checkpointing, as in its RLOO step), then
      an AdamW step on the LoRA weights;
  (c) whole RLOO steps (generate, score, train) through our `train_rl` code path (`rl_trainer`:
      the RCfD reward of a random DistilBERT-shaped reward model, the paper's RM shape) and through
      a plain TRL `RLOOTrainer` with a constant reward, one after the other in the same run.

Each measurement runs `warmup` untimed iterations, then `steps` timed ones between
torch.cuda.synchronize() calls; the median is reported. (c) runs `repeats` times, the two paths
alternating, and reports the median speed-up with its range over the repeats.

Every phase is also reported against its floor on this machine (rcfd.train.floors: the GEMM
throughput and memory bandwidth measured at the run's thread count): `*_floor_s` and the measured
time over it, `*_x_floor`. The tokenizer is synthetic (words "w<id>",
one token each) and its EOS id lies outside the model's vocabulary, so every sequence runs to
`new_tokens` and the work per step is fixed.

Model FLOPs count the matmuls with N = N_body + N_head the frozen base's linear weights (the LM
head, N_head, only scores completion positions: TRL's fused head, generate's last-position logits)
and N_lora the adapters' weights:
  forward   2 (N_body + N_lora) per token + 2 N_head per completion token
  backward  2 N_body per token + 2 N_head per completion token (activation gradients only: the
            base is frozen, it has no weight gradients) + 4 N_lora per token (both gradients)
so training costs about 4 N per token (not 6 N) and generation 2 N. Attention scores (a few % at
these lengths) are left out, as in the usual 6 N count, and so is the recomputation of gradient
checkpointing (model FLOPs, not hardware FLOPs). MFU = model FLOPs / seconds / the GPU's dense
bf16 peak (PEAK_BF16_TFLOPS); NaN on a device not in that table (and on CPU).
"""

from __future__ import annotations

import gc
import math
import re
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import TrainerCallback

from ..rewards import ClassifierReward, RewardModelConfig, make_reward_func
from ..sampling import SamplingConfig
from ..utils import InputError, log, pick_device, pick_dtype, seed_everything, write_json
from . import floors as F
from .checkpoints import Checkpoints
from .common import LoraTraining
from .floors import model_flops
from .rl import RLConfig, rl_trainer

SHAPES = {  # LlamaConfig arguments
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, vocab_size=512),
    "smollm2-135m": dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                         intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True),
    "llama2-7b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, intermediate_size=11008,
                      vocab_size=32000, max_position_embeddings=4096),
}
RM_SHAPES = {"tiny": dict(dim=32, n_layers=1, n_heads=2, hidden_dim=64)}  # otherwise DistilBERT-base (the paper's RM)
USE_CASES = {  # prompts per step and lengths (PAPER.md)
    "movies": dict(prompts=25, prompt_tokens=10, new_tokens=160),
    "wiki": dict(prompts=25, prompt_tokens=64, new_tokens=320),
    "summaries": dict(prompts=8, prompt_tokens=512, new_tokens=128),  # lengths not stated: our choice
}
PEAK_BF16_TFLOPS = [  # dense bf16 tensor-core peak from the vendor's spec sheets; first name match wins
    ("H100 PCIe", 756), ("H100 NVL", 835), ("H200 NVL", 835), ("H100", 989), ("H200", 989),
    ("A100", 312), ("L40S", 362), ("L40", 181), ("L4", 121),
]


@dataclass
class BenchConfig(LoraTraining):
    shape: str = "llama2-7b"
    use_case: str = "movies"
    prompts: int = 0  # 0: the use case's paper value (USE_CASES)
    prompt_tokens: int = 0
    new_tokens: int = 0
    generations: int = 2  # RLOO samples per prompt (its leave-one-out baseline needs 2; the paper's PPO: 1)
    warmup: int = 1
    steps: int = 3
    repeats: int = 1  # (c) ours and plain TRL this many times each, alternating: the speed-up's spread
    gradient_checkpointing: bool = True  # TRL's RLOO default
    cpu_bf16: bool = False  # CPU: fp32, as plain TRL (GPUs train in bf16 either way)
    # our step's speed settings (rl.RLConfig): shared prompt prefill in sampling and loss, merged sampling,
    # bf16 sampling on CPU
    shared_prefill: bool = False
    merged_generation: bool = False
    cpu_bf16_sampling: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.shape not in SHAPES:
            raise InputError(f"bench shape {self.shape!r}: expected one of {sorted(SHAPES)}")
        if self.use_case not in USE_CASES:
            raise InputError(f"bench use case {self.use_case!r}: expected one of {sorted(USE_CASES)}")
        for key, value in USE_CASES[self.use_case].items():
            setattr(self, key, getattr(self, key) or value)
        if self.repeats < 1:
            raise InputError(f"bench repeats {self.repeats}: expected at least 1")

    @property
    def sequences(self) -> int:
        return self.prompts * self.generations


# --------------------------------------------------------------------------- model, tokenizer, data
def synthetic_tokenizer(vocab_size: int):
    """Words "w2" ... "w<vocab_size - 1>", one token each; EOS = vocab_size, which the model never samples."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, **{f"w{i}": i for i in range(2, vocab_size)}, "</s>": vocab_size}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", eos_token="</s>",
                                  model_input_names=["input_ids", "attention_mask"])
    tok.padding_side = "left"
    return tok


def random_prompts(n: int, length: int, vocab_size: int, seed: int) -> list[str]:
    ids = torch.randint(2, vocab_size, (n, length), generator=torch.Generator().manual_seed(seed))
    return [" ".join(f"w{i}" for i in row.tolist()) for row in ids]


def build_policy(cfg: BenchConfig, device: str):
    """The shape's causal LM with the HF init (normal, std 0.02: finite in bf16), seeded, on `device`."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    seed_everything(cfg.seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(LlamaConfig(**SHAPES[cfg.shape], pad_token_id=0),
                                                 dtype=pick_dtype(device))
    head = model.get_output_embeddings()
    body = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head)
    return model, body, head.weight.numel()


def save_reward_model(tok, shape: str, path: Path) -> Path:
    """A random sequence classifier of DistilBERT's shape (tiny for the tiny policy), with `tok`."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(vocab_size=len(tok), pad_token_id=0, num_labels=2, **RM_SHAPES.get(shape, {}))
    DistilBertForSequenceClassification(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


# --------------------------------------------------------------------------- FLOPs, peak, timing
def peak_tflops(device_name: str) -> float:
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return float(tflops)
    log.info("no dense bf16 peak known for %r (rcfd.train.bench.PEAK_BF16_TFLOPS): MFU not reported (NaN)", device_name)
    return float("nan")


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, warmup: int, steps: int) -> float:
    """Median wall seconds of `fn()` over `steps` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(steps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds)


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- (a) and (b)
def bench_generate_and_train(cfg: BenchConfig, tok, prompts: list[str], device: str) -> dict:
    """(a) generation and (b) the training phase, on one LoRA-wrapped policy."""
    from peft import get_peft_model
    from trl.trainer.utils import add_fused_lm_head

    model, body, head = build_policy(cfg, device)
    model = get_peft_model(model, cfg.lora.peft_config())
    lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    enc = tok(prompts[:cfg.prompts] * cfg.generations, return_tensors="pt").to(device)
    P, C, B = cfg.prompt_tokens, cfg.new_tokens, cfg.sequences

    def generate(compiled: bool):
        # TRL's default (dynamic KV cache, eager) or ours (rl.RLConfig.compile_generation)
        extra = dict(cache_implementation="static", disable_compile=False) if compiled else dict(disable_compile=True)
        return model.generate(**enc, do_sample=True, max_new_tokens=C, temperature=1.0, top_p=1.0, top_k=0,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **extra)

    model.eval()
    gen_s = {True: float("nan")}  # compiled decoding: CUDA only, as in training (rl.compiled_generation)
    for compiled in (False, True) if device.startswith("cuda") else (False,):
        log.info("(a) generation, %s: %d sequences x %d new tokens after %d prompt tokens",
                 "static cache + compiled decoding" if compiled else "TRL's default (dynamic cache, eager)", B, C, P)
        gen_s[compiled] = timed(lambda: generate(compiled), cfg.warmup, cfg.steps)  # noqa: B023 (called at once)
    ids = generate(device.startswith("cuda"))
    assert ids.shape == (B, P + C), ids.shape

    # (b) RLOO's loss at num_iterations 1 is -A * ratio with ratio = 1: the gradient of -A log pi(y|x)
    add_fused_lm_head(model.get_base_model())
    model.train()
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    labels = ids.clone()
    labels[:, :P] = -100  # only the completion tokens are scored
    advantages = torch.randn(B, 1, device=device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5)
    losses = []

    def train_step():
        # bf16 autocast as in training: always on GPU, on CPU when cpu_bf16 (the default config's CPU runs)
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16,
                            enabled=device.startswith("cuda") or cfg.cpu_bf16):
            out = model(input_ids=ids, labels=labels, fused_lm_head=True)
            loss = -(advantages * out.log_probs).sum() / out.label_mask.sum()
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.detach())

    log.info("(b) training phase: forward + backward on %d x %d tokens", B, P + C)
    train_s = timed(train_step, cfg.warmup, cfg.steps)
    if not all(torch.isfinite(x).item() for x in losses):
        log.warning("(b) the policy-gradient loss was not finite: %s", [x.item() for x in losses])
    return dict(params_matmul=body + head, params_head=head, params_lora=lora,
                config=model.get_base_model().config, gen_s=gen_s[False], gen_s_compiled=gen_s[True], train_s=train_s)


# --------------------------------------------------------------------------- (c)
class StepTimer(TrainerCallback):
    """Wall seconds of every optimisation step (generation, reward, backward, update)."""

    def __init__(self):
        self.seconds, self.t0 = [], 0.0

    def on_step_begin(self, *args, **kwargs):
        sync()
        self.t0 = time.perf_counter()

    def on_step_end(self, *args, **kwargs):
        sync()
        self.seconds.append(time.perf_counter() - self.t0)


def constant_reward(completions, **_):
    return [0.0] * len(completions)


def bench_rloo(cfg: BenchConfig, tok, prompts: list[str], device: str, ours: bool, work: Path) -> float:
    """Median seconds of an RLOO step (beta 0): our train_rl path with the RCfD reward, or plain TRL."""
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    model, _, _ = build_policy(cfg, device)
    n_steps = cfg.warmup + cfg.steps
    if ours:
        rm_cfg = RewardModelConfig(max_length=min(512, cfg.prompt_tokens + cfg.new_tokens))
        rm = ClassifierReward(str(work / "reward_model"), rm_cfg, device)
        demo_rewards = torch.randn(len(prompts), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
        rl = RLConfig(steps=n_steps, prompts_per_step=cfg.prompts, num_generations=cfg.generations,
                      max_new_tokens=cfg.new_tokens, lora=cfg.lora, seed=cfg.seed, device=device,
                      cpu_bf16=cfg.cpu_bf16, gradient_checkpointing=cfg.gradient_checkpointing,
                      merged_generation=cfg.merged_generation,
                      sampling=SamplingConfig(shared_prefill=cfg.shared_prefill, cpu_bf16=cfg.cpu_bf16_sampling,
                                              attention="", inverse_cdf=False))
        trainer = rl_trainer(model, tok, [{"prompt": p, "demo_reward": r} for p, r in zip(prompts, demo_rewards)],
                             make_reward_func("rcfd", rm), 0.0, rl, Checkpoints(work / "ours"))
    else:
        cuda = device.startswith("cuda")
        args = RLOOConfig(output_dir=str(work / "trl"), max_steps=n_steps, per_device_train_batch_size=cfg.sequences,
                          num_generations=cfg.generations, max_completion_length=cfg.new_tokens, beta=0.0,
                          logging_steps=1, report_to="none", save_strategy="no", seed=cfg.seed, bf16=cuda,
                          use_cpu=not cuda)
        trainer = RLOOTrainer(model=model, reward_funcs=constant_reward, args=args,
                              train_dataset=Dataset.from_dict({"prompt": prompts}), processing_class=tok,
                              peft_config=cfg.lora.peft_config())
    timer = StepTimer()
    trainer.add_callback(timer)
    log.info("(c) %s: %d RLOO steps (%d warm-up)", "ours (train_rl, RCfD reward)" if ours else "plain TRL RLOO",
             n_steps, cfg.warmup)
    trainer.train()
    if any(not math.isfinite(h["grad_norm"]) for h in trainer.state.log_history if "grad_norm" in h):
        log.warning("(c) non-finite gradient norm: %s", [h.get("grad_norm") for h in trainer.state.log_history])
    seconds = statistics.median(timer.seconds[cfg.warmup:])
    log.info("(c) %s: median step %.3f s (steps: %s)", "ours" if ours else "plain TRL", seconds,
             " ".join(f"{s:.3f}" for s in timer.seconds))
    return seconds


# --------------------------------------------------------------------------- the whole benchmark
def spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def phase_floors(cfg: BenchConfig, r: dict, machine: F.Machine, device: str) -> dict[str, float]:
    """Each phase's floor on `machine` (rcfd.train.floors.step_floors) in the dtypes it runs in: (a) TRL's
    default sampling (the model's dtype, LoRA unmerged), (b) training (bf16 under autocast, as the
    step), and the two RLOO steps' sampling + training: ours with its sampling settings, plain TRL's
    all in the model's dtype. The reward and no-grad log-prob passes are left out of the floor."""
    cuda = device.startswith("cuda")
    model_dtype = str(pick_dtype(device)).removeprefix("torch.")
    train_dtype = "bfloat16" if cuda or cfg.cpu_bf16 else "float32"
    ours_sampling = "bfloat16" if cuda or cfg.cpu_bf16_sampling else model_dtype

    def floors(sampling_dtype: str, merged: bool, training_dtype: str) -> dict[str, float]:
        weights = (r["params_matmul"] - r["params_head"], r["params_head"], r["params_lora"])
        record = F.roofline(machine, weights, r["config"], cfg.prompts, cfg.sequences, sampling_dtype, merged,
                            training_dtype)
        return F.step_floors(record, cfg.prompt_tokens, cfg.new_tokens)

    trl, ours = floors(model_dtype, False, model_dtype), floors(ours_sampling, cfg.merged_generation, train_dtype)
    return dict(gen=trl["generate"], train=floors(model_dtype, False, train_dtype)["train"],
                step_ours=sum(ours.values()), step_trl=sum(trl.values()))


def run_bench(cfg: BenchConfig, out: str | Path) -> dict:
    import pandas as pd
    import peft
    import transformers
    import trl

    device = pick_device(cfg.device)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    peak = peak_tflops(name)
    vocab = SHAPES[cfg.shape]["vocab_size"]
    tok = synthetic_tokenizer(vocab)
    prompts = random_prompts(cfg.prompts * (cfg.warmup + cfg.steps), cfg.prompt_tokens, vocab, cfg.seed)
    log.info("bench %s on %s (%s): %s", cfg.shape, name, pick_dtype(device), asdict(cfg))
    machine = F.measure_machine(device)
    log.info("machine at %d thread(s): GEMM %s GFLOP/s, memory %.1f GB/s", machine.threads,
             {d: round(v / 1e9, 1) for d, v in machine.gemm_flops.items()}, machine.bandwidth / 1e9)

    r = bench_generate_and_train(cfg, tok, prompts, device)
    free_memory()
    steps = {"trl": [], "ours": []}
    with tempfile.TemporaryDirectory() as work:
        save_reward_model(tok, cfg.shape, Path(work) / "reward_model")
        for i in range(cfg.repeats):  # alternating, so that a slow spell of the machine hits both paths
            log.info("(c) repeat %d of %d", i + 1, cfg.repeats)
            for path in ("trl", "ours"):
                steps[path].append(bench_rloo(cfg, tok, prompts, device, ours=path == "ours", work=Path(work)))
                free_memory()
    step_ours, step_trl = statistics.median(steps["ours"]), statistics.median(steps["trl"])
    speedup, speedup_min, speedup_max = spread([t / o for t, o in zip(steps["trl"], steps["ours"])])

    B, P, C = cfg.sequences, cfg.prompt_tokens, cfg.new_tokens
    flops = dict(body=r["params_matmul"] - r["params_head"], head=r["params_head"], lora=r["params_lora"],
                 tokens=B * (P + C), completion_tokens=B * C)
    gen_flops, train_flops = model_flops(**flops, train=False), model_flops(**flops, train=True)
    floor = phase_floors(cfg, r, machine, device)

    def mfu(flops: float, seconds: float) -> float:
        return flops / seconds / (peak * 1e12)

    row = {
        "device": name, "torch": torch.__version__, "transformers": transformers.__version__,
        "trl": trl.__version__, "peft": peft.__version__, "dtype": str(pick_dtype(device)).removeprefix("torch."),
        "shape": cfg.shape, "use_case": cfg.use_case, "prompts": cfg.prompts, "generations": cfg.generations,
        "sequences": B, "prompt_tokens": P, "new_tokens": C, "gradient_checkpointing": cfg.gradient_checkpointing,
        "cpu_bf16": cfg.cpu_bf16 and not device.startswith("cuda"),
        "shared_prefill": cfg.shared_prefill, "merged_generation": cfg.merged_generation,
        "cpu_bf16_sampling": cfg.cpu_bf16_sampling and not device.startswith("cuda"),
        "lora_r": cfg.lora.r, "lora_alpha": cfg.lora.lora_alpha, "warmup": cfg.warmup, "timed_steps": cfg.steps,
        "repeats": cfg.repeats, "threads": machine.threads,
        "gemm_gflops_fp32": machine.gemm_flops["float32"] / 1e9,
        "gemm_gflops_bf16": machine.gemm_flops["bfloat16"] / 1e9, "memory_gbs": machine.bandwidth / 1e9,
        "params_matmul": r["params_matmul"], "params_lora": r["params_lora"], "peak_bf16_tflops": peak,
        "gen_s": r["gen_s"], "gen_tok_s": B * C / r["gen_s"], "gen_mfu": mfu(gen_flops, r["gen_s"]),
        "gen_s_compiled": r["gen_s_compiled"], "gen_tok_s_compiled": B * C / r["gen_s_compiled"],
        "gen_floor_s": floor["gen"], "gen_x_floor": r["gen_s"] / floor["gen"],
        "gen_x_floor_compiled": r["gen_s_compiled"] / floor["gen"],
        "train_s": r["train_s"], "train_tok_s": B * (P + C) / r["train_s"],
        "train_mfu": mfu(train_flops, r["train_s"]),
        "train_floor_s": floor["train"], "train_x_floor": r["train_s"] / floor["train"],
        "step_s_ours": step_ours, "step_s_trl": step_trl, "speedup_vs_trl": speedup,
        "speedup_vs_trl_min": speedup_min, "speedup_vs_trl_max": speedup_max,
        "step_floor_s_ours": floor["step_ours"], "step_x_floor_ours": step_ours / floor["step_ours"],
        "step_floor_s_trl": floor["step_trl"], "step_x_floor_trl": step_trl / floor["step_trl"],
        "step_mfu_ours": mfu(gen_flops + train_flops, step_ours),
        "step_mfu_trl": mfu(gen_flops + train_flops, step_trl),
    }
    slug = "-".join(re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") for s in (name, cfg.shape, cfg.use_case))
    stem = Path(out) / slug
    write_json(stem.with_suffix(".json"), row)
    pd.DataFrame([row]).to_csv(stem.with_suffix(".csv"), index=False)
    log.info("generation %.0f tok/s eager (%.1fx its floor), %.0f tok/s compiled; training %.0f tok/s (%.1fx its "
             "floor, MFU %.3f); RLOO step %.3f s ours (%.1fx its floor) vs %.3f s plain TRL (%.1fx): x%.2f "
             "(%.2f-%.2f over %d repeats); wrote %s.{json,csv}", row["gen_tok_s"], row["gen_x_floor"],
             row["gen_tok_s_compiled"], row["train_tok_s"], row["train_x_floor"], row["train_mfu"], step_ours,
             row["step_x_floor_ours"], step_trl, row["step_x_floor_trl"], speedup, speedup_min, speedup_max,
             cfg.repeats, stem)
    return row
