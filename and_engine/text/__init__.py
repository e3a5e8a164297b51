"""Text helpers: prompt templates, LLM answer cleaning, acoustic word lists, the rule LLM's sentences, words."""
