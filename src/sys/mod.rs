//! OS primitives; the only place with `cfg(target_os)` besides `service::native`.
//!
//! Everything here that needs `unsafe` is small, documented at the call, and allowed only in
//! this module tree (`[lints] unsafe_code = "deny"` everywhere else).

#[cfg(unix)]
pub mod unix;
