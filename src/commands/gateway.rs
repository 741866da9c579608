//! `openclaw gateway run`: the composition root (which wings the gateway is built from).
