//! blast built-in target (being written).
