"""Test and benchmark support: builders of real input files (no mocks)."""
