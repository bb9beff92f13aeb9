"""Shared test setup. Fixture modules register here; append `pytest_plugins += [...]` lines."""
pytest_plugins = ["tests.fixtures_cloud"]
pytest_plugins += ["tests.fixtures_core"]
# --- offline cockpit (presets, catalog, image, local runs, CLI) ---
pytest_plugins += ["tests.fixtures_cockpit"]
