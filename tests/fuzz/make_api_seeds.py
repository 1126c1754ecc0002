#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz_api into tests/fuzz/corpus_api/ (the
input format is described at the top of fuzz_api.c: configuration bytes,
then operations). Run from the checkout: python3 tests/fuzz/make_api_seeds.py
"""
import os

# Registry indices (policies/registry.c order).
FAIR = {"global_strict": 0, "round_robin": 1, "drr": 2, "wfq": 3}
ORD = {"fcfs": 0, "edf": 1, "slo_deadline": 2}
DISP = {"none": 0, "lowest_band_newest": 1, "lowest_band_oldest": 2, "most_over_share": 3}
# Index tables of fuzz_api.c.
LIM_REQ = {0: 0, 1: 3, 2: 4, 3: 5, 5: 6, 8: 7}
LIM_BYTES = {0: 0, 1: 3, 100: 4, 1000: 5, 5000: 6, 1 << 20: 7}
CEIL = {1.0: 0, 0.75: 2, 0.5: 3}


def band(prio, fair="global_strict", order="fcfs", req=0, nbytes=0, ceil=1.0, quantum=0):
    return bytes([prio & 0xFF, FAIR[fair] | ORD[order] << 4,
                  LIM_REQ[req] | LIM_BYTES[nbytes] << 3 | CEIL[ceil] << 6, quantum])


def config(shards, bands, template=None, jit=True, disp="none", gmax=(0, 0), fmax=(0, 0),
           inflight=(0, 0), pending=1, ttl=0, gc=0, batch=0, clock=1):
    b = bytes([(shards - 1) | (len(bands) - 1) << 2 | int(jit) << 4 | DISP[disp] << 5])
    for x in bands:
        b += x
    b += template if template else band(0)[1:]  # fairness/ordering, limits, quantum
    lim = lambda p: bytes([LIM_REQ[p[0]] | LIM_BYTES[p[1]] << 3])
    b += lim(gmax) + lim(fmax) + lim(inflight)
    b += bytes([(pending - 1) | ttl << 2 | gc << 4 | batch << 6])
    return b + clock.to_bytes(2, "little")


def template(fair="global_strict", order="fcfs", req=0, nbytes=0, ceil=1.0):
    return band(0, fair, order, req, nbytes, ceil)[1:]


# Operations. Flow id selectors: 0 "a", 1 "b", 2 "tenant-c", 3 "\0", 4 "\0x\0",
# 5 "\xff\xfe", 6 "", 7 NULL, 8 longest, 9 one too long. Priority selector:
# 4*i = configured band i; 2 | 4*k = the edge table; 3 then a raw byte.
# Size/TTL byte: size index | ttl index << 4; deadline index.
def submit(slot, idsel=0, prio=0, size=1, ttl=0, dl=0, handle=None):
    sel = 0 if handle is None else 1 | handle << 1
    p = bytes([prio]) if prio != 3 else b""
    return bytes([0, slot, sel, idsel]) + p + bytes([size | ttl << 4, dl])


def submit_raw_prio(slot, idsel, raw, size=1):
    return bytes([0, slot, 0, idsel, 3, raw & 0xFF, size, 0])


def hostile(slot):
    return bytes([3, slot, 0])


def cancel(slot):
    return bytes([4, slot])


def release(slot):
    return bytes([5, slot])


def poll(shard, budget_idx=0):
    return bytes([6, shard | budget_idx << 4])


POLL_ALL = bytes([8])


def clock(kind, v):
    return bytes([9, v]) if kind == 0 else bytes([10 | kind << 4, v])


def flow_get(slot, idsel, prio):
    return bytes([11, slot, idsel, prio])


def flow_put(slot):
    return bytes([12, slot])


def weight(slot, w):
    return bytes([13, slot, w])


DESTROY = bytes([0xFF])

seeds = {}
# Saturated single shard, two bands: strict priority and fcfs / edf order.
seeds["saturated_two_bands"] = config(1, [band(5), band(1, order="edf")], inflight=(1, 0)) + \
    submit(0, 0, 4) + submit(1, 1, 0) + submit(2, 0, 4) + submit(3, 2, 0, ttl=4) + \
    POLL_ALL + release(0) + poll(0) + release(1) + POLL_ALL + release(2) + POLL_ALL + \
    release(3) + POLL_ALL
# Three shards, global limit with displacement.
seeds["displacement"] = config(3, [band(9), band(2, fair="drr"), band(-3, fair="wfq")],
                               disp="lowest_band_newest", gmax=(3, 0), pending=2) + \
    submit(0, 0, 8) + submit(1, 1, 8) + submit(2, 2, 8) + submit(3, 0, 0) + submit(4, 1, 0) + \
    submit(5, 2, 4) + POLL_ALL + submit(6, 3, 0) + POLL_ALL + DESTROY
# TTLs and deadlines against the clock.
seeds["ttl_deadline"] = config(2, [band(0, order="slo_deadline")], ttl=2, inflight=(0, 100)) + \
    submit(0, 0, 0, size=3, ttl=3) + submit(1, 0, 0, size=4, dl=4) + submit(2, 1, 0, dl=6) + \
    submit(3, 1, 0, dl=7) + clock(0, 1) + poll(0) + poll(1) + clock(1, 2) + POLL_ALL + \
    release(0) + release(1) + POLL_ALL
# Flow handles, weights, puts, then GC over a huge clock jump.
seeds["handles_gc"] = config(1, [band(3, fair="round_robin")], gc=3, fmax=(2, 0)) + \
    flow_get(0, 2, 0) + flow_get(1, 4, 2 | 4 * 4) + weight(0, 4) + weight(1, 0) + \
    submit(0, 0, 0, handle=0) + submit(1, 0, 0, handle=1) + submit(2, 0, 0, handle=0) + \
    submit(3, 0, 0, handle=0) + flow_put(0) + POLL_ALL + clock(2, 1) + POLL_ALL + \
    submit(4, 1, 0) + POLL_ALL + flow_put(1) + clock(2, 3) + POLL_ALL
# Hostile calls: double submits, bad ids, releases and cancels out of turn.
seeds["hostile"] = config(2, [band(1)], jit=False, inflight=(1, 0)) + \
    hostile(7) + submit(0, 6, 0) + submit(1, 7, 0) + submit(2, 9, 0) + submit(3, 8, 0) + \
    submit(4, 0, 0, size=9) + submit(5, 0, 0, ttl=8) + submit(6, 0, 2 | 4 * 5) + \
    submit(8, 3, 0, dl=7) + submit(3, 0, 0) + release(3) + cancel(9) + poll(2) + \
    POLL_ALL + release(3) + release(3) + cancel(3) + hostile(3) + cancel(8) + cancel(8) + \
    POLL_ALL + DESTROY
# Byte limits at every level, zero-byte requests, a budgeted poll.
seeds["byte_limits"] = config(1, [band(4, nbytes=5000, req=5), band(2, nbytes=1000, ceil=0.5)],
                              gmax=(8, 1 << 20), fmax=(3, 5000), inflight=(2, 1000), batch=1) + \
    submit(0, 0, 0, size=4) + submit(1, 0, 0, size=4) + submit(2, 0, 0, size=5) + \
    submit(3, 1, 4, size=0) + submit(4, 1, 4, size=3) + submit(5, 2, 4, size=4) + \
    poll(0, 2) + release(0) + poll(0, 2) + release(1) + release(3) + POLL_ALL + cancel(5) + \
    POLL_ALL + clock(3, 5) + POLL_ALL
# Many priorities: just-in-time bands, collected and made again.
s = config(3, [band(0)], gc=1, template=template("wfq", "edf", 2, 100, 0.75))
for i in range(12):
    s += submit_raw_prio(i, i % 3, 10 * i - 50)
s += POLL_ALL + clock(1, 9) + POLL_ALL
for i in range(12):
    s += release(i)
s += POLL_ALL + clock(1, 9) + POLL_ALL
for i in range(12, 20):
    s += submit_raw_prio(i, 2, 10 * i - 50)
seeds["jit_bands"] = s + POLL_ALL

# Regression: in-flight bytes exactly at a band's ceiling (0.5 x 100) must
# hold the band back (core/dispatch.c gate_under_ceiling()).
s = config(1, [band(1, ceil=0.5)], inflight=(0, 100))
for i in range(6):
    s += submit(i, 0, 0, size=2)
seeds["ceiling_bytes_at_equality"] = s + POLL_ALL

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus_api")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
