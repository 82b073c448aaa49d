"""Phase 1: the cell's magics -> Parameter. Pure functions of the text, no I/O."""
