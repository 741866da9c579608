//! launchd: LaunchAgent plists, the launchctl plan, and `launchctl print` parsing.
