"""The stack's override files say what they claim about docker-stack.yml (read as YAML, no engine)."""

from pathlib import Path

import yaml

REPO = Path(__file__).parents[2]


def networks(path: str) -> dict[str, dict]:
    return yaml.safe_load((REPO / path).read_text())["networks"]


def test_the_encrypted_overlay_file_restates_every_network_of_the_stack_with_encryption_added() -> None:
    """`docker stack deploy` replaces a network of an earlier file whole: a key left out of the
    override (the users' network's fixed name, `internal` of the Docker API's) would be lost."""
    stack, encrypted = networks("docker-stack.yml"), networks("stacks/encrypted.yml")
    assert encrypted.keys() == stack.keys()
    for name, network in encrypted.items():
        assert network["driver_opts"] == {"encrypted": "true"}, name
        assert {k: v for k, v in network.items() if k != "driver_opts"} == stack[name], name
