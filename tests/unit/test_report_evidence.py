"""drillbit.reports.evidence: MANIFEST of every file, chained to the previous sealed run; Ed25519 signature;
tamper detection."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from drillbit import reports
from drillbit.core.errors import ConfigError
from drillbit.reports.evidence import MANIFEST, SIGNATURE, generate_key, read_manifest, seal, verify
from tests.unit.rundirs import RunSpec, write_run_dir

DAY = 86_400.0


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built, unsealed run directory; each test works on its own copy."""
    d = write_run_dir(tmp_path_factory.mktemp("template"), RunSpec(kind="fail", run_id="run-a"))
    reports.build(d)
    return d


@pytest.fixture
def run(template: Path, tmp_path: Path) -> Path:
    d = tmp_path / "runs" / template.name
    shutil.copytree(template, d)
    return d


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("keys")
    generate_key(d / "drill.pem", d / "drill.pub")
    return d / "drill.pem", d / "drill.pub"


def _flip_byte(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if at is None else at
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_freshly_sealed_run_verifies(run: Path) -> None:
    seal(run)
    assert verify(run) == []


def test_manifest_lists_every_file_but_itself(run: Path) -> None:
    seal(run)
    files = read_manifest(run).files
    on_disk = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()} - {MANIFEST}
    assert set(files) == on_disk


FILE_KINDS = ["run.json", "events.jsonl", "journal.json", "measurements.json", "verdicts.json", "load.json",
              "requests/worker-0.parquet", "samples/availability.parquet", "samples/availability.json",
              "samples/replicas.parquet", "samples/heartbeat_readback.parquet", "report.html", "summary.json",
              "junit.xml", "summary.md"]  # fmt: skip


@pytest.mark.parametrize("name", FILE_KINDS)
def test_one_flipped_byte_is_reported_by_file(run: Path, name: str) -> None:
    seal(run)
    _flip_byte(run / name)
    problems = verify(run)
    assert len(problems) == 1 and problems[0].startswith(f"{name}: changed")


def test_a_deleted_file_is_reported_removed(run: Path) -> None:
    seal(run)
    (run / "journal.json").unlink()
    assert verify(run) == ["journal.json: removed (listed in the MANIFEST, not in the run directory)"]


def test_an_added_file_is_reported_added(run: Path) -> None:
    seal(run)
    (run / "samples" / "extra.parquet").write_bytes(b"x")
    assert verify(run) == ["samples/extra.parquet: added after sealing (not in the MANIFEST)"]


def test_every_problem_is_reported_at_once(run: Path) -> None:
    seal(run)
    _flip_byte(run / "run.json")
    (run / "summary.md").unlink()
    (run / "notes.txt").write_text("later")
    assert [p.split(":")[0] for p in verify(run)] == ["run.json", "summary.md", "notes.txt"]


def test_a_signed_run_verifies_with_its_public_key(run: Path, keys: tuple[Path, Path]) -> None:
    seal(run, key=keys[0])
    assert (run / SIGNATURE).is_file()
    assert verify(run, public_key=keys[1]) == []


def test_a_signature_from_another_key_is_bad(run: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    seal(run, key=keys[0])
    generate_key(tmp_path / "other.pem", tmp_path / "other.pub")
    problems = verify(run, public_key=tmp_path / "other.pub")
    assert len(problems) == 1 and problems[0].startswith("MANIFEST.sig: bad signature")


def test_a_corrupted_signature_is_bad(run: Path, keys: tuple[Path, Path]) -> None:
    seal(run, key=keys[0])
    _flip_byte(run / SIGNATURE, at=3)
    assert verify(run, public_key=keys[1])[0].startswith("MANIFEST.sig: bad signature")


def test_a_manifest_rewritten_to_hide_a_change_fails_the_signature(run: Path, keys: tuple[Path, Path]) -> None:
    seal(run, key=keys[0])
    (run / "verdicts.json").write_text((run / "verdicts.json").read_text().replace('"FAIL"', '"PASS"'))
    doc = json.loads((run / MANIFEST).read_text())
    import hashlib

    doc["files"]["verdicts.json"]["sha256"] = hashlib.sha256((run / "verdicts.json").read_bytes()).hexdigest()
    (run / MANIFEST).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    assert verify(run, public_key=keys[1]) == [
        "MANIFEST.sig: bad signature: MANIFEST was changed or signed by another key "
        f"(expected key {read_manifest(run).signed_by[:16]}…)"  # type: ignore[index]
    ]


def test_a_removed_signature_is_reported_when_a_key_is_given(run: Path, keys: tuple[Path, Path]) -> None:
    seal(run, key=keys[0])
    (run / SIGNATURE).unlink()
    assert verify(run, public_key=keys[1])[0].startswith("MANIFEST.sig: missing")


def test_a_removed_signature_is_reported_even_without_a_key(run: Path, keys: tuple[Path, Path]) -> None:
    seal(run, key=keys[0])
    (run / SIGNATURE).unlink()
    assert verify(run) == ["MANIFEST.sig: missing (the MANIFEST says it was signed)"]


def test_sealing_rejects_a_key_that_is_not_ed25519(run: Path, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "rsa.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))  # fmt: skip
    with pytest.raises(ConfigError, match="an Ed25519 key is needed"):
        seal(run, key=pem)


def test_verifying_an_unsealed_run_is_a_config_error(run: Path) -> None:
    with pytest.raises(ConfigError, match="never sealed"):
        verify(run)


def _runs(parent: Path, starts: dict[str, float]) -> dict[str, Path]:
    return {name: write_run_dir(parent, RunSpec(kind="pass", run_id=name, started_at=t)) for name, t in starts.items()}


def test_manifests_chain_to_the_previous_sealed_run_by_start_time(tmp_path: Path) -> None:
    # names sort the other way round from the start times: the chain must follow run.json
    runs = _runs(tmp_path, {"c-first": 1.76e9, "b-second": 1.76e9 + DAY, "a-third": 1.76e9 + 2 * DAY})
    for name in ("c-first", "b-second", "a-third"):
        seal(runs[name])
    first, second, third = (read_manifest(runs[n]) for n in ("c-first", "b-second", "a-third"))
    assert first.previous is None
    assert second.previous == {"run_id": "c-first", "dir": "c-first", "manifest_sha256": first.sha256}
    assert third.previous is not None and third.previous["manifest_sha256"] == second.sha256


def test_resealing_an_earlier_run_breaks_the_next_runs_chain(tmp_path: Path) -> None:
    runs = _runs(tmp_path, {"first": 1.76e9, "second": 1.76e9 + DAY})
    seal(runs["first"])
    seal(runs["second"])
    (runs["first"] / "verdicts.json").write_text("{}")
    seal(runs["first"])  # hides the change in the first run's own MANIFEST...
    assert verify(runs["first"]) == []
    problems = verify(runs["second"])  # ...but not from the run chained after it
    assert problems == ["MANIFEST: chain broken: previous run first's MANIFEST changed since this run was sealed"]
