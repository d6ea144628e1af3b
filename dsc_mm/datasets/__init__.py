"""Datasets: the procedural scene generator and dataset classes for the mini layouts."""
