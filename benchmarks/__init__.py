"""Side-by-side benchmarks: redkit against raw redis-py and peer libraries.

Run with ``python -m benchmarks [--quick] [--url URL]`` (``make bench``). Not a test suite:
nothing here is collected by pytest.
"""
