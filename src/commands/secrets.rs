//! `openclaw secrets reload`.
