"""Ray helpers without Ray: address checks against real sockets, and init_ray's choices
against a stand-in module (the real cluster test is tests/sim/test_sweep_ray_cluster.py,
marked slow)."""

from __future__ import annotations

import socket
import sys

import pytest

from aigcsim.kernel import ray_cluster
from aigcsim.kernel.ray_cluster import check_reachable, import_ray, init_ray
from aigcsim.kernel.registry import UserInputError


@pytest.mark.parametrize("address", ["10.0.0.5", "10.0.0.5:", ":6379", "head:port", "6379"])
def test_malformed_addresses_say_what_is_expected(address: str) -> None:
    with pytest.raises(UserInputError) as err:
        check_reachable(address)
    assert "expected HOST:PORT of a Ray head node" in str(err.value)
    assert f"got '{address}'" in str(err.value)


@pytest.mark.parametrize("address", ["auto", "ray://10.0.0.5:10001"])
def test_auto_and_client_addresses_are_left_to_ray(address: str) -> None:
    check_reachable(address, timeout_s=0.01)  # no connection attempted, no error


def test_a_listening_port_is_reachable() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_reachable(f"127.0.0.1:{server.getsockname()[1]}", timeout_s=2.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_closed_port_fails_fast_with_the_start_command() -> None:
    port = free_port()
    with pytest.raises(UserInputError) as err:
        check_reachable(f"127.0.0.1:{port}", timeout_s=2.0)
    text = str(err.value)
    assert f"cannot join the Ray cluster at '127.0.0.1:{port}'" in text
    assert f"ray start --head --port={port}" in text


def test_missing_ray_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(UserInputError, match=r"pip install 'aigcsim\[scale\]'"):
        import_ray()


class FakeRay:
    """Records ``init`` calls; raises ``fail`` from ``init`` when set."""

    def __init__(self, initialized: bool = False, fail: Exception | None = None) -> None:
        self.initialized, self.fail = initialized, fail
        self.calls: list[dict[str, object]] = []

    def is_initialized(self) -> bool:
        return self.initialized

    def init(self, **kwargs: object) -> None:
        self.calls.append(kwargs)
        if self.fail is not None:
            raise self.fail


def use(monkeypatch, fake: FakeRay) -> FakeRay:
    monkeypatch.setattr(ray_cluster, "import_ray", lambda: fake)
    return fake


def test_local_instance_gets_the_worker_count(monkeypatch) -> None:
    fake = use(monkeypatch, FakeRay())
    assert init_ray(3, None) is True  # started here: the caller shuts it down
    (call,) = fake.calls
    assert call["num_cpus"] == 3 and "address" not in call
    assert call["include_dashboard"] is False


def test_running_ray_is_reused(monkeypatch) -> None:
    fake = use(monkeypatch, FakeRay(initialized=True))
    assert init_ray(3, "127.0.0.1:1") is False
    assert fake.calls == []


def test_cluster_address_is_checked_before_joining(monkeypatch) -> None:
    fake = use(monkeypatch, FakeRay())
    with pytest.raises(UserInputError, match="nothing accepts connections"):
        init_ray(2, f"127.0.0.1:{free_port()}")
    assert fake.calls == []  # Ray would have retried for minutes
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        assert init_ray(2, address) is True
    assert fake.calls[0]["address"] == address and "num_cpus" not in fake.calls[0]


def test_join_failure_gives_the_token_hint(monkeypatch) -> None:
    use(monkeypatch, FakeRay(fail=ConnectionError("auth failed")))
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(UserInputError) as err:
            init_ray(2, address)
    text = str(err.value)
    assert f"cannot join the Ray cluster at '{address}': auth failed." in text
    assert "RAY_AUTH_TOKEN" in text


def test_local_start_failure_has_no_token_hint(monkeypatch) -> None:
    use(monkeypatch, FakeRay(fail=RuntimeError("no shared memory")))
    with pytest.raises(UserInputError) as err:
        init_ray(2, None)
    assert str(err.value) == "cannot start a local Ray instance: no shared memory."
