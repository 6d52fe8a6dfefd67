#!/usr/bin/python3
"""PyTorch side by side with `deno task bench` (bench/main.ts): the same workloads at the same sizes,
one JSON line per workload with the same `name` fields plus "impl": "pytorch". Not part of CI.

    /usr/bin/python3 bench/torch_bench.py [--threads 1] [--only name,name] [--runs 5] [--warmup 2]

Needs only the standard library, torch and numpy (Debian: `apt-get install python3-torch`; Debian's
torch calls whatever libblas.so.3 is installed, so install `libopenblas0-pthread` too or matmuls run on
the reference BLAS). Each time is the median of --runs runs after --warmup warm-up runs, eager mode (no
torch.jit / torch.compile). `--threads N` sets torch.set_num_threads(N) and, before torch is imported,
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS (unless already set), so that "1 thread" also
holds for the BLAS matmuls.
"""
import argparse
import json
import os
import platform
import statistics
import time

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
ap.add_argument("--only", default="", help="comma-separated workload names (default: all but opt-in rows)")
ap.add_argument("--runs", type=int, default=5, help="timed runs per workload (median reported)")
ap.add_argument("--warmup", type=int, default=2, help="untimed warm-up runs per workload")
opt = ap.parse_args()

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, str(opt.threads))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(opt.threads)
torch.manual_seed(0)


def median(fn, runs=None):
    """Median wall time in ms of `fn()` after warm-up. Every workload ends by reading a value back to
    Python (`.item()`), like the library's read-back, though on the CPU eager PyTorch is synchronous."""
    runs = runs or opt.runs
    for _ in range(opt.warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000)
    return statistics.median(ts)


def first(t):
    return t.reshape(-1)[0].item()


# --- the model: minimal GPT-2 as in nn/gpt.ts (pre-LN, GELU tanh, tied head, learned positions) ---


class Attention(nn.Module):
    def __init__(self, C, H, n_layer):
        super().__init__()
        self.H = H
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        for lin, std in ((self.c_attn, 0.02), (self.c_proj, 0.02 / (2 * n_layer) ** 0.5)):
            nn.init.normal_(lin.weight, std=std)
            nn.init.zeros_(lin.bias)

    def forward(self, x):
        B, T, C = x.shape
        H, D = self.H, C // self.H
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in self.c_attn(x).split(C, dim=-1))
        scores = (q @ k.transpose(-1, -2)) * (1.0 / D**0.5)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        # As the library: a large finite negative, then softmax (torch 1.13 has no scaled_dot_product_attention).
        att = scores.masked_fill(~causal, -1e9).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, C, n_layer):
        super().__init__()
        self.c_fc = nn.Linear(C, 4 * C)
        self.c_proj = nn.Linear(4 * C, C)
        for lin, std in ((self.c_fc, 0.02), (self.c_proj, 0.02 / (2 * n_layer) ** 0.5)):
            nn.init.normal_(lin.weight, std=std)
            nn.init.zeros_(lin.bias)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, C, H, n_layer):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.attn = Attention(C, H, n_layer)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.mlp = MLP(C, n_layer)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.02)
        self.h = nn.ModuleList(Block(n_embd, n_head, n_layer) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, eps=1e-5)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for block in self.h:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.t()  # tied head, as nn/gpt.ts


TINY = dict(vocab_size=256, block_size=64, n_layer=4, n_head=4, n_embd=128)


def adamw(model, lr, weight_decay):
    """AdamW as nn/optim.ts: decoupled decay only on parameters of rank >= 2."""
    ps = list(model.parameters())
    groups = [
        {"params": [p for p in ps if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in ps if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)


# --- workloads (names and sizes as in bench/main.ts) ---


def matmul(n):
    a, b = torch.randn(n, n), torch.randn(n, n)
    ms = median(lambda: first(a @ b), 3 if n > 512 else None)
    return {"ms": ms, "gflops": 2 * n**3 / ms / 1e6}


def elementwise_fused():
    # Eager PyTorch materialises every intermediate: "fused" and "unfused" are the same program here.
    n = 1 << 22
    x = torch.randn(n)

    def chain():
        v = x * 1.5
        v = v + 0.5
        v = v.tanh()
        v = v * v
        v = v - 0.25
        v = v.relu()
        return first(v.sum())

    ms = median(chain)
    return {"ms": ms, "gbps": n * 4 * 2 / ms / 1e6}


def gelu_exp_chain():
    n = 1 << 22
    x = torch.randn(n)
    ms = median(lambda: first((F.gelu(x, approximate="tanh") * 1.5 + 0.5).exp().sum()))
    return {"ms": ms, "ns_per_element": ms * 1e6 / n}


def softmax():
    x = torch.randn(4096, 1024)
    ms = median(lambda: first(x.softmax(-1)))
    return {"ms": ms, "gbps": 4096 * 1024 * 4 * 2 / ms / 1e6}


def dispatch_overhead():
    x = torch.randn(64)

    def run():
        t = x
        for _ in range(1000):
            t = t + 1
        return first(t)

    ms = median(run, 3)
    return {"ms": ms, "us_per_op": ms * 1000 / 1000}


def mlp_step():
    x, y = torch.randn(256, 512), torch.randn(256, 512)
    l1, l2 = nn.Linear(512, 512), nn.Linear(512, 512)
    for lin in (l1, l2):
        nn.init.normal_(lin.weight, std=0.02)
        nn.init.zeros_(lin.bias)
    sgd = torch.optim.SGD([*l1.parameters(), *l2.parameters()], lr=1e-3)

    def step():
        d = l2(l1(x).relu()) - y
        loss = (d * d).mean()
        loss.backward()
        sgd.step()
        sgd.zero_grad()
        return loss.item()

    return {"ms": median(step)}


def gpt_tiny_train_step():
    model = GPT(**TINY)
    opt_ = adamw(model, lr=1e-3, weight_decay=0.1)
    ids = (torch.randn(16, 64).abs() * 60).to(torch.int64).clamp_(max=255)  # as bench/main.ts: |N(0,1)|·60 → int

    def step():
        logits = model(ids)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids.reshape(-1))
        loss.backward()
        opt_.step()
        opt_.zero_grad()
        return loss.item()

    ms = median(step)
    return {"ms": ms, "tokens_per_s": 16 * 64 / (ms / 1000)}


def seq_logps(model, tokens, mask):
    """Summed log p(token[t+1] | ≤ t) over completion positions, [2B] (dpo/loss.ts sequenceLogProbs)."""
    logits = model(tokens)[:, :-1]
    tgt, m = tokens[:, 1:], mask[:, 1:]
    lp = -F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="none")
    return (lp.view_as(m) * m).sum(1)


def gpt_tiny_dpo_step():
    # 8 pairs: prompt 16, chosen 48, rejected 48 tokens -> one [16, 64] batch (chosen rows first),
    # frozen reference forward, sigmoid DPO loss (beta 0.1), grad-norm clip 1, AdamW (no decay, as
    # DPOTrainer's default), metrics read back once per step.
    policy = GPT(**TINY)
    reference = GPT(**TINY)
    reference.load_state_dict(policy.state_dict())
    reference.requires_grad_(False).eval()
    opt_ = torch.optim.AdamW(policy.parameters(), lr=1e-4, weight_decay=0.0)

    def r(n, s):
        return [(i * 37 + s * 11) % 256 for i in range(n)]

    pairs = [(r(16, i), r(48, i + 100), r(48, i + 200)) for i in range(8)]
    seqs = [p + c for p, c, _ in pairs] + [p + rj for p, _, rj in pairs]
    tokens = torch.tensor(seqs, dtype=torch.int64)
    mask = torch.zeros(16, 64)
    mask[:, 16:] = 1
    beta, P = 0.1, len(pairs)

    def step():
        pol = seq_logps(policy, tokens, mask)
        with torch.no_grad():
            ref = seq_logps(reference, tokens, mask)
        c = pol[:P] - ref[:P]
        rj = pol[P:] - ref[P:]
        loss = -F.logsigmoid(beta * (c - rj)).mean()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        cr, rr = (beta * c).detach(), (beta * rj).detach()
        metrics = torch.stack([
            loss.detach(), cr.mean(), rr.mean(), (cr > rr).float().mean(), (cr - rr).mean(),
            pol[:P].detach().mean(), pol[P:].detach().mean(), norm,
        ]).tolist()
        opt_.step()
        opt_.zero_grad()
        return metrics

    ms = median(step)
    return {"ms": ms, "tokens_per_s": 16 * 64 / (ms / 1000)}


WORKLOADS = {
    "matmul-256": lambda: matmul(256),
    "matmul-1024": lambda: matmul(1024),
    "elementwise-fused": elementwise_fused,
    "gelu-exp-chain": gelu_exp_chain,
    "softmax-4096x1024": softmax,
    "dispatch-overhead": dispatch_overhead,
    "mlp-step": mlp_step,
    "gpt-tiny-train-step": gpt_tiny_train_step,
    "gpt-tiny-dpo-step": gpt_tiny_dpo_step,
}

only = [w for w in opt.only.split(",") if w]
for w in only:
    if w not in WORKLOADS:
        raise SystemExit(f"unknown workload {w!r}; one of {', '.join(WORKLOADS)}")
def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


info = f"torch {torch.__version__}, numpy {np.__version__}, {opt.threads} thread(s), {cpu_model()}"
for name, run in WORKLOADS.items():
    if only and name not in only:
        continue
    res = run()
    print(json.dumps({
        "name": name,
        "impl": "pytorch",
        "backend": "cpu",
        "threads": opt.threads,
        "adapter": info,
        **{k: float(f"{v:.4g}") for k, v in res.items()},
    }), flush=True)
