"""A bounded randomized fault run (bench/chaos.py): about 20 faults of every kind under
load; nothing acknowledged lost, nothing stored twice, nothing stored after only 451s.
CHAOS_FAULTS and CHAOS_SEED choose another run (the seed is printed to reproduce one)."""

from __future__ import annotations

import os
import random
import sys

from harness import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
import chaos
import pytest


@pytest.mark.timeout(900)
def test_randomized_faults_lose_nothing_and_store_nothing_twice(tmp_path):
    faults = int(os.environ.get("CHAOS_FAULTS", "20"))
    seed = int(os.environ.get("CHAOS_SEED", random.SystemRandom().randrange(1 << 30)))
    print(f"\nchaos: {faults} faults, seed {seed} (CHAOS_SEED={seed} repeats this run)")
    run = chaos.Chaos(tmp_path, seed)
    try:
        run.start()
        result = run.run(faults, max_seconds=420)
    finally:
        run.stop()
    print(
        {
            k: result[k]
            for k in ("faults", "seconds", "acknowledged", "lost", "twice", "after_451", "rfc1047")
        }
    )
    print(result["kinds"])
    assert result["faults"] >= min(faults, 10), result
    assert result["acknowledged"] > 0
    assert result["lost"] == 0 and result["twice"] == 0 and result["after_451"] == 0, result[
        "shards"
    ]
    assert result["given_up"] == 0, result["shards"]
