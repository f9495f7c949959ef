"""A service that already goes by the name of a user's server, but that Jovial did not make for that
server (a site's own, or one labelled for another user), is never removed: a start fails at once
saying so, and neither the start nor a stop nor a poll touches the service. Driven with a
JovialSpawner (no hub around it, as test_spawner_failure.py) on the real single-node swarm."""

import docker
import pytest

from jovial.errors import NameTaken
from jovial.spawner import JovialSpawner
from tests.hub import wait_for_no_containers_labelled
from tests.integration.conftest import remove_objects_named
from tests.integration.test_spawner_failure import make_spawner
from tests.specs import TEST_USER, singleuser_image

pytestmark = pytest.mark.swarm


def labels_of_a_service(whose: str, name: str) -> dict[str, str]:
    if whose == "the-sites-own":
        return {"com.example.site": "monitoring"}
    return {"jovial.managed": "true", "jovial.object": name, "jovial.user": "someone-else", "jovial.server": ""}


@pytest.mark.parametrize(
    ("whose", "poll_says"),
    [
        ("the-sites-own", "Your server's service was removed from the cluster"),  # not Jovial's: not even listed
        ("labelled-for-another-user", "A service named {name} exists that Jovial did not make for you"),
    ],
)
async def test_a_service_named_like_her_server_that_is_not_hers_is_never_removed_and_the_start_says_why(whose: str, poll_says: str) -> None:
    spawner = make_spawner(image="jovial/singleuser:dev")
    name = spawner.object_name
    client = docker.from_env()
    service = client.services.create(
        singleuser_image(), ["sleep", "infinity"], name=name, user="65534:65534",
        labels=labels_of_a_service(whose, name), container_labels={"jovial.test": "name-taken"},
    )
    try:
        with pytest.raises(NameTaken, match=f"A service named {name} exists that Jovial did not make for you; ask an administrator."):
            await spawner.start()
        assert client.services.get(service.id).name == name  # the start left it alone
        assert not client.configs.list(filters={"label": f"jovial.user={TEST_USER}"})  # and made nothing

        spawner.load_state({"object_id": service.id, "object_name": name})  # as if the hub thought it hers
        assert await spawner.poll() == spawner.last_end and poll_says.format(name=name) in spawner.last_end
        await spawner.stop()
        assert client.services.get(service.id).name == name  # neither the poll nor the stop removed it
    finally:
        service.remove()
        wait_for_no_containers_labelled(client, "jovial.test=name-taken")
        remove_objects_named(name)
        await (await spawner.backend()).close()  # type: ignore[attr-defined]
        JovialSpawner._backends.clear()
