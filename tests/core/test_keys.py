from __future__ import annotations

import pytest

from byway import ConfigurationError, Keys


def test_v1_keys_match_the_by_framework_layout() -> None:
    k = Keys()
    assert k.agent_stream("research") == "byai_gateway:ctrl:agent_type:research"
    assert k.worker_stream("w1") == "byai_gateway:ctrl:worker:w1"
    assert k.session_stream("s1") == "byai_gateway:session:s1:data_stream"
    assert k.session_registry("s1") == "byai_gateway:session:s1:registry"
    assert k.task_group("g") == "byai_gateway:task_group:g"
    assert k.task_group_results("g") == "byai_gateway:task_group:g:results"
    assert k.worker_online("w1") == "byai_gateway:registry:worker:online:w1"
    assert k.agent_type_workers("t") == "byai_gateway:registry:agent_type:workers:t"
    assert k.worker_agent_types("w1") == "byai_gateway:registry:worker:agent_types:w1"
    assert k.plugin_reload_ack("r") == "byai_gateway:plugin_reload:r:ack"
    assert k.agent_configs_snapshot("x") == "byai_gateway:agent_configs_snapshot:x"


def _slot_tag(key: str) -> str:
    return key[key.index("{") + 1 : key.index("}")]


def test_v2_keys_are_prefixed_and_hash_tagged_per_id() -> None:
    k = Keys(namespace="ns", schema="v2")
    assert k.session_stream("s1") == "ns:v2:session:{s1}:data_stream"
    # what one script touches shares a slot
    assert _slot_tag(k.session_stream("s1")) == _slot_tag(k.session_registry("s1")) == "s1"
    assert _slot_tag(k.task_group("g")) == _slot_tag(k.task_group_results("g")) == "g"


def test_v2_keys_match_the_by_framework_v2_layout() -> None:
    k = Keys(schema="v2")
    assert k.agent_stream("chat") == "byai_gateway:v2:ctrl:agent_type:chat"
    assert k.worker_stream("worker-01") == "byai_gateway:v2:ctrl:worker:{worker-01}"
    assert k.session_stream("sess-abc123") == "byai_gateway:v2:session:{sess-abc123}:data_stream"
    assert k.session_registry("sess-abc123") == "byai_gateway:v2:session:{sess-abc123}:registry"
    assert k.task_group("tg-1") == "byai_gateway:v2:task_group:{tg-1}"
    assert k.task_group_results("tg-1") == "byai_gateway:v2:task_group:{tg-1}:results"
    assert k.known_workers() == "byai_gateway:v2:registry:workers"
    assert k.worker_online("worker-01") == "byai_gateway:v2:registry:worker:{worker-01}:online"
    assert (
        k.worker_agent_types("worker-01")
        == "byai_gateway:v2:registry:worker:{worker-01}:agent_types"
    )
    assert k.agent_type_workers("chat") == "byai_gateway:v2:registry:agent_type:{chat}:workers"
    assert k.plugin_reload_ack("reload-1") == "byai_gateway:v2:plugin_reload:reload-1:ack"
    assert k.agent_configs_snapshot("snap-1") == "byai_gateway:v2:agent_configs_snapshot:snap-1"


def test_v2_keys_of_one_entity_share_a_cluster_slot() -> None:
    from redis.crc import key_slot

    k = Keys(schema="v2")

    def slots(*keys: str) -> set[int]:
        return {key_slot(key.encode()) for key in keys}

    s = "sess-1"
    assert (
        len(
            slots(k.session_stream(s), k.session_registry(s), k.session_lock(s), k.session_queue(s))
        )
        == 1
    )
    assert len(slots(k.worker_online("w"), k.worker_agent_types("w"), k.worker_stream("w"))) == 1
    assert len(slots(k.agent_type_workers("t"), k.agent_type_strategy("t"))) == 1
    assert len(slots(k.session_stream("a"), k.session_stream("b"), k.session_stream("c"))) > 1


@pytest.mark.parametrize("namespace", ["", "has space", "x" * 65, "brace{"])
def test_bad_namespace_is_refused(namespace: str) -> None:
    with pytest.raises(ConfigurationError, match="namespace"):
        Keys(namespace=namespace)


def test_bad_schema_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="schema"):
        Keys(schema="v3")  # type: ignore[arg-type]
