"""The gateway's view of the settings: `Settings` lives in the top-level `config` module, which
neither `bot` nor `store` owns (the store reads it too); this re-export keeps `bot.settings`
imports working."""

from config import ROOT, Settings, get_settings

__all__ = ["ROOT", "Settings", "get_settings"]
