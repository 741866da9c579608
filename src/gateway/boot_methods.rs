//! The Control UI's boot calls for features this gateway does not have (control-ui.md §3),
//! answered with upstream's shapes for "nothing here": no update runs or restart sentinel, no
//! Control UI plugins, no pending approvals or questions, no plugin surfaces, no per-user
//! preference store. Scopes as upstream's method table.
// ErrorShape is the wire error; handlers return it by value on purpose.
#![allow(clippy::result_large_err)]
use serde_json::{Value, json};

use super::methods::{Ctx, MethodTable, ScopeRule};
use super::protocol::{ErrorShape, Schema, scopes, validate_params};

/// Upstream's scope for `question.*` (not in the kernel's scope list: only this file needs it).
const QUESTIONS: &str = "operator.questions";

fn check(ctx: &Ctx, method: &str, schema: &Schema) -> Result<Value, ErrorShape> {
    let p = ctx.params.clone().unwrap_or_else(|| json!({}));
    validate_params(schema, &p)
        .map_err(|m| ErrorShape::invalid(format!("invalid {method} params: {m}")))?;
    Ok(p)
}

fn closed(props: Vec<(&'static str, Schema)>) -> Schema {
    Schema::Object {
        props,
        required: &[],
        closed: true,
    }
}

/// The catalog revision upstream computes for an empty catalog (sha256 of its JSON).
fn empty_catalog_revision() -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(br#"{"plugins":[],"diagnostics":[]}"#))
}

/// Adds the boot methods.
pub(crate) fn register(t: &mut MethodTable) {
    t.register(
        "update.status",
        ScopeRule::Fixed(scopes::ADMIN),
        |ctx: Ctx| async move {
            check(
                &ctx,
                "update.status",
                &closed(vec![("refreshCheckout", Schema::Bool)]),
            )?;
            // No self-update here: no sentinel, no run history, nothing available.
            Ok(json!({"sentinel": null, "updateAvailable": null}))
        },
    );
    t.register(
        "plugins.controlUi.list",
        ScopeRule::Fixed(scopes::READ),
        |ctx: Ctx| async move {
            check(&ctx, "plugins.controlUi.list", &closed(vec![]))?;
            Ok(json!({"revision": empty_catalog_revision(), "plugins": [], "diagnostics": []}))
        },
    );
    for m in [
        "exec.approval.list",
        "plugin.approval.list",
        "openclaw.approval.list",
    ] {
        t.register(m, ScopeRule::Fixed(scopes::APPROVALS), |_ctx: Ctx| async {
            Ok(json!([]))
        });
    }
    t.register(
        "question.list",
        ScopeRule::Fixed(QUESTIONS),
        |ctx: Ctx| async move {
            check(&ctx, "question.list", &closed(vec![]))?;
            Ok(json!({"questions": []}))
        },
    );
    t.register(
        "plugin.surface.refresh",
        ScopeRule::Fixed(scopes::READ),
        |ctx: Ctx| async move {
            let surface = ctx
                .param("surface")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            match surface {
                None => Err(ErrorShape::invalid("surface required")),
                Some(s) => Err(ErrorShape::unavailable(format!(
                    "{s} plugin surface unavailable"
                ))),
            }
        },
    );
    t.register(
        "users.prefs.get",
        ScopeRule::Fixed(scopes::READ),
        |ctx: Ctx| async move {
            check(
                &ctx,
                "users.prefs.get",
                &closed(vec![(
                    "keys",
                    Schema::Array(Box::new(Schema::Str { min: 1, max: None })),
                )]),
            )?;
            // Connections carry no durable user identity here.
            Ok(json!({"status": "no_durable_identity"}))
        },
    );
}

#[cfg(test)]
mod tests {
    /// Node: `sha256(JSON.stringify({plugins: [], diagnostics: []}))`.
    #[test]
    fn the_empty_catalog_revision_is_upstreams_digest() {
        assert_eq!(
            super::empty_catalog_revision(),
            "135d4539612c195c5d51f2f3f944f6bc4d9a7645fb37f24d37c9c9d0eb039f4d"
        );
    }
}
