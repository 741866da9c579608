//! The test-hook wing: methods that exist only so the suites can drive the gateway into the
//! states they test (see `testing`'s module docs for every test hook). Compiled into debug and
//! `test-hooks` builds, served only when `OPENCLAW_TEST_METHODS=1`.
use std::time::Duration;

use serde_json::{Value, json};

use crate::gateway::feature::Feature;
use crate::gateway::methods::{Ctx, MethodTable, ScopeRule};

/// The test-hook wing: `test.sleep` when `OPENCLAW_TEST_METHODS=1` in a debug or
/// `test-hooks` build (see the module docs); `None` otherwise.
pub(crate) fn test_hooks() -> Option<TestHooks> {
    let on = cfg!(any(debug_assertions, feature = "test-hooks"))
        && std::env::var("OPENCLAW_TEST_METHODS").as_deref() == Ok("1");
    on.then_some(TestHooks)
}

/// See [`test_hooks`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct TestHooks;

impl Feature for TestHooks {
    fn name(&self) -> &'static str {
        "test-hooks"
    }

    fn register_methods(&self, t: &mut MethodTable) {
        t.register("test.sleep", ScopeRule::Exempt, |ctx: Ctx| async move {
            let ms = ctx
                .param("ms")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .min(60_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(json!({"sleptMs": ms, "pid": std::process::id()}))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_sleep_is_a_wing_method() {
        let mut t = MethodTable::default();
        TestHooks.register_methods(&mut t);
        assert_eq!(t.method_names(), vec!["test.sleep"]);
    }
}
