//! blast run lifecycle (being written).
