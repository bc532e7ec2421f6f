# SPDX-License-Identifier: MIT
"""A short run of hdnic's libFuzzer harnesses (`make fuzz` runs them longer)."""
import shutil
import subprocess

import pytest

from hdvmlib import BUILD, ROOT

FUZZERS = ["fuzz_vfu_msg", "fuzz_virtq", "fuzz_vf_state", "fuzz_rx_filter"]


@pytest.fixture(scope="module")
def fuzzers():
    if not shutil.which("clang"):
        pytest.skip("clang is not installed")
    r = subprocess.run(["make", "-s", f"BUILD={BUILD}", "fuzz-build"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    if r.returncode and "fuzzer" in r.stderr and "cannot find" in r.stderr:
        pytest.skip("clang has no libFuzzer runtime (libclang-rt-dev)")
    assert r.returncode == 0, r.stdout + r.stderr
    return BUILD / "fuzz"


@pytest.mark.parametrize("name", FUZZERS)
def test_fuzzer_runs_clean(fuzzers, name, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seeds = ROOT / "tests" / "fuzz" / f"seeds-{name}"
    r = subprocess.run([str(fuzzers / name), "-max_total_time=4", "-rss_limit_mb=4096",
                        f"-artifact_prefix={tmp_path}/", str(corpus), str(seeds)],
                       capture_output=True, text=True, timeout=120)
    tail = "\n".join(r.stderr.splitlines()[-40:])
    assert r.returncode == 0, tail
    assert "Done" in r.stderr and "ERROR" not in r.stderr, tail
