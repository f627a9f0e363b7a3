"""Figures of the study (matplotlib/seaborn, headless)."""
