#!/usr/bin/env python3
"""Turn bench_kernels' JSON lines (stdin or files) into the Markdown tables of bench/README.md.

    build/bench/bench_kernels | tee kernels.jsonl
    python3 bench/summarize.py kernels.jsonl
"""
import json
import sys


def load(paths):
    rows = []
    for f in [open(p) for p in paths] or [sys.stdin]:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows


def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


def main():
    rows = load(sys.argv[1:])
    by = {(r["name"], r["impl"], r.get("threads")): r for r in rows}
    threads = sorted({r["threads"] for r in rows if "threads" in r}, reverse=True)
    triad = {t: by.get(("triad", "blip2", t), {}).get("gbps") for t in threads}

    print("| case | M | K | N | threads | blip2 GFLOP/s | OpenBLAS GFLOP/s | blip2 / OpenBLAS | Eigen GFLOP/s "
          "| ratio of best runs | ratio of CPU times |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["name"] for r in rows if r["name"].startswith("gemm")):
        for t in threads:
            b, o, e = (by.get((name, impl, t)) for impl in ("blip2", "openblas", "eigen"))
            if not b:
                continue
            best = o["best_seconds"] / b["best_seconds"] if o else None
            cpu = o["cpu_seconds"] / b["cpu_seconds"] if o and "cpu_seconds" in b else None
            print(f"| {name} | {b['M']} | {b['K']} | {b['N']} | {t} | {fmt(b['gflops'])} | {fmt(o and o['gflops'])} "
                  f"| {fmt(o and o['ratio'], 2)} | {fmt(e and e['gflops'])} | {fmt(best, 2)} | {fmt(cpu, 2)} |")
    print()
    print("| case | threads | blip2 GB/s | OpenBLAS GB/s | blip2 / OpenBLAS | triad GB/s | blip2 / triad "
          "| blip2 GB/s by CPU time |")
    print("|---|---|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["name"] for r in rows if r["name"].startswith(("gemv", "softmax", "layer_norm"))):
        for t in threads:
            b, o = by.get((name, "blip2", t)), by.get((name, "openblas", t))
            if not b:
                continue
            tr = triad.get(t)
            cpu = b["gbps"] * b["seconds"] / b["cpu_seconds"] if "cpu_seconds" in b else None
            print(f"| {name} | {t} | {fmt(b['gbps'])} | {fmt(o and o['gbps'])} | {fmt(o and o['ratio'], 2)} | {fmt(tr)} "
                  f"| {fmt(b['gbps'] / tr if tr else None, 2)} | {fmt(cpu)} |")
    print()
    print("| case | threads | heads x Lq x Lk x d | ms | GFLOP/s |")
    print("|---|---|---|---|---|")
    for name in dict.fromkeys(r["name"] for r in rows if r["name"].startswith("attention")):
        for t in threads:
            b = by.get((name, "blip2", t))
            if b:
                print(f"| {name} | {t} | {b['heads']} x {b['Lq']} x {b['Lk']} x {b['d']} | {b['seconds'] * 1e3:.3f} "
                      f"| {fmt(b['gflops'])} |")


if __name__ == "__main__":
    main()
