"""DreamGen Bench: judges of dreamed videos (instruction following, physics alignment) and their validity."""
