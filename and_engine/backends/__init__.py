"""Backends (captioners, LLMs, text encoders, audio-text models, taggers), made by name through ``registry.make``."""
