from __future__ import annotations

import subprocess
import sys

import pytest
import redis

from byway import ConfigurationError, RedisSettings, embedded


def test_urls_are_validated() -> None:
    for url in ("redis://localhost:6379/0", "rediss://u:p@h:6380", "unix:///tmp/r.sock"):
        assert RedisSettings(url=url).url == url
    with pytest.raises(ConfigurationError, match="redis_url"):
        RedisSettings(url="http://localhost")
    with pytest.raises(ConfigurationError, match="max_connections"):
        RedisSettings(max_connections=1)


def test_password_is_hidden_in_descriptions() -> None:
    s = RedisSettings(url="redis://alice:s3cret@cache:6379/0")
    assert "s3cret" not in s.describe() and "alice" in s.describe()


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYWAY_REDIS_URL", "redis://h:1/2")
    monkeypatch.setenv("BYWAY_NAMESPACE", "team")
    monkeypatch.setenv("BYWAY_KEY_SCHEMA", "v2")
    monkeypatch.setenv("BYAI_REDIS_MAX_CONNECTIONS", "9")
    s = RedisSettings.from_env()
    assert (s.url, s.namespace, s.schema, s.max_connections) == ("redis://h:1/2", "team", "v2", 9)
    assert s.keys.session_stream("x") == "team:v2:session:{x}:data_stream"
    monkeypatch.setenv("BYAI_REDIS_MAX_CONNECTIONS", "many")
    with pytest.raises(ConfigurationError, match="BYAI_REDIS_MAX_CONNECTIONS"):
        RedisSettings.from_env()


async def test_acl_user_and_password_reach_redis(redis_url: str, namespace: str) -> None:
    if not redis_url.startswith("redis://"):
        pytest.skip("needs a TCP Redis")
    admin = redis.Redis.from_url(redis_url)
    user = f"{namespace}-user"
    admin.acl_setuser(
        user, enabled=True, passwords=["+pw-123"], keys=[f"{namespace}:*"], commands=["+@all"]
    )
    try:
        host = redis_url.split("//", 1)[1]
        settings = RedisSettings(url=f"redis://{user}:pw-123@{host}", namespace=namespace)
        client = settings.client()
        assert await client.set(f"{namespace}:probe", b"1")
        assert await client.acl_whoami() in (user, user.encode())
        await client.delete(f"{namespace}:probe")
        await client.aclose()
    finally:
        admin.acl_deluser(user)


def test_embedded_redis_is_started_once_and_shared(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "emb"
    monkeypatch.setenv("BYWAY_EMBEDDED_DIR", str(directory))
    try:
        # two processes race to start it; both get the same server
        code = (
            "from byway.embedded import ensure_embedded_redis as e; import redis;"
            "u=e(); r=redis.Redis.from_url(u); r.incr('starts'); print(u, r.info('server')['process_id'])"
        )
        procs = [
            subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=60)[0].split() for p in procs]
        assert all(p.returncode == 0 for p in procs)
        assert outs[0] == outs[1]  # same URL, same server pid
        url = embedded.ensure_embedded_redis()
        assert url == f"unix://{directory / 'redis.sock'}"
        r = redis.Redis.from_url(url)
        assert int(r.get("starts")) == 2
        assert r.config_get("appendonly")["appendonly"] == "yes"
        assert RedisSettings(url=None).resolved_url() == url
    finally:
        assert embedded.stop_embedded_redis()
    assert not embedded.stop_embedded_redis()
