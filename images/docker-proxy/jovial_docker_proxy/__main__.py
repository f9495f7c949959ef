"""`python -m jovial_docker_proxy`: read the settings from the environment and serve (see server.py)."""

from .server import main

main()
