//! A deterministic synthetic population: every resident is a pure function of (seed, index).
