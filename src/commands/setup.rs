//! `openclaw setup` and `openclaw gateway auth-token`.
