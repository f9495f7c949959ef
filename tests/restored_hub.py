"""What JupyterHub does to spawners when a hub restarts and when a user spawns, as far as a spawner
sees it (jupyterhub/app.py init_spawners, jupyterhub/user.py spawn and stop, JupyterHub 6.1.1): the
pending flags, the recorded server, the state. For tests of the spawner without a hub process."""

from jupyterhub.objects import Server
from jupyterhub.spawner import Spawner


def record_running(spawner: Spawner) -> None:
    """The hub's database says the server runs (orm_spawner.server is set)."""
    spawner._server = Server(ip="10.0.1.5", port=8888)


async def check(spawner: Spawner) -> None:
    """init_spawners' check of a restored spawner (pending "check" from before the hub's first
    await): poll; one that is not running is stopped as User.stop does (poll again, stop() only if
    alive, the server forgotten, the state cleared)."""
    if await spawner.poll() is not None:
        spawner._check_pending, spawner._stop_pending = False, True
        if await spawner.poll() is None:
            await spawner.stop()
        spawner._server = None
        spawner.clear_state()
        spawner._stop_pending = False
    spawner._check_pending = False


async def spawn(spawner: Spawner) -> None:
    """User.spawn: the state cleared, pending "spawn" while start() runs, then recorded as running."""
    spawner.clear_state()
    spawner._spawn_pending = True
    try:
        await spawner.start()
    finally:
        spawner._spawn_pending = False
    record_running(spawner)
