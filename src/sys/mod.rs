//! OS primitives; the only place with `cfg(target_os)` besides `service::native`.
