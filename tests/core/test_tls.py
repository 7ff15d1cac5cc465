"""A worker process and a client over TLS with client certificates: a local redis-server
with ``--tls-auth-clients yes`` and certificates made for this test with ``openssl``."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from byway import GatewayClient, RedisSettings
from byway.errors import ConfigurationError
from tests.conftest import free_port, spawn_worker, stop_process, wait_online

pytestmark = [pytest.mark.redis, pytest.mark.standalone]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _make_certificates(d: Path) -> None:
    """ca.crt; server.crt/key for 127.0.0.1 and localhost; client.crt/key signed by the CA."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
             "-subj", "/CN=byway test CA", cwd=d)  # fmt: skip
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
    )
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who in ("server", "client"):
        _openssl("req", "-new", *ec, "-keyout", f"{who}.key", "-out", f"{who}.csr",
                 "-subj", f"/CN=byway test {who}", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{who}.crt", "-days", "1",
                 "-extfile", f"{who}.ext", cwd=d)  # fmt: skip


def _tls_client(port: int, d: Path, *, cert: bool = True) -> redis.Redis:
    extra = {"ssl_certfile": str(d / "client.crt"), "ssl_keyfile": str(d / "client.key")}
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        ssl=True,
        ssl_ca_certs=str(d / "ca.crt"),
        socket_connect_timeout=2,
        retry=Retry(NoBackoff(), 0),  # a refusal is final
        **(extra if cert else {}),
    )


def _redis_servers() -> list[str]:
    """Every redis-server on PATH (a virtualenv's may be the embedded 6.2, built without TLS)."""
    found = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = shutil.which("redis-server", path=directory)
        if candidate and os.path.realpath(candidate) not in map(os.path.realpath, found):
            found.append(candidate)
    return found


def _start(binary: str, d: Path, port: int) -> subprocess.Popen[bytes] | None:
    """``binary`` serving TLS on ``port``, or None when this build has no TLS."""
    proc = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(d / "server.crt"), "--tls-key-file", str(d / "server.key"),
         "--tls-ca-cert-file", str(d / "ca.crt"), "--tls-auth-clients", "yes",
         "--save", "", "--appendonly", "no", "--dir", str(d)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            if "tls" in out.lower():
                return None
            raise RuntimeError(f"{binary} with TLS did not start: {out[-500:]}")
        client = _tls_client(port, d)
        try:
            if client.ping():
                return proc
        except RedisConnectionError:
            pass
        finally:
            client.close()
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{binary} with TLS did not answer in 10 s")
        time.sleep(0.05)


@contextlib.contextmanager
def _tls_redis(d: Path) -> Iterator[int]:
    """A redis-server that speaks TLS only and wants a client certificate; its port."""
    binaries = _redis_servers()
    if not binaries or shutil.which("openssl") is None:
        pytest.skip("needs redis-server and openssl on PATH")
    _make_certificates(d)
    port = free_port()
    proc = next((p for p in (_start(b, d, port) for b in binaries) if p is not None), None)
    if proc is None:
        pytest.skip(f"no redis-server on PATH was built with TLS: {', '.join(binaries)}")
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_a_worker_and_a_client_run_a_task_over_tls_with_client_certificates(
    tmp_path: Path, namespace: str
) -> None:
    with _tls_redis(tmp_path) as port:
        # a client without a certificate is turned away: the server checks clients
        with pytest.raises(RedisConnectionError):
            _tls_client(port, tmp_path, cert=False).ping()
        # the worker: certificates from the environment (BYWAY_REDIS_TLS_*)
        tls_env = {
            "BYWAY_REDIS_TLS_CA": str(tmp_path / "ca.crt"),
            "BYWAY_REDIS_TLS_CERT": str(tmp_path / "client.crt"),
            "BYWAY_REDIS_TLS_KEY": str(tmp_path / "client.key"),
        }
        url = f"rediss://127.0.0.1:{port}/0"
        worker = spawn_worker(
            "tests.agents.basic:echo",
            RedisSettings(url=url, namespace=namespace),
            worker_id="tls-worker",
            env=tls_env,
        )
        try:
            # the client: certificates as redis-py's URL query parameters
            query = (
                f"ssl_ca_certs={tmp_path / 'ca.crt'}&ssl_certfile={tmp_path / 'client.crt'}"
                f"&ssl_keyfile={tmp_path / 'client.key'}"
            )
            async with GatewayClient.from_url(f"{url}?{query}", namespace=namespace) as client:
                await wait_online(client, "echo")
                sent = await client.send_message("echo", "tls-session", "sealed and delivered")
                final = await client.wait_for_final("tls-session", sent.message_id, timeout=20)
        finally:
            assert stop_process(worker) == 0
    assert final.data["status"] == "COMPLETED"
    assert final.data["content"] == "sealed and delivered"
    assert final.data["reply_data"]["worker_id"] == "tls-worker"


def test_tls_files_are_checked_where_they_are_set(tmp_path: Path) -> None:
    pem = tmp_path / "ca.crt"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ConfigurationError, match="tls_ca: TLS files need a rediss:// URL"):
        RedisSettings(url="redis://127.0.0.1:6379", tls_ca=str(pem))
    with pytest.raises(ConfigurationError, match="tls_key: expected a PEM file"):
        RedisSettings(url="rediss://127.0.0.1:6380", tls_key=str(tmp_path / "missing.key"))
    settings = RedisSettings(url="rediss://127.0.0.1:6380", tls_ca=str(pem))
    assert settings.tls_ca == str(pem)
