//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod mount;
pub mod ratios;
