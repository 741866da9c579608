//! Wire protocol v4: constants, frame builders, the error shape, and closed-object validation
//! of request frames and `ConnectParams` with upstream's (ajv) error texts. Pure: no I/O.
//!
//! Frames are built as `serde_json::Value` with keys in upstream's order (`preserve_order`).
use serde_json::{Map, Value, json};

/// Protocol version spoken by this gateway.
pub const PROTOCOL_VERSION: i64 = 4;
/// Oldest protocol accepted from `mode: "probe"` clients and node clients.
pub const MIN_PROBE_PROTOCOL_VERSION: i64 = 3;
/// Largest frame accepted before `hello-ok` (`MAX_PREAUTH_PAYLOAD_BYTES`); bigger → close 1009.
pub const MAX_PREAUTH_PAYLOAD_BYTES: usize = 65_536;
/// Largest frame after `hello-ok` (`policy.maxPayload`).
pub const MAX_PAYLOAD_BYTES: usize = 26_214_400;
/// Per-socket outbound buffer cap (`policy.maxBufferedBytes`); beyond → close 1008 `slow consumer`.
pub const MAX_BUFFERED_BYTES: usize = 52_428_800;
/// Default `tick` interval (`policy.tickIntervalMs`).
pub const TICK_INTERVAL_MS: u64 = 30_000;
/// Default pre-auth (handshake) timeout.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 15_000;
/// Server capabilities announced in `connect.challenge`.
pub const CHALLENGE_CAPABILITIES: &[&str] = &["model-catalog-snapshot"];

/// Allowed `client.id` values.
pub const CLIENT_IDS: &[&str] = &[
    "webchat-ui",
    "openclaw-control-ui",
    "openclaw-browser-copilot",
    "openclaw-tui",
    "webchat",
    "cli",
    "gateway-client",
    "openclaw-macos",
    "openclaw-linux",
    "openclaw-ios",
    "openclaw-watchos",
    "openclaw-android",
    "node-host",
    "openclaw-worker",
    "test",
    "fingerprint",
    "openclaw-probe",
];

/// Allowed `client.mode` values.
pub const CLIENT_MODES: &[&str] = &[
    "webchat", "cli", "ui", "backend", "node", "worker", "probe", "test",
];

/// Operator scopes.
pub mod scopes {
    /// Everything.
    pub const ADMIN: &str = "operator.admin";
    /// Read-only methods.
    pub const READ: &str = "operator.read";
    /// Side-effecting methods.
    pub const WRITE: &str = "operator.write";
    /// Approvals.
    pub const APPROVALS: &str = "operator.approvals";
    /// Pairing.
    pub const PAIRING: &str = "operator.pairing";
    /// Talk.
    pub const TALK: &str = "operator.talk";
    /// Internal session scopes.
    pub const SESSIONS_READ: &str = "operator.sessions.read";
    /// Internal session scopes.
    pub const SESSIONS_WRITE: &str = "operator.sessions.write";
}

/// True when the granted scopes satisfy `required` (admin ⊇ all; write ⊇ read, talk,
/// sessions.*; read ⊇ sessions.read).
pub fn scope_satisfied(granted: &[String], required: &str) -> bool {
    granted.iter().any(|g| {
        g == required
            || g == scopes::ADMIN
            || (g == scopes::WRITE
                && matches!(
                    required,
                    scopes::READ | scopes::TALK | scopes::SESSIONS_READ | scopes::SESSIONS_WRITE
                ))
            || (g == scopes::READ && required == scopes::SESSIONS_READ)
    })
}

/// `ErrorShape`: `{code, message, details?, retryable?, retryAfterMs?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorShape {
    /// Top-level code (`INVALID_REQUEST`, `FORBIDDEN`, `NOT_PAIRED`, `UNAVAILABLE`, …).
    pub code: String,
    /// Human message.
    pub message: String,
    /// Structured details (`details.code` etc).
    pub details: Option<Value>,
    /// Whether retrying may help.
    pub retryable: Option<bool>,
    /// Suggested delay before retrying.
    pub retry_after_ms: Option<u64>,
}

impl ErrorShape {
    /// An error with a code and message.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ErrorShape {
            code: code.to_string(),
            message: message.into(),
            details: None,
            retryable: None,
            retry_after_ms: None,
        }
    }
    /// `INVALID_REQUEST`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("INVALID_REQUEST", message)
    }
    /// `UNAVAILABLE`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new("UNAVAILABLE", message)
    }
    /// Adds details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
    /// `FORBIDDEN missing scope: X`.
    pub fn missing_scope(scope: &str) -> Self {
        Self::new("FORBIDDEN", format!("missing scope: {scope}")).with_details(json!({
            "code": "MISSING_SCOPE",
            "missingScope": scope,
            "requiredScopes": [scope],
        }))
    }
    /// Serializes to the wire shape.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("code".into(), Value::String(self.code.clone()));
        m.insert("message".into(), Value::String(self.message.clone()));
        if let Some(d) = &self.details {
            m.insert("details".into(), d.clone());
        }
        if let Some(r) = self.retryable {
            m.insert("retryable".into(), Value::Bool(r));
        }
        if let Some(r) = self.retry_after_ms {
            m.insert("retryAfterMs".into(), Value::from(r));
        }
        Value::Object(m)
    }
    /// Parses the wire shape (client side). `None` unless `code` and `message` are strings.
    pub fn from_value(v: &Value) -> Option<Self> {
        Some(ErrorShape {
            code: v.get("code")?.as_str()?.to_string(),
            message: v.get("message")?.as_str()?.to_string(),
            details: v.get("details").cloned(),
            retryable: v.get("retryable").and_then(Value::as_bool),
            retry_after_ms: v.get("retryAfterMs").and_then(Value::as_u64),
        })
    }
}

impl std::fmt::Display for ErrorShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorShape {}

/// `{"type":"res","id":…,"ok":true,"payload":…}`.
pub fn res_ok(id: &str, payload: Value) -> Value {
    json!({"type": "res", "id": id, "ok": true, "payload": payload})
}

/// [`res_ok`] serialized, without building the wrapper object: the same bytes.
pub fn res_ok_text(id: &str, payload: &Value) -> String {
    let mut w = res_ok_head(id);
    // Serializing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut w, payload);
    res_ok_tail(w)
}

/// [`res_ok`] with a payload that is already JSON text (see `methods::RawHandler`).
pub fn res_ok_raw(id: &str, payload_json: &str) -> String {
    let mut w = res_ok_head(id);
    w.extend_from_slice(payload_json.as_bytes());
    res_ok_tail(w)
}

fn res_ok_head(id: &str) -> Vec<u8> {
    let mut w = Vec::with_capacity(64 + id.len());
    w.extend_from_slice(br#"{"type":"res","id":"#);
    let _ = serde_json::to_writer(&mut w, id);
    w.extend_from_slice(br#","ok":true,"payload":"#);
    w
}

fn res_ok_tail(mut w: Vec<u8>) -> String {
    w.push(b'}');
    String::from_utf8(w).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `{"type":"res","id":…,"ok":false,"error":…}`.
pub fn res_err(id: &str, error: &ErrorShape) -> Value {
    json!({"type": "res", "id": id, "ok": false, "error": error.to_value()})
}

/// An event frame; `seq`/`stateVersion` are added by the broadcaster.
pub fn event(name: &str, payload: Value, seq: Option<u64>, state_version: Option<Value>) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), "event".into());
    m.insert("event".into(), name.into());
    m.insert("payload".into(), payload);
    if let Some(s) = seq {
        m.insert("seq".into(), s.into());
    }
    if let Some(sv) = state_version {
        m.insert("stateVersion".into(), sv);
    }
    Value::Object(m)
}

/// A validated request frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Request id (echoed in the response).
    pub id: String,
    /// Method name.
    pub method: String,
    /// Params (absent → `None`).
    pub params: Option<Value>,
}

/// Why a frame is not a valid request: the id to answer with (`"invalid"` when missing) and the
/// ajv-style message (`must have required property 'id'`).
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    /// Id for the error response.
    pub id: String,
    /// Validation message without the `invalid request frame: ` prefix.
    pub message: String,
}

/// Validates a parsed frame against the closed `RequestFrame` schema.
pub fn parse_request(v: &Value) -> Result<Request, FrameError> {
    check_request(v)?;
    Ok(Request {
        id: v["id"].as_str().unwrap_or_default().to_string(),
        method: v["method"].as_str().unwrap_or_default().to_string(),
        params: v.get("params").cloned(),
    })
}

/// [`parse_request`] taking the frame by value: id, method and params are moved, not copied.
pub fn parse_request_owned(v: Value) -> Result<Request, FrameError> {
    check_request(&v)?;
    let Value::Object(mut m) = v else {
        unreachable!("check_request accepts objects only")
    };
    let mut take_str = |k: &str| match m.swap_remove(k) {
        Some(Value::String(s)) => s,
        _ => String::new(),
    };
    let (id, method) = (take_str("id"), take_str("method"));
    Ok(Request {
        id,
        method,
        params: m.swap_remove("params"),
    })
}

fn check_request(v: &Value) -> Result<(), FrameError> {
    static SCHEMA: std::sync::LazyLock<Schema> = std::sync::LazyLock::new(request_schema);
    validate(&SCHEMA, v, "").map_err(|message| FrameError {
        id: v
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("invalid")
            .to_string(),
        message,
    })
}

/// What the first inbound frame of a socket amounts to (docs/protocol.md §2.7, §10 step 2). Pure, so
/// the handshake's decisions can be fuzzed without a socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Preauth {
    /// Larger than [`MAX_PREAUTH_PAYLOAD_BYTES`]: close 1009.
    TooLarge,
    /// Not JSON: close 1000 with an empty reason.
    NotJson,
    /// JSON but not a valid request frame: close 1008 `invalid request frame`, no response.
    InvalidFrame,
    /// A request other than `connect`: this error response, then close 1008 with its message.
    NotConnect {
        /// The frame's id.
        id: String,
        /// The method it asked for.
        method: String,
        /// `invalid handshake: first request must be connect`.
        error: ErrorShape,
    },
    /// `connect`: admit with these params (`Null` when absent).
    Connect {
        /// The frame's id.
        id: String,
        /// `params`.
        params: Value,
    },
}

/// Decodes the first inbound frame (text or binary payload bytes).
pub fn decode_preauth(bytes: &[u8]) -> Preauth {
    if bytes.len() > MAX_PREAUTH_PAYLOAD_BYTES {
        return Preauth::TooLarge;
    }
    let Ok(frame) = serde_json::from_slice::<Value>(bytes) else {
        return Preauth::NotJson;
    };
    let Ok(req) = parse_request(&frame) else {
        return Preauth::InvalidFrame;
    };
    if req.method != "connect" {
        return Preauth::NotConnect {
            id: req.id,
            method: req.method,
            error: ErrorShape::invalid("invalid handshake: first request must be connect"),
        };
    }
    Preauth::Connect {
        id: req.id,
        params: req.params.unwrap_or(Value::Null),
    }
}

/// What an inbound frame after `hello-ok` amounts to (docs/protocol.md §1 "post-handshake frame
/// errors").
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// Not JSON: ignored, the socket stays open.
    Ignore,
    /// Answer with this `res` frame and carry on (schema-invalid frame, second `connect`).
    Reply(Value),
    /// A request to authorize and dispatch.
    Request(Request),
}

/// Decodes an inbound frame after the handshake.
pub fn decode_inbound(text: &str) -> Inbound {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return Inbound::Ignore;
    };
    match parse_request_owned(frame) {
        Err(e) => Inbound::Reply(res_err(
            &e.id,
            &ErrorShape::invalid(format!("invalid request frame: {}", e.message)),
        )),
        Ok(r) if r.method == "connect" => Inbound::Reply(res_err(
            &r.id,
            &ErrorShape::invalid("connect is only valid as the first request"),
        )),
        Ok(r) => Inbound::Request(r),
    }
}

/// Validates `connect` params; the error is the ajv text (without `invalid connect params: `).
pub fn validate_connect_params(v: &Value) -> Result<(), String> {
    validate(&connect_schema(), v, "")
}

/// Validates any params object against a [`Schema`] with ajv's texts (method handlers prefix
/// them, e.g. `invalid agent params: must have required property 'idempotencyKey'`).
pub fn validate_params(schema: &Schema, v: &Value) -> Result<(), String> {
    validate(schema, v, "")
}

/// A tiny JSON-schema subset, enough for closed TypeBox objects and ajv's messages.
#[derive(Debug, Clone)]
pub enum Schema {
    Any,
    Str {
        min: usize,
        max: Option<usize>,
    },
    Int {
        min: Option<i64>,
    },
    Bool,
    Enum(&'static [&'static str]),
    Const(&'static str),
    Array(Box<Schema>),
    Record(Box<Schema>),
    Object {
        props: Vec<(&'static str, Schema)>,
        required: &'static [&'static str],
        closed: bool,
    },
}

fn s() -> Schema {
    Schema::Str { min: 0, max: None }
}
fn ne() -> Schema {
    Schema::Str { min: 1, max: None }
}
fn strs() -> Schema {
    Schema::Array(Box::new(s()))
}

fn request_schema() -> Schema {
    Schema::Object {
        props: vec![
            ("type", Schema::Const("req")),
            ("id", ne()),
            ("method", ne()),
            ("params", Schema::Any),
            (
                "traceparent",
                Schema::Str {
                    min: 0,
                    max: Some(128),
                },
            ),
            ("expectedProfileId", s()),
        ],
        required: &["type", "id", "method"],
        closed: true,
    }
}

fn connect_schema() -> Schema {
    let client = Schema::Object {
        props: vec![
            ("id", Schema::Enum(CLIENT_IDS)),
            ("displayName", s()),
            ("version", ne()),
            ("platform", ne()),
            ("deviceFamily", s()),
            ("modelIdentifier", s()),
            ("mode", Schema::Enum(CLIENT_MODES)),
            ("instanceId", s()),
            (
                "buildId",
                Schema::Str {
                    min: 0,
                    max: Some(96),
                },
            ),
            (
                "timeZone",
                Schema::Str {
                    min: 0,
                    max: Some(64),
                },
            ),
        ],
        required: &["id", "version", "platform", "mode"],
        closed: true,
    };
    let auth = Schema::Object {
        props: vec![
            ("token", s()),
            ("password", s()),
            ("bootstrapToken", s()),
            ("deviceToken", s()),
            ("approvalRuntimeToken", s()),
            ("agentRuntimeIdentityToken", s()),
        ],
        required: &[],
        closed: true,
    };
    let device = Schema::Object {
        props: vec![
            ("id", ne()),
            ("publicKey", ne()),
            ("signature", ne()),
            ("signedAt", Schema::Int { min: Some(0) }),
            ("nonce", ne()),
        ],
        required: &["id", "publicKey", "signature", "signedAt", "nonce"],
        closed: true,
    };
    Schema::Object {
        props: vec![
            ("minProtocol", Schema::Int { min: Some(1) }),
            ("maxProtocol", Schema::Int { min: Some(1) }),
            ("client", client),
            ("caps", strs()),
            ("commands", strs()),
            ("permissions", Schema::Record(Box::new(Schema::Bool))),
            ("pathEnv", s()),
            ("computerUse", Schema::Any),
            ("workerRuns", Schema::Any),
            ("role", s()),
            ("scopes", strs()),
            ("device", device),
            ("auth", auth),
            ("modelCatalog", Schema::Record(Box::new(Schema::Any))),
            ("locale", s()),
            ("userAgent", s()),
        ],
        required: &["minProtocol", "maxProtocol", "client"],
        closed: true,
    }
}

/// ajv's formatting as upstream prints it: `must have required property 'x'` at the root,
/// `at root: …` for other root errors, `at /a/b: …` below.
fn fail(path: &str, msg: String, required_kind: bool) -> Result<(), String> {
    Err(if path.is_empty() {
        if required_kind {
            msg
        } else {
            format!("at root: {msg}")
        }
    } else {
        format!("at {path}: {msg}")
    })
}

fn validate(schema: &Schema, v: &Value, path: &str) -> Result<(), String> {
    match schema {
        Schema::Any => Ok(()),
        Schema::Str { min, max } => {
            let Some(s) = v.as_str() else {
                return fail(path, "must be string".into(), false);
            };
            let n = s.encode_utf16().count();
            if n < *min {
                return fail(
                    path,
                    format!("must NOT have fewer than {min} characters"),
                    false,
                );
            }
            if let Some(max) = max
                && n > *max
            {
                return fail(
                    path,
                    format!("must NOT have more than {max} characters"),
                    false,
                );
            }
            Ok(())
        }
        Schema::Int { min } => {
            let Some(f) = v.as_f64().filter(|f| f.fract() == 0.0) else {
                return fail(path, "must be integer".into(), false);
            };
            if let Some(min) = min
                && f < *min as f64
            {
                return fail(path, format!("must be >= {min}"), false);
            }
            Ok(())
        }
        Schema::Bool => {
            if v.is_boolean() {
                Ok(())
            } else {
                fail(path, "must be boolean".into(), false)
            }
        }
        Schema::Enum(allowed) => match v.as_str() {
            Some(s) if allowed.contains(&s) => Ok(()),
            _ => fail(
                path,
                "must be equal to one of the allowed values".into(),
                false,
            ),
        },
        Schema::Const(c) => match v.as_str() {
            Some(s) if s == *c => Ok(()),
            _ => fail(path, "must be equal to constant".into(), false),
        },
        Schema::Array(item) => {
            let Some(a) = v.as_array() else {
                return fail(path, "must be array".into(), false);
            };
            for (i, x) in a.iter().enumerate() {
                validate(item, x, &format!("{path}/{i}"))?;
            }
            Ok(())
        }
        Schema::Record(item) => {
            let Some(o) = v.as_object() else {
                return fail(path, "must be object".into(), false);
            };
            for (k, x) in o {
                validate(item, x, &format!("{path}/{}", escape_pointer(k)))?;
            }
            Ok(())
        }
        Schema::Object {
            props,
            required,
            closed,
        } => {
            let Some(o) = v.as_object() else {
                return fail(path, "must be object".into(), false);
            };
            for r in *required {
                if !o.contains_key(*r) {
                    return fail(path, format!("must have required property '{r}'"), true);
                }
            }
            if *closed {
                for k in o.keys() {
                    if !props.iter().any(|(p, _)| p == k) {
                        return fail(path, format!("unexpected property '{k}'"), false);
                    }
                }
            }
            for (name, sub) in props {
                if let Some(x) = o.get(*name) {
                    validate(sub, x, &format!("{path}/{name}"))?;
                }
            }
            Ok(())
        }
    }
}

fn escape_pointer(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

/// The protocol range rule (§2.6): `min ≤ 4 ≤ max`; probe clients may use 3; node role+mode 3.
pub fn protocol_acceptable(min: i64, max: i64, mode: &str, role: &str) -> bool {
    (max >= PROTOCOL_VERSION && min <= PROTOCOL_VERSION)
        || (mode == "probe" && max >= MIN_PROBE_PROTOCOL_VERSION && min <= PROTOCOL_VERSION)
        || (role == "node"
            && mode == "node"
            && max >= MIN_PROBE_PROTOCOL_VERSION
            && min <= MIN_PROBE_PROTOCOL_VERSION)
}

/// The `protocol mismatch` error with upstream's details.
pub fn protocol_mismatch(min: i64, max: i64) -> ErrorShape {
    ErrorShape::invalid("protocol mismatch").with_details(json!({
        "code": "PROTOCOL_MISMATCH",
        "clientMinProtocol": min,
        "clientMaxProtocol": max,
        "expectedProtocol": PROTOCOL_VERSION,
        "minimumProbeProtocol": MIN_PROBE_PROTOCOL_VERSION,
    }))
}

/// Truncates a close reason to at most `max` bytes on a char boundary (WS limit is 123).
pub fn close_reason(msg: &str, max: usize) -> String {
    if msg.len() <= max {
        return msg.to_string();
    }
    let mut end = max;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    msg[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(extra: Value) -> Value {
        let mut base = json!({"minProtocol":4,"maxProtocol":4,
            "client":{"id":"cli","version":"1","platform":"linux","mode":"cli"}});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        base
    }

    #[test]
    fn connect_messages_match_upstream() {
        assert_eq!(
            validate_connect_params(&json!({"minProtocol":4,"maxProtocol":4})).unwrap_err(),
            "must have required property 'client'"
        );
        assert_eq!(
            validate_connect_params(&connect(json!({"foo":1}))).unwrap_err(),
            "at root: unexpected property 'foo'"
        );
        let mut bad = connect(json!({}));
        bad["client"]["id"] = "mytool".into();
        assert_eq!(
            validate_connect_params(&bad).unwrap_err(),
            "at /client/id: must be equal to one of the allowed values"
        );
        let mut nover = connect(json!({}));
        nover["client"].as_object_mut().unwrap().remove("version");
        assert_eq!(
            validate_connect_params(&nover).unwrap_err(),
            "at /client: must have required property 'version'"
        );
        assert_eq!(
            validate_connect_params(&connect(json!({"minProtocol":"4"}))).unwrap_err(),
            "at /minProtocol: must be integer"
        );
        assert_eq!(
            validate_connect_params(&connect(json!({"scopes":["a",1]}))).unwrap_err(),
            "at /scopes/1: must be string"
        );
        assert!(validate_connect_params(&connect(json!({"auth":{"token":"t"},"caps":[]}))).is_ok());
    }

    #[test]
    fn request_frames() {
        let e = parse_request(&json!({"type":"req","method":"health"})).unwrap_err();
        assert_eq!(e.id, "invalid");
        assert_eq!(e.message, "must have required property 'id'");
        let e = parse_request(&json!({"type":"req","id":"dup","method":"health","extra":1}))
            .unwrap_err();
        assert_eq!(e.id, "dup");
        assert_eq!(e.message, "at root: unexpected property 'extra'");
        let e = parse_request(&json!({"type":"event","id":"x","method":"m"})).unwrap_err();
        assert_eq!(e.message, "at /type: must be equal to constant");
        let r = parse_request(&json!({"type":"req","id":"1","method":"health"})).unwrap();
        assert_eq!(r.method, "health");
        assert_eq!(r.params, None);
    }

    #[test]
    fn owned_request_parse_matches_borrowed() {
        for f in [
            json!({"type":"req","id":"1","method":"health"}),
            json!({"type":"req","id":"a\"b","method":"status","params":{"x":[1,{"y":null}]}}),
            json!({"params":null,"method":"m","id":"2","type":"req","traceparent":"t"}),
            json!({"type":"req","method":"health"}),
            json!({"type":"req","id":"dup","method":"health","extra":1}),
            json!({"type":"req","id":"","method":"health"}),
            json!([1, 2]),
            json!("req"),
        ] {
            assert_eq!(parse_request_owned(f.clone()), parse_request(&f), "{f}");
        }
    }

    #[test]
    fn response_text_is_the_serialized_frame() {
        let payload =
            json!({"ok": true, "ts": 1, "list": [1, "two", {"k\n": null}], "s": "é\u{1}"});
        for id in ["1", "a\"b\\c", "ünï", ""] {
            let want = res_ok(id, payload.clone()).to_string();
            assert_eq!(res_ok_text(id, &payload), want);
            assert_eq!(res_ok_raw(id, &payload.to_string()), want);
        }
    }

    #[test]
    fn protocol_ranges() {
        assert!(protocol_acceptable(4, 4, "cli", "operator"));
        assert!(protocol_acceptable(3, 5, "cli", "operator"));
        assert!(!protocol_acceptable(3, 3, "cli", "operator"));
        assert!(protocol_acceptable(3, 3, "probe", "operator"));
        assert!(protocol_acceptable(3, 3, "node", "node"));
        assert!(!protocol_acceptable(5, 6, "probe", "operator"));
    }

    #[test]
    fn scope_implication() {
        let w = vec![scopes::WRITE.to_string()];
        assert!(scope_satisfied(&w, scopes::READ));
        assert!(!scope_satisfied(&w, scopes::ADMIN));
        assert!(scope_satisfied(&[scopes::ADMIN.into()], "operator.pairing"));
        assert!(!scope_satisfied(&[], scopes::READ));
    }

    #[test]
    fn close_reason_truncates_on_char_boundary() {
        assert_eq!(close_reason("ééé", 3), "é");
        assert_eq!(close_reason("abc", 120), "abc");
    }
}
