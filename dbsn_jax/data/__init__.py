"""Image sources and the grain input pipeline."""
