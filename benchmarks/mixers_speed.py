"""Speed and memory of every sequence mixer on this machine, with peers measured in the same run.

    python benchmarks/mixers_speed.py                      # batch 4, d_model 512, T = 512, 2048, 8192; recorded
    python benchmarks/mixers_speed.py --quick              # T = 256, 1024, no 32k decode (not recorded)
    python benchmarks/mixers_speed.py --mixers mamba gla --lengths 2048

For each mixer (one layer, fp32, both cores):

* training: forward + backward tokens/s at each length, and peak resident memory of that step
  (measured in a fresh process, above the layer and its input);
* (a) its naive recurrence (the ops' ``*_naive`` reference swapped into the mixer's module, so the
  projections are identical and only the sequence kernel differs) at T = 2048;
* (b) Hugging Face transformers' implementation of the same layer where one exists: ``MambaMixer``
  and ``Mamba2Mixer`` (their CPU ``torch_forward`` path), and RWKV's nearest layer in HF
  (``RwkvSelfAttention``, RWKV-4: a different, simpler time mix — listed for scale, not parity);
* (c) causal SDPA attention of the same width (the ``attention`` row; ratios in ``vs attn``);
* decoding: per-token latency of one step after a prefill of 1k and of 32k tokens (batch 1);
* achieved matmul FLOP/s in training (``torch.utils.flop_counter``: matmul/conv/SDPA FLOPs only)
  against the measured fp32 and bf16 matmul peak of this machine;
* with ``--bf16``: training again under bf16 autocast (what ``precision: bf16-mixed`` does), its
  tokens/s against attention's under the same autocast, its matmul FLOP/s as % of the bf16
  peak, and a profile that separates the chunk kernels' batched matmuls from the projections
  (their own FLOP/s, and their share of the step). Worth it where the CPU multiplies bf16 in
  hardware (AMX, AVX512-BF16).
"""
from __future__ import annotations

import argparse
import gc
import importlib
import inspect
import os
import pkgutil
import statistics
import sys
import time
import subprocess
from contextlib import contextmanager

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import transformers  # noqa: E402

from benchmarks.common import markdown_table, record  # noqa: E402
import core.ops  # noqa: E402
from core.mixers import MIXERS, build_mixer  # noqa: E402
from core.models import BackboneConfig  # noqa: E402


# ----------------------------------------------------------------------------- measuring

def _status(field: str) -> int:
    """A /proc/self/status field in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def peak_memory(name: str, t: int, b: int, d: int, n_heads: int) -> int:
    """Peak resident memory of one training step, above the memory of the layer and its input.

    Measured in a fresh process: in this one, memory freed by earlier measurements stays mapped
    by the allocator and is reused without showing up in the high-water mark."""
    out = subprocess.run([sys.executable, __file__, "--peak-of", name, str(t), str(b), str(d), str(n_heads)],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def _peak_child(name: str, t: int, b: int, d: int, n_heads: int) -> None:
    cfg = BackboneConfig(d_model=d, n_heads=n_heads, dropout=0.0, max_len=t + 64, n_layers=1)
    mixer = build_mixer(name, cfg, causal=True)
    x = torch.randn(b, t, d, requires_grad=True)
    gc.collect()
    base = _status("VmRSS")
    train_step(mixer, x, ours)()
    print(_status("VmHWM") - base)


def timed(fn, reps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(dtype: torch.dtype, n: int = 2048) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / min(timed(lambda: a @ b, reps=1, warmup=0) for _ in range(10))


def chunk_matmul_peak(dtype: torch.dtype, count: int, chunk: int, head_dim: int = 64) -> float:
    """FLOP/s of a bare batched matmul at a chunk kernel's shapes ([count, C, Dk] @ [count, Dk, C]):
    the most the batched matmuls inside a chunked mixer can reach on this machine."""
    a, b = torch.randn(count, chunk, head_dim, dtype=dtype), torch.randn(count, head_dim, chunk, dtype=dtype)
    return 2 * count * chunk * chunk * head_dim / min(timed(lambda: a @ b, reps=1, warmup=0) for _ in range(10))


def train_step(module, x: torch.Tensor, call):
    """One forward + backward through ``call(module, x) -> y``; returns nothing (timed by caller)."""
    def run():
        x.grad = None
        for p in module.parameters():
            p.grad = None
        y = call(module, x)
        y.backward(torch.ones_like(y))
    return run


def _forward(module, x, call):
    def run():
        with torch.no_grad():
            call(module, x)
    return run


def ours(module, x):
    return module(x)[0]


def ours_bf16(module, x):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = module(x)[0]
    return y.float()


def matmul_flops(module, x, call) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        train_step(module, x, call)()
    counts = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    # torch's formula for convolution_backward ignores groups (a depthwise conv's backward counts
    # as a dense one, ~1000x too many): count it as input + weight gradients, 2x the forward
    conv_bwd = counts.pop("aten.convolution_backward.default", counts.pop("aten.convolution_backward", 0))
    conv_fwd = counts.get("aten.convolution.default", counts.get("aten.convolution", 0))
    return sum(counts.values()) + (2 * conv_fwd if conv_bwd else 0)


#: the matmul kernels as the profiler names them: batched products (the chunk kernels' intra-chunk
#: and state matmuls, 3-D and up) and dense ones (the projections, flattened to 2-D by linear)
BATCHED_MATMULS = ("aten::bmm", "aten::baddbmm")
DENSE_MATMULS = ("aten::mm", "aten::addmm")


def matmul_profile(module, x, call) -> dict:
    """Where one training step's time goes: FLOPs and self time of the batched and the dense
    matmuls (``torch.profiler``'s counts), and the step's whole self time. The FLOP/s of the
    batched matmuls alone is what the chunk kernels' matmuls achieve, apart from the elementwise
    work (decays, masks, gathers) around them."""
    from torch.profiler import ProfilerActivity, profile

    step = train_step(module, x, call)
    step()  # warm-up outside the profile
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        step()
    events = prof.key_averages()
    out = {"total_s": sum(e.self_cpu_time_total for e in events) / 1e6}
    for kind, names in (("batched", BATCHED_MATMULS), ("dense", DENSE_MATMULS)):
        chosen = [e for e in events if e.key in names]
        out[kind] = (sum(e.flops for e in chosen), sum(e.self_cpu_time_total for e in chosen) / 1e6)
    return out


# ----------------------------------------------------------------------------- naive swap

#: op packages whose reference is not the same recurrence run token by token but a different,
#: quadratic algorithm: fftconv_naive applies the [C, T, T] Toeplitz matrix (8 GB at T=2048, d 512)
QUADRATIC_REFERENCES = {"fftconv"}


def _fast_to_naive() -> dict:
    """``{fast_fn: naive_fn}`` from every op package that exports ``name`` and ``name_naive``."""
    pairs = {}
    for info in pkgutil.iter_modules(core.ops.__path__):
        if info.name in QUADRATIC_REFERENCES:
            continue
        pkg = importlib.import_module(f"core.ops.{info.name}")
        for name in dir(pkg):
            naive = getattr(pkg, f"{name}_naive", None)
            if naive is not None and callable(getattr(pkg, name)):
                pairs[getattr(pkg, name)] = naive
    return pairs


@contextmanager
def naive_kernels(mixer: torch.nn.Module):
    """Swap the fast kernels a mixer's module calls for their naive references (kwargs the reference
    does not take, such as ``chunk``, are dropped). Yields whether anything was swapped."""
    module = sys.modules[type(mixer).__module__]
    pairs = _fast_to_naive()
    saved = {}
    for attr, value in list(vars(module).items()):
        if callable(value) and value in pairs:
            naive = pairs[value]
            accepted = set(inspect.signature(naive).parameters)

            def call(*args, _naive=naive, _accepted=accepted, **kwargs):
                return _naive(*args, **{k: v for k, v in kwargs.items() if k in _accepted})

            saved[attr] = value
            setattr(module, attr, call)
    try:
        yield bool(saved)
    finally:
        for attr, value in saved.items():
            setattr(module, attr, value)


# ----------------------------------------------------------------------------- HF peers

def hf_peer(name: str, d_model: int, ours_module):
    """(module, call) for HF's implementation of the same layer at the same sizes, or None."""
    try:
        if name == "mamba":
            from transformers import MambaConfig
            from transformers.models.mamba.modeling_mamba import MambaMixer

            n_state = ours_module.A_log.shape[1] if hasattr(ours_module, "A_log") else 16
            cfg = MambaConfig(hidden_size=d_model, state_size=n_state, expand=2, conv_kernel=4, use_mambapy=False)
            return MambaMixer(cfg, layer_idx=0), lambda m, x: m(x)
        if name == "mamba2":
            from transformers import Mamba2Config
            from transformers.models.mamba2.modeling_mamba2 import Mamba2Mixer

            headdim = getattr(ours_module, "headdim", 64)
            n_state = getattr(ours_module, "d_state", 64)
            cfg = Mamba2Config(hidden_size=d_model, state_size=n_state, expand=2, head_dim=headdim,
                               num_heads=2 * d_model // headdim, n_groups=getattr(ours_module, "ngroups", 1),
                               conv_kernel=4, chunk_size=getattr(ours_module, "chunk", 64))
            return Mamba2Mixer(cfg, layer_idx=0), lambda m, x: m(x)
        if name == "rwkv6":
            from transformers import RwkvConfig
            from transformers.models.rwkv.modeling_rwkv import RwkvSelfAttention

            cfg = RwkvConfig(hidden_size=d_model, attention_hidden_size=d_model)
            return RwkvSelfAttention(cfg, layer_id=0), lambda m, x: m(x)[0]
    except Exception as err:  # an HF version without the class: report, don't fail the whole run
        print(f"  (no HF peer for {name}: {type(err).__name__}: {err})")
    return None


# ----------------------------------------------------------------------------- decode latency

def decode_latency(mixer, d_model: int, context: int, steps: int = 32) -> float:
    """Seconds per token of single-token steps after a prefill of ``context`` tokens (batch 1)."""
    with torch.no_grad():
        state = mixer.init_state(1, torch.device("cpu"), torch.float32)
        for start in range(0, context, 4096):  # prefill in pieces (bounded activation memory)
            piece = torch.randn(1, min(4096, context - start), d_model)
            _, state = mixer(piece, state=state, offset=start)
        x = torch.randn(1, 1, d_model)
        for _ in range(3):
            mixer(x, state=state, offset=context)
        start_t = time.perf_counter()
        s = state
        for i in range(steps):
            _, s = mixer(x, state=s, offset=context + i)
        return (time.perf_counter() - start_t) / steps


# ----------------------------------------------------------------------------- main

def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--peak-of"]:  # the child process of peak_memory
        name, *sizes = argv[1:]
        return _peak_child(name, *map(int, sizes))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mixers", nargs="+", default=None, help="default: every registered mixer")
    p.add_argument("--lengths", nargs="+", type=int, default=[512, 2048, 8192])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--d-model", type=int, default=512)
    p.add_argument("--n-heads", type=int, default=8)
    p.add_argument("--naive-length", type=int, default=2048)
    p.add_argument("--contexts", nargs="+", type=int, default=[1024, 32768])
    p.add_argument("--hf-train-length", type=int, default=256,
                   help="length of the forward+backward comparison with HF (its CPU backward is quadratic in T)")
    p.add_argument("--bf16", action="store_true", help="also time training under bf16 autocast")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.lengths, args.naive_length, args.contexts, args.hf_train_length = [256, 1024], 256, [256, 1024], 128
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()  # (HF warns on every call that mamba_ssm is not installed)
    mixers = args.mixers or sorted(MIXERS)
    d, b = args.d_model, args.batch
    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    print(f"matmul peak: fp32 {peak32 / 1e9:.0f} GFLOP/s, bf16 {peak16 / 1e9:.0f} GFLOP/s "
          f"(cpu capability {torch.backends.cpu.get_cpu_capability()})", flush=True)
    count = b * args.n_heads * args.naive_length // 64
    bmm16 = {c: chunk_matmul_peak(torch.bfloat16, count * 64 // c, c) for c in (64, 128)}
    print("bf16 batched matmul at chunk shapes: " + ", ".join(f"C={c}: {v / 1e9:.0f} GFLOP/s" for c, v in bmm16.items()),
          flush=True)
    max_len = max(args.lengths + args.contexts) + 64
    cfg = BackboneConfig(d_model=d, n_heads=args.n_heads, dropout=0.0, max_len=max_len, n_layers=1)
    flop_len = args.naive_length

    results: dict[str, dict] = {}
    for name in mixers:
        mixer = build_mixer(name, cfg, causal=True)
        r: dict = {"tps": {}, "peak": {}}
        for t in args.lengths:
            x = torch.randn(b, t, d, requires_grad=True)
            reps = 3 if t <= 2048 else 2
            sec = timed(train_step(mixer, x, ours), reps=reps)
            r["tps"][t], r["peak"][t] = b * t / sec, peak_memory(name, t, b, d, args.n_heads)
            print(f"{name:22s} T={t:5d}  {b * t / sec:9.0f} tok/s  peak {r['peak'][t] / 2**20:7.0f} MB", flush=True)
        x = torch.randn(b, flop_len, d, requires_grad=True)
        seconds = b * flop_len / r["tps"][flop_len] if flop_len in r["tps"] else timed(train_step(mixer, x, ours), 1)
        flops = matmul_flops(mixer, x, ours)
        r["flops_per_s"] = flops / seconds
        if args.bf16:
            r["bf16"] = {t: b * t / timed(train_step(mixer, torch.randn(b, t, d, requires_grad=True), ours_bf16),
                                          reps=3 if t <= 2048 else 2) for t in args.lengths}
            seconds16 = b * flop_len / r["bf16"][flop_len] if flop_len in r["bf16"] else timed(train_step(mixer, x, ours_bf16), 1)
            r["flops_per_s_bf16"] = flops / seconds16
            r["profile_bf16"] = matmul_profile(mixer, x, ours_bf16)
            print(f"{name:22s} bf16 " + ", ".join(f"T={t}: {v:.0f} tok/s" for t, v in r["bf16"].items()), flush=True)
        with naive_kernels(mixer) as swapped:
            if swapped:
                sec = timed(train_step(mixer, x, ours), reps=1, warmup=0)
                r["naive"] = b * flop_len / sec
                print(f"{name:22s} naive T={flop_len}: {r['naive']:.0f} tok/s", flush=True)
        peer = hf_peer(name, d, mixer)
        if peer is not None:
            # HF's CPU Mamba paths loop over tokens with per-step indexing, which makes their backward
            # quadratic in T (minutes at T=1024): training is compared at a short length, the forward
            # pass (prefill / inference) at the naive length.
            module, call = peer
            t_short = args.hf_train_length
            r["hf"] = {}
            for label, t, grad in (("fwd+bwd", t_short, True), ("fwd", flop_len, False)):
                xs = torch.randn(b, t, d, requires_grad=grad)
                fns = [train_step(m, xs, c) if grad else _forward(m, xs, c) for m, c in ((mixer, ours), (module, call))]
                ours_s, hf_s = (timed(f, reps=2) for f in fns)
                r["hf"][f"{label} T={t}"] = hf_s / ours_s
                print(f"{name:22s} vs HF {label} T={t}: ours {b * t / ours_s:.0f} tok/s, HF {b * t / hf_s:.0f} tok/s "
                      f"= {hf_s / ours_s:.1f}x", flush=True)
        mixer.eval()
        r["decode"] = {c: decode_latency(mixer, d, c) for c in args.contexts}
        print(f"{name:22s} decode " + ", ".join(f"{c}: {1e3 * s:.2f} ms" for c, s in r["decode"].items()), flush=True)
        results[name] = r
        del mixer
        gc.collect()

    attn = results.get("attention")
    lengths, (c_lo, c_hi) = args.lengths, (args.contexts[0], args.contexts[-1])
    header = (["mixer"] + [f"T={t} tok/s" for t in lengths] + [f"vs attn T={t}" for t in lengths]
              + [f"vs naive T={flop_len}", "vs HF"] + [f"decode ms @{c_lo}", f"@{c_hi}", "ratio"]
              + [f"peak MB T={lengths[-1]}", f"GFLOP/s T={flop_len}", "% fp32 peak"])
    rows = []
    for name, r in results.items():
        row = [name] + [f"{r['tps'][t]:,.0f}" for t in lengths]
        row += [f"{r['tps'][t] / attn['tps'][t]:.2f}x" if attn else "-" for t in lengths]
        row.append(f"{r['tps'][flop_len] / r['naive']:.0f}x" if "naive" in r and flop_len in r["tps"] else "-")
        row.append(", ".join(f"{v:.1f}x {k}" for k, v in r["hf"].items()) if r.get("hf") else "-")
        lo, hi = r["decode"][c_lo], r["decode"][c_hi]
        row += [f"{1e3 * lo:.2f}", f"{1e3 * hi:.2f}", f"{hi / lo:.2f}"]
        row += [f"{r['peak'][lengths[-1]] / 2**20:,.0f}", f"{r['flops_per_s'] / 1e9:.1f}",
                f"{100 * r['flops_per_s'] / peak32:.0f} %"]
        rows.append(row)
    table = markdown_table(header, rows)
    if args.bf16:
        header16 = (["mixer (bf16 autocast)"] + [f"T={t} tok/s" for t in lengths] + [f"vs fp32 T={t}" for t in lengths]
                    + [f"vs attn bf16 T={t}" for t in lengths] + [f"GFLOP/s T={flop_len}", "% bf16 peak"]
                    + ["batched matmuls: GFLOP/s", "% bf16 peak", "% of step", "dense matmuls: % bf16 peak", "% of step"])
        rows16 = []
        for name, r in results.items():
            row = [name] + [f"{r['bf16'][t]:,.0f}" for t in lengths]
            row += [f"{r['bf16'][t] / r['tps'][t]:.2f}x" for t in lengths]
            row += [f"{r['bf16'][t] / attn['bf16'][t]:.2f}x" if attn else "-" for t in lengths]
            row += [f"{r['flops_per_s_bf16'] / 1e9:.1f}", f"{100 * r['flops_per_s_bf16'] / peak16:.0f} %"]
            prof = r["profile_bf16"]
            (bat_flops, bat_s), (den_flops, den_s) = prof["batched"], prof["dense"]
            row += ([f"{bat_flops / bat_s / 1e9:.0f}", f"{100 * bat_flops / bat_s / peak16:.0f} %",
                     f"{100 * bat_s / prof['total_s']:.0f} %"] if bat_s else ["-"] * 3)
            row += ([f"{100 * den_flops / den_s / peak16:.0f} %", f"{100 * den_s / prof['total_s']:.0f} %"]
                    if den_s else ["-"] * 2)
            rows16.append(row)
        table += "\n\n" + markdown_table(header16, rows16)
    notes = (f"One mixer layer, batch {b}, d_model {d}, {args.n_heads} heads, fp32, forward + backward. "
             f"Matmul peak measured in the same run: fp32 {peak32 / 1e9:.0f} GFLOP/s, bf16 {peak16 / 1e9:.0f} GFLOP/s "
             f"(2048^3 matmul). The first table runs fp32; a bf16 table (--bf16) runs the same layers under bf16 autocast: "
             f"matmuls in bf16, whatever autocast keeps in fp32 (norms, softmax, reductions) in fp32, and % bf16 peak counts the same matmul FLOPs. 'vs naive' swaps the op's per-token "
             f"reference into the same layer (not for FFT convolutions, whose reference is an O(T^2) Toeplitz product); "
             f"peak MB: one training step in a fresh process, above the layer's weights and input; 'vs HF' is our layer's tokens/s over HF's at the same sizes "
             f"(HF CPU paths, same weights' shapes; forward+backward at a short length because HF's CPU backward is quadratic in T, forward alone at the naive length; rwkv6's peer is HF's RWKV-4 time mix, a simpler layer). Decode: batch 1, one "
             f"token per step after a prefill of {c_lo} / {c_hi} tokens. GFLOP/s counts matmul/conv/SDPA FLOPs only. "
             f"Batched / dense matmuls (bf16 table, T={flop_len}): torch.profiler's FLOPs and self time of bmm/baddbmm (the chunk "
             f"kernels' matmuls) and of mm/addmm (the projections), as FLOP/s against the bf16 peak and as a share of the step's "
             f"profiled time; SDPA's own kernel is in neither. The ceiling for the batched ones: a bare bf16 bmm at the chunk shapes "
             f"([b*h*T/C, C, 64] @ [.., 64, C], T={flop_len}) runs at "
             + ", ".join(f"{v / 1e9:.0f} GFLOP/s ({100 * v / peak16:.0f} % of peak) for C={c}" for c, v in bmm16.items()) + ".")
    if args.quick or args.no_record:
        print(table + "\n\n" + notes)
    else:
        record("Sequence mixers: training speed, decoding latency, memory (CPU)",
               "python benchmarks/mixers_speed.py " + " ".join(argv),
               table, notes)


if __name__ == "__main__":
    main()
