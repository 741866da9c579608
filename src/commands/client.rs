//! Client verbs against a running gateway: `health`, `gateway call|probe|health`, `status`,
//! `logs`, `channels status`.
