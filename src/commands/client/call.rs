//! `openclaw gateway call METHOD [--params JSON] [--expect-final] [--json]`.
//!
//! Requests least-privilege scopes for the method (upstream's table), sends `params` (`{}` when
//! none are given, as upstream), and prints the payload as JSON. A gateway error is printed as
//! `{"ok":false,"error":{"type":"gateway_request_error",…}}` with `--json` (stdout) or as
//! `gateway call failed: CODE: message` on stderr, and exits 1.
use serde_json::{Value, json};

use crate::config::paths::Paths;
use crate::error::{Error, Exit, Result};
use crate::gateway::client::ClientError;
use crate::ops::conn::ConnOptions;
use crate::ops::rpc::{self, Identity};

/// `gateway call`.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallOptions {
    /// Method name.
    pub(crate) method: String,
    /// Params as JSON.
    pub(crate) params: Option<String>,
    /// Wait for the final response of two-stage methods (agent).
    pub(crate) expect_final: bool,
    /// JSON output.
    pub(crate) json: bool,
    /// Connection.
    pub(crate) conn: ConnOptions,
}

/// Parses `--params`.
pub(crate) fn parse_params(raw: Option<&str>) -> Result<Value> {
    match raw {
        None => Ok(json!({})),
        Some(s) => serde_json::from_str(s).map_err(|e| {
            Error::Msg(format!(
                "invalid --params: {e}\nPass JSON, e.g. --params '{{\"limit\": 10}}'"
            ))
        }),
    }
}

/// Runs the command.
pub(crate) fn run(paths: &Paths, args: &CallOptions) -> Result<Exit> {
    let params = parse_params(args.params.as_deref())?;
    let target = match crate::ops::target(paths, &args.conn) {
        Ok(t) => t,
        Err(e) if args.json => return Ok(crate::ops::print_json_error(&e, None)),
        Err(e) => return Err(e),
    };
    let rt = rpc::runtime()?;
    let scopes = rpc::scopes_for(&args.method);
    let outcome = rt.block_on(async {
        let s = match rpc::connect(&target, &Identity::Cli(scopes)).await {
            Ok(s) => s,
            Err(f) => return Err(f),
        };
        let r = if args.expect_final {
            // Two-stage methods may run long; the per-call timeout bounds the final answer.
            s.client
                .call_expect_final(&args.method, Some(params), target.timeout)
                .await
        } else {
            s.client.call(&args.method, Some(params)).await
        };
        s.client.close();
        Ok(r)
    });
    let result = match outcome {
        Ok(r) => r,
        Err(f) => {
            if args.json {
                let mut err = json!({
                    "type": "gateway_connect_error", "message": f.reason(), "url": f.url,
                });
                if let Some(n) = &target.config_broken {
                    err["configError"] = n.clone().into();
                }
                crate::ops::print_json(&json!({"ok": false, "error": err}));
                eprintln!("{}", f.hint(&crate::ops::profile_flag(paths)));
                return Ok(if target.config_broken.is_some() {
                    Exit::Config
                } else {
                    Exit::Failure
                });
            }
            return Err(crate::ops::with_config_note(
                f.into_error(&crate::ops::profile_flag(paths)),
                Some(&target),
            ));
        }
    };
    crate::ops::warn_config(&target);
    match result {
        Ok(payload) => {
            crate::ops::print_json(&payload);
            Ok(Exit::Ok)
        }
        Err(ClientError::Rpc(e)) => {
            if args.json {
                crate::ops::print_json(&rpc::request_error_json(&e));
                Ok(Exit::Failure)
            } else {
                Err(Error::Msg(format!(
                    "gateway call failed: {}: {}",
                    e.code, e.message
                )))
            }
        }
        Err(e @ ClientError::Timeout(..)) if args.expect_final => Err(Error::Msg(format!(
            "gateway call {} failed: {}; raise --timeout (milliseconds, now {}) for long runs",
            args.method,
            rpc::describe(&e),
            target.timeout.as_millis()
        ))),
        Err(e) => Err(Error::Msg(format!(
            "gateway call {} failed: {} ({})",
            args.method,
            rpc::describe(&e),
            target.url
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_default_to_empty_object() {
        assert_eq!(parse_params(None).unwrap(), json!({}));
        assert_eq!(parse_params(Some("{\"a\":1}")).unwrap(), json!({"a":1}));
        let e = parse_params(Some("{a")).unwrap_err().to_string();
        assert!(e.starts_with("invalid --params"), "{e}");
    }
}
