"""``workbench serve --tls-cert --tls-key``: the real server over HTTPS, driven by Debian's chromium,
and the refusals of a certificate and key that would not serve."""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import ssl
import subprocess
import urllib.request
from pathlib import Path

import _demo_store
import pytest
from _demo_store import run_cli
from _server import _free_port, serving
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.sync_api import expect, sync_playwright
from test_browser import CHROMIUM, CHROMIUM_ARGS, UI_TIMEOUT, _settled
from test_cli import _assert_clean_failure

USER, PASSWORD = "tess", "tess-tls-password"


def _self_signed(folder: Path, stem: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its unencrypted key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / f"{stem}-cert.pem", folder / f"{stem}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, dict, bytes] | None:
    """Status, headers and body of a GET; None when no HTTP answer comes back."""
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    except (OSError, http.client.HTTPException):
        return None


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = _self_signed(folder, "server")
    store = folder / "workbench.duckdb"
    for args in (("init", "--store", store),
                 ("users", "add", USER, "--role", "reviewer", "--password", PASSWORD, "--store", store)):
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
    # Trust exactly this certificate: the health check also proves it is the one being served.
    trust = ssl.create_default_context(cafile=str(cert))

    def health(url):  # over https, trusting only this certificate
        got = _get(f"{url}/_stcore/health", trust)
        return got[2] if got else None

    log_path = folder / "serve.log"
    with serving(store, log_path, "--tls-cert", str(cert), "--tls-key", str(key), scheme="https",
                 health=health) as (url, port):
        yield url, port, trust, _get(f"{url}/_stcore/health", trust), log_path


@pytest.mark.browser
def test_serve_over_tls_in_a_browser(tls_server):
    url, port, _, _, log_path = tls_server
    assert f"Dashboard on https://127.0.0.1:{port}" in log_path.read_text()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(ignore_https_errors=True)  # self-signed: not in chromium's trust store
            page = context.new_page()
            page.set_default_timeout(UI_TIMEOUT)
            page.goto(url + "/")
            assert page.evaluate("location.protocol") == "https:"
            _settled(page)
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            page.get_by_role("textbox", name="User name").fill(USER)
            page.get_by_role("textbox", name="Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            _settled(page)
            expect(page.get_by_text(f"Signed in as {USER}")).to_be_visible()
            expect(page.get_by_role("heading", name="Workbench")).to_be_visible()
            assert page.url.startswith(f"https://127.0.0.1:{port}/")

            cookies = context.cookies()
            assert "_streamlit_xsrf" in {c["name"] for c in cookies}, cookies  # XSRF protection is on
            insecure = [c["name"] for c in cookies if not c["secure"]]
            assert not insecure, f"cookies a plain-http request would carry: {insecure}"
        finally:
            browser.close()


def test_cookie_is_marked_secure_by_the_server(tls_server):
    """The Set-Cookie header itself, not only what chromium kept of it."""
    _, _, _, (status, headers, _), _ = tls_server
    assert status == 200
    set_cookie = headers.get("set-cookie") or headers.get("Set-Cookie") or ""
    assert set_cookie.startswith("_streamlit_xsrf="), headers
    assert "secure" in [part.strip().lower() for part in set_cookie.split(";")], set_cookie


def test_plain_http_is_not_served(tls_server):
    _, port, trust, _, _ = tls_server
    for path in ("/", "/_stcore/health"):
        answer = _get(f"http://127.0.0.1:{port}{path}")
        assert answer is None or answer[0] != 200, answer
    # ... while the same port still answers over https (the refusal above is not a dead server).
    assert _get(f"https://127.0.0.1:{port}/_stcore/health", trust)[2] == b"ok"


# -- refusals: before Streamlit starts, and before any store is created ---------------------

@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    return _self_signed(folder, "a"), _self_signed(folder, "b")


def _serve(store: Path, *tls_args) -> subprocess.CompletedProcess:
    return run_cli("serve", "--store", store, "--port", _free_port(), *tls_args, timeout=30)


def _one_line_failure(result, store: Path, *needles: str) -> str:
    err = _assert_clean_failure(result, *needles)
    assert len(err.strip().splitlines()) == 1, err
    assert "Dashboard on" not in result.stdout  # refused before Streamlit was started
    assert not store.exists()
    return err


def test_refuses_cert_without_key(tmp_path, pairs):
    (cert, _), _ = pairs
    store = tmp_path / "s.duckdb"
    _one_line_failure(_serve(store, "--tls-cert", cert), store, "--tls-cert", "--tls-key")


def test_refuses_missing_key_file(tmp_path, pairs):
    (cert, _), _ = pairs
    store, missing = tmp_path / "s.duckdb", tmp_path / "nowhere" / "key.pem"
    err = _one_line_failure(_serve(store, "--tls-cert", cert, "--tls-key", missing), store, str(missing))
    assert "No such file" in err


def test_refuses_a_key_of_another_certificate(tmp_path, pairs):
    (cert_a, _), (_, key_b) = pairs
    store = tmp_path / "s.duckdb"
    err = _one_line_failure(_serve(store, "--tls-cert", cert_a, "--tls-key", key_b), store, str(cert_a), str(key_b))
    assert "does not belong to the certificate" in err


def test_refuses_a_file_that_is_not_pem(tmp_path, pairs):
    (cert, _), _ = pairs
    store, junk = tmp_path / "s.duckdb", tmp_path / "junk.pem"
    junk.write_text("not a key\n")
    err = _one_line_failure(_serve(store, "--tls-cert", cert, "--tls-key", junk), store, str(junk))
    assert "not a PEM certificate" in err


def test_refuses_a_passphrase_key_without_prompting(tmp_path, pairs):
    (cert, key), _ = pairs
    store, locked = tmp_path / "s.duckdb", tmp_path / "locked.pem"
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    locked.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.BestAvailableEncryption(b"passphrase")))
    err = _one_line_failure(_serve(store, "--tls-cert", cert, "--tls-key", locked), store, str(locked))
    assert "passphrase" in err


def test_tls_options_read_from_the_environment(tmp_path, pairs):
    """WORKBENCH_TLS_CERT / WORKBENCH_TLS_KEY are the defaults: a mismatched pair there is refused too."""
    (cert_a, _), (_, key_b) = pairs
    store = tmp_path / "s.duckdb"
    result = subprocess.run(_demo_store.cli_args("serve", "--store", store, "--port", _free_port()),
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, cwd=tmp_path,
                            env=_demo_store.cli_env(WORKBENCH_TLS_CERT=str(cert_a), WORKBENCH_TLS_KEY=str(key_b)))
    _one_line_failure(result, store, str(cert_a), str(key_b), "does not belong to the certificate")
