"""`unlearn-studio audit RUN`: the installed command audits a finished demo run, keeps the audit
with the run, prints JSON that scripts can read, and refuses bad input before writing anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from audited_run import audited_run

from unlearn_studio.core.project.store import Store

EXE = Path(sys.executable).with_name("unlearn-studio")


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(EXE), *args], check=False, capture_output=True, text=True, timeout=900, env=env)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    copied = audited_run(tmp_path_factory, "audit_cli")
    return copied.folder, copied.run_id


def audits(folder: Path, run_id: str) -> list:
    with Store.open(folder / "store.db", readonly=True) as store:
        return [a for a in store.artifacts(run_id) if a["kind"] == "audit"]


@pytest.mark.slow
def test_audit_prints_json_and_keeps_the_audit_with_the_run(run):
    folder, run_id = run
    result = cli("audit", run_id[:8], "--store", str(folder / "store.db"), "--attacks", "prompts,probes",
                 "--items", "6", "--samples", "2", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads(result.stdout)
    assert document["run_id"] == run_id and document["relearn"] is None
    assert document["summary"]["verdict"] in ("robust", "partly", "shallow")
    assert set(document["models"]) == {"original", "unlearned", "reference"}
    assert document["summary"]["worst_prompt"]["attack"] in [a["label"] for a in document["prompts"]["attacks"]]
    assert "prompts" in result.stderr  # progress went to stderr, the document alone to stdout
    recorded = audits(folder, run_id)
    assert [Path(a["path"]) for a in recorded] == [Path(document["path"])] and Path(document["path"]).is_file()


@pytest.mark.slow
def test_bad_input_is_refused_with_one_message_and_nothing_written(run):
    folder, run_id = run
    before = audits(folder, run_id)
    for args, words in ((("--attacks", "relearn,jailbreak"), "jailbreak"), (("--steps", "5,10"), "steps"),
                        (("--items", "1"), "items")):
        result = cli("audit", run_id, "--store", str(folder / "store.db"), *args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "What to do:" in result.stderr and words in result.stderr and "Traceback" not in result.stderr
    missing = cli("audit", "ffffffff", "--store", str(folder / "store.db"))
    assert missing.returncode == 2 and "no run ffffffff" in missing.stderr
    assert audits(folder, run_id) == before
