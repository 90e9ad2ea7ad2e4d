//! MP4 sample tables (being written).
