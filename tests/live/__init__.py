"""Tests of the living loop (live/)."""
