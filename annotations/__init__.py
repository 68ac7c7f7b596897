"""Curated museum notes, the glossary and visitor annotations (built in its own issue; imports only `archive`)."""
