"""The committed generated code is what the pinned generator makes of protos/."""

import filecmp
import importlib.metadata
import os
import subprocess

import pytest
from harness import ROOT


def test_generated_code_is_up_to_date(tmp_path):
    try:
        version = importlib.metadata.version("grpcio-tools")
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version != "1.85.1":
        pytest.fail(
            f"grpcio-tools==1.85.1 is needed to check generated code (have {version}); "
            "it is in the test extras"
        )
    subprocess.run([os.path.join(ROOT, "scripts", "gen_protos.sh"), str(tmp_path)], check=True)
    generated = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert generated
    committed = os.path.join(ROOT, "mailnode", "proto")
    for rel in generated:
        assert filecmp.cmp(tmp_path / rel, os.path.join(ROOT, rel), shallow=False), (
            f"{rel} differs from the generator's output: run scripts/gen_protos.sh"
        )
    names = {os.path.basename(r) for r in generated}
    on_disk = {
        n for n in os.listdir(committed) if n.endswith((".py", ".pyi")) and n != "__init__.py"
    }
    assert on_disk == names
