//! Unit tests of the machine planner.
