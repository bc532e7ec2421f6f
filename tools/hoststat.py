# SPDX-License-Identifier: MIT
"""Host measurements from /proc for the benchmarks: percentiles, memory,
per-process and per-thread CPU."""
from pathlib import Path


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def meminfo():
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        k, v = line.split(":", 1)
        out[k] = int(v.split()[0])
    return out


def proc_status_kib(pid, keys=("VmRSS", "RssAnon", "RssFile", "RssShmem")):
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in keys:
                out[k] = int(v.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return out


def sched_threads(pid):
    """{tid: (CPU ns, times scheduled in)} for pid's threads, from
    /proc/PID/task/*/schedstat (exact, where stat's ticks are 10 ms samples).
    On this host a vCPU thread is charged for its guest's time too."""
    out = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return out
    for t in tasks:
        try:
            f = (t / "schedstat").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[int(t.name)] = (int(f[0]), int(f[2]))
    return out


def sched_delta(before, after):
    """CPU ns and switches-in between two sched_threads() samples of the same
    threads (one that came or went in between is left out)."""
    ns = ins = 0
    for tid, (run, sw) in after.items():
        if tid in before:
            ns += run - before[tid][0]
            ins += sw - before[tid][1]
    return ns, ins


def host_cpu():
    f = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    v = [int(x) for x in f]
    idle = v[3] + v[4]
    return sum(v[:8]), idle
