"""Port selection for the sandbox: automatic ports are free and distinct; fixed ones are checked."""

import socket

import pytest

from drillbit.targets.sandbox.procs import PortInUse, free_ports, port_in_use


def test_automatic_ports_are_distinct_and_free() -> None:
    ports = free_ports([0] * 8)
    assert len(set(ports)) == 8
    assert not any(port_in_use(p) for p in ports)


def test_a_fixed_port_in_use_is_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        assert port_in_use(taken)
        with pytest.raises(PortInUse) as exc:
            free_ports([0, taken])
        assert exc.value.port == taken


def test_a_fixed_free_port_is_kept() -> None:
    (port,) = free_ports([0])
    assert free_ports([port, 0])[0] == port
