"""Phase 2: the cell's code -> something the backend can run."""
