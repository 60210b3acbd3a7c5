"""Pure decisions: no I/O, no clock, no Flask. Everything here is unit- and property-tested."""
