"""The sandbox package has no import cycle (imports inside functions included), and the
`/_sandbox` side door (`sandbox.admin`) is imported by nothing but the runner."""

from __future__ import annotations

import grimp


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("sandbox")


def _cycle(graph: grimp.ImportGraph) -> list[str] | None:
    modules = sorted(graph.modules)
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.find_modules_directly_imported_by(module)):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in modules:
        if module not in state and (found := visit(module)):
            return found
    return None


def test_sandbox_import_graph_has_no_cycle() -> None:
    assert _cycle(_graph()) is None


def test_cycle_finder_sees_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y"):
        graph.add_module(name)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    assert _cycle(graph) in (["a.x", "a.y", "a.x"], ["a.y", "a.x", "a.y"])


def test_admin_side_door_is_only_mounted_by_the_runner() -> None:
    assert _graph().find_modules_that_directly_import("sandbox.admin") == {"sandbox.runner"}


def test_services_move_casino_money_only_through_accounts() -> None:
    graph = _graph()
    for service in ("sandbox.escrow", "sandbox.faucet", "sandbox.wallet"):
        assert "sandbox.casino" not in graph.find_modules_directly_imported_by(service), service
