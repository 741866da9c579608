//! `openclaw gateway run`: the composition root (which wings the gateway is built from).
use std::sync::Arc;

use crate::config::paths::Paths;
use crate::error::{Exit, Result};
use crate::gateway::feature::{Feature, Features};
use crate::gateway::options::RunOptions;

/// The feature wings of this build, in the order their hooks run (methods registered,
/// routes merged, background work started, shutdown steps awaited).
/// The test-hook wing comes first when enabled (its `test.sleep` is advertised right after
/// the core methods, where it always was).
pub(crate) fn wings() -> Features {
    let mut wings: Vec<Arc<dyn Feature>> = Vec::new();
    if let Some(hooks) = crate::test_hooks::test_hooks() {
        wings.push(Arc::new(hooks));
    }
    wings.push(Arc::new(crate::agent::AgentWing));
    wings.push(Arc::new(crate::control_ui::ControlUiWing));
    Features::new(wings)
}

/// `openclaw gateway [run]`: runs the daemon built from [`wings`] until it stops.
pub(crate) fn run(paths: &Paths, opts: RunOptions) -> Result<Exit> {
    crate::gateway::run_daemon(paths, opts, wings())
}
