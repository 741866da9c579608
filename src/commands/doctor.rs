//! `openclaw doctor [--repair]`.
