"""Artifacts encrypted at rest with AES-256-GCM when a key is configured; every read checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from sklearn.linear_model import LogisticRegression

import workbench as wb
from workbench.store import artifacts, keys

KEY = "a1" * 32
OTHER_KEY = "b2" * 32


@pytest.fixture
def keyed(monkeypatch):
    monkeypatch.setenv("WORKBENCH_ARTIFACT_KEY", KEY)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("??/*") if len(p.name) == 64)


def _model_and_data(seed=0):
    rng = np.random.default_rng(seed)
    X = pl.DataFrame({"income": rng.normal(50, 10, 400), "debt": rng.normal(10, 3, 400)})
    y = (X["debt"].to_numpy() * 3 + rng.normal(0, 5, 400) > X["income"].to_numpy() * 0.6).astype(int)
    return LogisticRegression().fit(X.to_numpy(), y), X, y


def test_models_explanations_and_prediction_logs_are_encrypted_and_read_back(ws, keyed, store_path):
    model, X, y = _model_and_data()
    mv = ws.register_model(model, "risk")
    ws.explain(mv, X, max_rows=100)
    logs = X.head(50).with_columns(pl.Series("prediction", model.predict_proba(X.head(50).to_numpy())[:, 1]),
                                   pl.lit("2026-01-05T10:00:00").str.to_datetime().alias("timestamp"))
    ws.log_predictions(mv, logs)
    ws.log_reference(mv, X)
    root = ws.store.artifact_root
    files = _files(root)
    assert len(files) >= 4  # model, SHAP table, prediction batch, reference batch
    for path in files:
        head = path.read_bytes()
        assert head.startswith(artifacts.MAGIC), path
        assert b"PAR1" not in head and b"sklearn" not in head  # no Parquet or pickle in the clear
    # everything reads back through the checks
    loaded = ws.load_model("risk", 1)
    assert np.allclose(loaded.predict_proba(X.to_numpy()), model.predict_proba(X.to_numpy()))
    summary, table = ws.evidence_detail(ws.evidence("risk")["id"][0])
    assert table.height == 100
    report = ws.monitor(mv, "1d", alerts=False)
    assert report.windows["rows"].sum() == 50


def test_the_key_is_never_written_to_the_store_or_the_artifact_folder(ws, keyed, store_path):
    model, X, _ = _model_and_data()
    ws.register_model(model, "risk")
    ws.flush()
    raw = bytes.fromhex(KEY)
    files = _files(ws.store.artifact_root) + ([] if isinstance(store_path, str) else [store_path])  # str: a URL
    for path in files:
        data = path.read_bytes()
        assert KEY.encode() not in data and raw not in data and KEY.upper().encode() not in data, path
    from sqlmodel import SQLModel

    for table in SQLModel.metadata.tables:  # every table, on either backend
        text = ws.ctx.read(f"select * from {table}").write_csv()
        assert KEY not in text.lower() and raw.decode("latin-1") not in text, table


@settings(max_examples=60, deadline=None)
@given(size=hs.one_of(hs.integers(0, 300), hs.sampled_from([63, 64, 65, 127, 128, 129, 192])))
def test_any_length_round_trips_across_chunk_boundaries(tmp_path_factory, size):
    root = tmp_path_factory.mktemp("a")
    data = os.urandom(size)
    os.environ["WORKBENCH_ARTIFACT_KEY"] = KEY
    old, artifacts.CHUNK = artifacts.CHUNK, 64  # small chunks: many boundaries in few bytes
    try:
        digest, n = artifacts.put_bytes(root, data)
        assert n == size and artifacts.get_bytes(root, digest) == data
        sealed = artifacts.path_for(root, digest).read_bytes()
        chunks = max(1, -(-size // 64))
        assert len(sealed) == artifacts._HEADER + size + 16 * chunks
    finally:
        artifacts.CHUNK = old
        del os.environ["WORKBENCH_ARTIFACT_KEY"]


@pytest.mark.parametrize("damage", ["flip a byte", "drop the last chunk", "drop a middle chunk", "swap chunks",
                                    "another file's content", "change the key id"])
def test_a_changed_encrypted_file_is_refused(tmp_path, keyed, monkeypatch, damage):
    monkeypatch.setattr(artifacts, "CHUNK", 64)
    data, other = os.urandom(64 * 3 + 10), os.urandom(64 * 3 + 10)
    digest, _ = artifacts.put_bytes(tmp_path, data)
    other_digest, _ = artifacts.put_bytes(tmp_path, other)
    path = artifacts.path_for(tmp_path, digest)
    sealed = bytearray(path.read_bytes())
    h, c = artifacts._HEADER, 64 + 16
    if damage == "flip a byte":
        sealed[h + 5] ^= 1
    elif damage == "drop the last chunk":
        sealed = sealed[:h + 3 * c]
    elif damage == "drop a middle chunk":
        sealed = sealed[:h + c] + sealed[h + 2 * c:]
    elif damage == "swap chunks":
        sealed = sealed[:h] + sealed[h + c:h + 2 * c] + sealed[h:h + c] + sealed[h + 2 * c:]
    elif damage == "another file's content":  # a valid encrypted file, under the wrong address
        sealed = bytearray(artifacts.path_for(tmp_path, other_digest).read_bytes())
    else:
        sealed[len(artifacts.MAGIC)] ^= 1
    path.write_bytes(bytes(sealed))
    error = wb.KeyUnavailableError if damage == "change the key id" else wb.IntegrityError
    with pytest.raises(error) as exc:
        artifacts.get_bytes(tmp_path, digest)
    assert str(path) in str(exc.value)


def test_a_missing_or_different_key_is_named_without_revealing_any_key(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_ARTIFACT_KEY", KEY)
    digest, _ = artifacts.put_bytes(tmp_path, b"model bytes")
    monkeypatch.delenv("WORKBENCH_ARTIFACT_KEY")
    with pytest.raises(wb.KeyUnavailableError, match="WORKBENCH_ARTIFACT_KEY"):
        artifacts.get_bytes(tmp_path, digest)
    monkeypatch.setenv("WORKBENCH_ARTIFACT_KEY", OTHER_KEY)
    with pytest.raises(wb.KeyUnavailableError, match="another key") as exc:
        artifacts.get_bytes(tmp_path, digest)
    assert KEY not in str(exc.value) and OTHER_KEY not in str(exc.value)
    monkeypatch.setenv("WORKBENCH_ARTIFACT_KEY", "not-a-key-" + KEY[:20])
    with pytest.raises(wb.ValidationError, match=r"\$WORKBENCH_ARTIFACT_KEY is not a 32-byte key") as exc:
        artifacts.get_bytes(tmp_path, digest)
    assert KEY[:20] not in str(exc.value)


def test_the_key_may_come_from_a_file(tmp_path, monkeypatch):
    key_file = tmp_path / "artifact.key"
    subprocess.run([sys.executable, "-m", "workbench.cli", "keys", "new", "--out", str(key_file)], check=True,
                   capture_output=True)
    assert key_file.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("WORKBENCH_ARTIFACT_KEY_FILE", str(key_file))
    assert keys.artifact_key() == bytes.fromhex(key_file.read_text().strip())
    digest, _ = artifacts.put_bytes(tmp_path / "root", b"x" * 10)
    assert artifacts.get_bytes(tmp_path / "root", digest) == b"x" * 10
    again = subprocess.run([sys.executable, "-m", "workbench.cli", "keys", "new", "--out", str(key_file)],
                           capture_output=True, text=True)
    assert again.returncode == 1 and "never overwritten" in again.stderr
    monkeypatch.setenv("WORKBENCH_ARTIFACT_KEY_FILE", str(tmp_path / "nope.key"))
    with pytest.raises(wb.ValidationError, match="nope.key, which cannot be read"):
        keys.artifact_key()


def test_a_store_in_the_clear_is_encrypted_in_place_and_still_reads(ws, store_path, monkeypatch):
    model, X, _ = _model_and_data()
    mv = ws.register_model(model, "risk")
    ws.explain(mv, X, max_rows=50)
    root = ws.store.artifact_root
    assert not any(artifacts.is_encrypted(p) for p in _files(root))
    env = dict(os.environ, WORKBENCH_ARTIFACT_KEY=KEY)
    ws.flush()
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "artifacts", "encrypt", "--store", str(store_path)],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    n = len(_files(root))
    assert f"Encrypted {n} file(s); 0 already encrypted" in out.stdout
    assert all(artifacts.is_encrypted(p) for p in _files(root))
    monkeypatch.setenv("WORKBENCH_ARTIFACT_KEY", KEY)
    assert ws.load_model("risk", 1).coef_.tolist() == model.coef_.tolist()
    assert ws.evidence_detail(ws.evidence("risk")["id"][0])[1].height == 50
    # without a key it says how to fix it
    monkeypatch.delenv("WORKBENCH_ARTIFACT_KEY")
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "artifacts", "encrypt", "--store", str(store_path)],
                         capture_output=True, text=True, env={k: v for k, v in os.environ.items()})
    assert out.returncode == 1 and "No artifact key is configured" in out.stderr


def test_writing_with_a_key_seals_a_file_already_stored_in_the_clear(tmp_path, monkeypatch):
    digest, _ = artifacts.put_bytes(tmp_path, b"same content")
    assert not artifacts.is_encrypted(artifacts.path_for(tmp_path, digest))
    monkeypatch.setenv("WORKBENCH_ARTIFACT_KEY", KEY)
    assert artifacts.put_bytes(tmp_path, b"same content")[0] == digest
    assert artifacts.is_encrypted(artifacts.path_for(tmp_path, digest))
    assert artifacts.get_bytes(tmp_path, digest) == b"same content"
