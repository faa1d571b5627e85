"""Pure declarative state tables (no Temporal, no IO): what may happen to an order, and which email each step fires."""
