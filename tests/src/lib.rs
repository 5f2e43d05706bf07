//! Integration tests of the ctx workspace (no library code).
