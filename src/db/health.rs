//! The production guide's health check with warn and fail thresholds.
