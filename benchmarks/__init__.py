"""Benchmarks: Jovial side by side with stock dockerspawner.SwarmSpawner and a bare Swarm service.

`benchmarks/run` deploys the stock hub next to Jovial's and runs `benchmarks.harness` in a
container on the overlay networks; see the README ("Benchmarks") for what is measured.
"""
