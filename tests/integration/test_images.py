"""The single-user images leave out what would cost every user at every start (see their
Dockerfiles): aiodns (a 600 s DNS cache that outlives hub restarts), rfc3987-syntax (a grammar
built at import: more than half of a start's CPU) and the language-server extension (a search
for language servers the image does not have). Each image is run once with the Docker engine."""

import json

import docker
import pytest

pytestmark = pytest.mark.swarm

CHECK = """
import importlib.util, json, subprocess
missing = [m for m in ("aiodns", "rfc3987_syntax", "lark") if importlib.util.find_spec(m) is None]
listed = subprocess.run(["jupyter", "server", "extension", "list"], capture_output=True, text=True)
enabled = [line.split()[0] for line in (listed.stdout + listed.stderr).splitlines() if "enabled" in line and "OK" not in line]
print(json.dumps({"missing": missing, "enabled": enabled}))
"""


@pytest.mark.parametrize("image", ["jovial/singleuser:dev", "jovial/astro:dev"])
def test_the_image_leaves_out_what_would_slow_every_start(image: str) -> None:
    output = docker.from_env().containers.run(image, ["python", "-c", CHECK], user="1000:1000", remove=True)
    found = json.loads(output.decode().strip().splitlines()[-1])
    assert found["missing"] == ["aiodns", "rfc3987_syntax", "lark"]
    assert "jupyterlab" in found["enabled"] and "jupyter_lsp" not in found["enabled"], found
