//! blast scenario language (being written).
