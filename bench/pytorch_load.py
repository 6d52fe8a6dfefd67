"""Load a pretrained folder written by this library (savePretrained, train.ts --init DIR --data's dpo/)
into PyTorch the way Hugging Face's GPT2LMHeadModel reads it, and compare logits with the library's.

    /usr/bin/python3 bench/pytorch_load.py DIR EXPECTED.json

EXPECTED.json holds {"tokens": [...], "logits": [[...], ...]} from the library (bench/pytorch_load.ts writes
it). Checks: config.json is a GPT2Config this reader supports; model.safetensors has metadata
{"format": "pt"}, every GPT-2 tensor name with its shape and nothing else; lm_head.weight equals the tied
transformer.wte.weight; the strict load_state_dict succeeds; logits agree. Needs torch only (no
transformers or safetensors packages: the safetensors header is read by hand, as the format is simple).
Not part of CI.
"""
import json
import struct
import sys

import torch
import torch.nn.functional as F

folder, expected_path = sys.argv[1], sys.argv[2]
config = json.load(open(f"{folder}/config.json"))
assert config["model_type"] == "gpt2", config.get("model_type")
assert config["activation_function"] in ("gelu_new", "gelu_pytorch_tanh"), config["activation_function"]
L, H, C, V, P = (config[k] for k in ("n_layer", "n_head", "n_embd", "vocab_size", "n_positions"))
eps = config.get("layer_norm_epsilon", 1e-5)

raw = open(f"{folder}/model.safetensors", "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8 : 8 + n])
assert header.pop("__metadata__", {}).get("format") == "pt", "metadata format is not pt"
sd = {}
for name, h in header.items():
    assert h["dtype"] == "F32", (name, h["dtype"])
    a, b = h["data_offsets"]
    sd[name] = torch.frombuffer(bytearray(raw[8 + n + a : 8 + n + b]), dtype=torch.float32).reshape(h["shape"])

shapes = {"transformer.wte.weight": [V, C], "transformer.wpe.weight": [P, C], "lm_head.weight": [V, C]}
shapes |= {f"transformer.ln_f.{p}": [C] for p in ("weight", "bias")}
for i in range(L):
    pre = f"transformer.h.{i}."
    for ln in ("ln_1", "ln_2"):
        shapes |= {f"{pre}{ln}.weight": [C], f"{pre}{ln}.bias": [C]}
    for mod, (fan_in, fan_out) in {"attn.c_attn": (C, 3 * C), "attn.c_proj": (C, C), "mlp.c_fc": (C, 4 * C), "mlp.c_proj": (4 * C, C)}.items():
        shapes |= {f"{pre}{mod}.weight": [fan_in, fan_out], f"{pre}{mod}.bias": [fan_out]}  # Conv1D: [in, out]
assert set(sd) == set(shapes), f"missing {set(shapes) - set(sd)}, unexpected {set(sd) - set(shapes)}"
for k, s in shapes.items():
    assert list(sd[k].shape) == s, (k, list(sd[k].shape), s)
assert torch.equal(sd["lm_head.weight"], sd["transformer.wte.weight"]), "lm_head.weight is not the tied wte"


class Conv1D(torch.nn.Module):  # GPT-2's layer: y = x @ W + b with W [in, out]
    def __init__(self, fan_in, fan_out):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(fan_in, fan_out))
        self.bias = torch.nn.Parameter(torch.empty(fan_out))

    def forward(self, x):
        return x @ self.weight + self.bias


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = torch.nn.LayerNorm(C, eps=eps), torch.nn.LayerNorm(C, eps=eps)
        self.attn = torch.nn.Module()
        self.attn.c_attn, self.attn.c_proj = Conv1D(C, 3 * C), Conv1D(C, C)
        self.mlp = torch.nn.Module()
        self.mlp.c_fc, self.mlp.c_proj = Conv1D(C, 4 * C), Conv1D(4 * C, C)

    def forward(self, x):
        B, T, _ = x.shape
        q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in self.attn.c_attn(self.ln_1(x)).split(C, -1))
        att = (q @ k.transpose(-1, -2)) / (C // H) ** 0.5
        att = att.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")).softmax(-1)
        x = x + self.attn.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2LMHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer = torch.nn.Module()
        self.transformer.wte, self.transformer.wpe = torch.nn.Embedding(V, C), torch.nn.Embedding(P, C)
        self.transformer.h = torch.nn.ModuleList(Block() for _ in range(L))
        self.transformer.ln_f = torch.nn.LayerNorm(C, eps=eps)
        self.lm_head = torch.nn.Linear(C, V, bias=False)

    def forward(self, idx):
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(idx.shape[1]))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


model = GPT2LMHead()
model.load_state_dict(sd, strict=True)
expected = json.load(open(expected_path))
with torch.no_grad():
    logits = model(torch.tensor([expected["tokens"]]))[0]
diff = (logits - torch.tensor(expected["logits"])).abs().max().item()
print(json.dumps({"folder": folder, "n_layer": L, "n_head": H, "n_embd": C, "vocab_size": V, "max_abs_diff": diff}))
assert diff < 1e-4, f"logits differ by {diff}"
