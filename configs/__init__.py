"""reenact's presets (`*.toml`), packaged as `reenact.configs`; load one with `Config.from_preset(NAME)`."""
