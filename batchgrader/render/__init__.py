"""Rich renderers: pure functions from result models to renderables, and the run board."""
