"""Data files shipped with the app: the built-in demo world and models, icons, presets."""
