"""The local stack keeps each part's port across restarts (stack/ctl.py ``choose_port``)."""
import socket

from stack import ctl
from stack.services import Mirror, free_port


def test_a_restart_keeps_the_port_a_part_had(tmp_path, capsys):
    before = free_port()
    assert ctl.choose_port(Mirror(), before, tmp_path / "env") == before
    assert capsys.readouterr().out == ""


def test_a_port_another_program_took_moves_and_says_so_in_one_line(tmp_path, capsys):
    with socket.socket() as other:  # another program listens on the part's old port
        other.bind(("127.0.0.1", 0))
        other.listen()
        before = other.getsockname()[1]
        port = ctl.choose_port(Mirror(), before, tmp_path / "env")
    assert port != before
    assert capsys.readouterr().out == (f"mirror: port {before} is taken by another program, so it moves to {port}: "
                                       f"run `source {tmp_path / 'env'}` again in the shells that use the stack\n")


def test_a_first_start_takes_the_preferred_port_when_it_is_free(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NYC_TLC_STACK_PORTS", raising=False)
    mirror = Mirror()
    port = ctl.choose_port(mirror, None, tmp_path / "env")
    assert port == mirror.preferred_port or not ctl.port_free(mirror.preferred_port)
    assert capsys.readouterr().out == ""


def test_the_tests_stacks_take_free_ports_only(tmp_path, monkeypatch):
    """Two stacks starting side by side would both see the preferred port free, and one would fail."""
    monkeypatch.setenv("NYC_TLC_STACK_PORTS", "any")
    mirror = Mirror()
    ports = {ctl.choose_port(mirror, None, tmp_path / "env") for _ in range(5)}
    assert mirror.preferred_port not in ports
    before = free_port()  # a restart still keeps its port
    assert ctl.choose_port(mirror, before, tmp_path / "env") == before
