"""One ComponentResource per concern, in the order DESIGN.md wires them."""
