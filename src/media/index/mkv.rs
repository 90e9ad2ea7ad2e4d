//! MKV Cues (being written).
