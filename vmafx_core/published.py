"""Packages this project publishes outside the core, named in messages when one is missing.

An installed plugin says what it offers itself; only what is not installed needs naming here.
"""

#: scorer name -> the distribution that provides it
SUGGESTED_SCORERS = {"ffmpeg-metrics": "vmafx-ffmpeg-metrics"}
