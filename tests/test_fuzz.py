"""A short run of the fuzzer (tools/fuzz.py), which makes its calls in a
child process of its own, so that even a crash fails only this test."""
import os
import re

import pytest

from rnn_util import run_python

FUZZ = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "tools", "fuzz.py")


@pytest.mark.skipif(not os.path.exists(FUZZ),
                    reason="tools/fuzz.py is not there (not a source tree)")
def test_fuzz_smoke(tmp_path):
    proc = run_python([FUZZ, "--calls", "400", "--seed", "1"], cwd=tmp_path,
                      timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = re.search(r"calls: 400  valid: (\d+)  invalid: (\d+)  "
                        r"failures: 0", proc.stdout)
    assert summary, proc.stdout[-3000:]
    valid, invalid = map(int, summary.groups())
    assert valid + invalid == 400 and valid > 100 and invalid > 100
