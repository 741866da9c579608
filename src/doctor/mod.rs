//! `openclaw doctor`: checks that detect and repair drift.
