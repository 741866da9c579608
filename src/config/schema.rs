//! The config schema this gateway knows (`config.schema`) and the validation written config
//! goes through (`config.set|patch|apply`): JSON Schema for the keys the gateway acts on —
//! `gateway.*` (the typed view of [`super::GatewayConfig`]), `models.providers`, `agents` —
//! with every other key allowed and kept as written (upstream's sections this gateway does
//! not implement are not described, rather than described wrongly).
//!
//! [`validate`] checks a document against [`schema`] and names each problem by its dotted
//! path (`gateway.port: must be an integer from 1 to 65535`); [`super::Config::parse`] stays
//! the last gate (what loads at startup is what may be written).
use serde_json::{Value, json};

fn secret_input() -> Value {
    json!({"anyOf": [
        {"type": "string"},
        {"type": "object", "properties": {
            "source": {"type": "string", "enum": ["env", "file", "exec"]},
            "provider": {"type": "string"},
            "id": {"type": "string"}
        }, "required": ["source", "id"]}
    ]})
}

fn model_ref() -> Value {
    json!({"anyOf": [
        {"type": "string"},
        {"type": "object", "properties": {"primary": {"type": "string"}}}
    ]})
}

fn agent_entry() -> Value {
    json!({"type": "object", "properties": {
        "model": model_ref(),
        "workspace": {"type": "string"},
        "timeoutSeconds": {"type": "integer", "minimum": 0},
        "identity": {"type": "object", "properties": {
            "name": {"type": "string"}, "avatar": {"type": "string"}, "emoji": {"type": "string"}
        }}
    }})
}

/// The schema document.
pub(crate) fn schema() -> Value {
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "OpenClaw gateway config",
        "type": "object",
        "properties": {
            "gateway": {"type": "object", "properties": {
                "mode": {"type": "string", "enum": ["local", "remote"],
                         "description": "The gateway starts only when this is local."},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "bind": {"type": "string", "enum": ["loopback", "lan", "custom", "auto", "tailnet"]},
                "customBindHost": {"type": "string"},
                "auth": {"type": "object", "properties": {
                    "mode": {"type": "string", "enum": ["none", "token", "password", "trusted-proxy"]},
                    "token": secret_input(),
                    "password": secret_input(),
                    "rateLimit": {"type": "object", "properties": {
                        "maxAttempts": {"type": "integer", "minimum": 0},
                        "windowMs": {"type": "integer", "minimum": 0},
                        "lockoutMs": {"type": "integer", "minimum": 0},
                        "exemptLoopback": {"type": "boolean"}
                    }}
                }},
                "controlUi": {"type": "object", "properties": {
                    "enabled": {"type": "boolean"},
                    "basePath": {"type": "string"},
                    "allowedOrigins": {"type": "array", "items": {"type": "string"}}
                }},
                "reload": {"type": "object", "properties": {
                    "mode": {"type": "string", "enum": ["off", "hot", "restart", "hybrid"]}
                }}
            }},
            "models": {"type": "object", "properties": {
                "providers": {"type": "object", "additionalProperties": {
                    "type": "object", "properties": {
                        "baseUrl": {"type": "string"},
                        "apiKey": secret_input(),
                        "api": {"type": "string"},
                        "models": {"type": "array", "items": {"type": "object", "properties": {
                            "id": {"type": "string"},
                            "name": {"type": "string"},
                            "contextWindow": {"type": "integer", "minimum": 1},
                            "maxTokens": {"type": "integer", "minimum": 1}
                        }, "required": ["id"]}}
                    }
                }}
            }},
            "agents": {"type": "object", "properties": {
                "default": {"type": "string"},
                "defaults": {"type": "object", "properties": {
                    "model": model_ref(),
                    "workspace": {"type": "string"},
                    "maxConcurrent": {"type": "integer", "minimum": 1},
                    "timeoutSeconds": {"type": "integer", "minimum": 0}
                }},
                "entries": {"type": "object", "additionalProperties": agent_entry()}
            }}
        }
    })
}

/// One problem: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issue {
    /// Dotted path (`gateway.port`; `<root>` for the document itself).
    pub path: String,
    /// What is wrong, as a rule the value must follow.
    pub message: String,
}

fn type_ok(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
        "number" => v.is_number(),
        _ => true,
    }
}

fn article(ty: &str) -> &'static str {
    match ty {
        "object" => "an object",
        "array" => "an array",
        "string" => "a string",
        "boolean" => "a boolean",
        "integer" => "an integer",
        _ => "a number",
    }
}

fn walk(s: &Value, v: &Value, path: &str, out: &mut Vec<Issue>) {
    let here = |m: String| Issue {
        path: if path.is_empty() {
            "<root>".into()
        } else {
            path.to_string()
        },
        message: m,
    };
    if let Some(alts) = s.get("anyOf").and_then(Value::as_array) {
        if !alts.iter().any(|a| {
            let mut sub = Vec::new();
            walk(a, v, path, &mut sub);
            sub.is_empty()
        }) {
            let kinds: Vec<&str> = alts
                .iter()
                .filter_map(|a| a.get("type").and_then(Value::as_str))
                .map(article)
                .collect();
            out.push(here(format!("must be {}", kinds.join(" or "))));
        }
        return;
    }
    if let Some(ty) = s.get("type").and_then(Value::as_str)
        && !type_ok(ty, v)
    {
        let range = match (s.get("minimum"), s.get("maximum")) {
            (Some(a), Some(b)) => format!(" from {a} to {b}"),
            _ => String::new(),
        };
        out.push(here(format!("must be {}{range}", article(ty))));
        return;
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        out.push(here(format!("must be one of {}", list.join(", "))));
        return;
    }
    if let Some(n) = v.as_f64() {
        let min = s.get("minimum").and_then(Value::as_f64);
        let max = s.get("maximum").and_then(Value::as_f64);
        if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
            let msg = match (s.get("minimum"), s.get("maximum")) {
                (Some(a), Some(b)) => format!("must be from {a} to {b}"),
                (Some(a), None) => format!("must be at least {a}"),
                (None, Some(b)) => format!("must be at most {b}"),
                _ => unreachable!(),
            };
            out.push(here(msg));
            return;
        }
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    if let Some(o) = v.as_object() {
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(k) = r.as_str()
                && !o.contains_key(k)
            {
                out.push(Issue {
                    path: join(k),
                    message: "is required".into(),
                });
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        let extra = s.get("additionalProperties").filter(|a| a.is_object());
        for (k, child) in o {
            match (props.and_then(|p| p.get(k)), extra) {
                (Some(cs), _) => walk(cs, child, &join(k), out),
                (None, Some(es)) => walk(es, child, &join(k), out),
                _ => {}
            }
        }
    }
    if let (Some(a), Some(items)) = (v.as_array(), s.get("items")) {
        for (i, child) in a.iter().enumerate() {
            walk(items, child, &format!("{path}[{i}]"), out);
        }
    }
}

/// Every problem of `doc` against [`schema`], in document order.
pub(crate) fn validate(doc: &Value) -> Vec<Issue> {
    let mut out = Vec::new();
    walk(&schema(), doc, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_named_by_their_path() {
        let doc = json!({"gateway": {"port": 70000, "bind": "moon", "auth": {"token": 5}},
                         "models": {"providers": {"p": {"models": [{"name": "x"}]}}},
                         "unknownSection": {"anything": true}});
        let issues = validate(&doc);
        let got: Vec<String> = issues
            .iter()
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect();
        assert_eq!(
            got,
            [
                "gateway.port: must be from 1 to 65535",
                "gateway.bind: must be one of \"loopback\", \"lan\", \"custom\", \"auto\", \"tailnet\"",
                "gateway.auth.token: must be a string or an object",
                "models.providers.p.models[0].id: is required",
            ]
        );
        assert!(validate(&json!({"gateway": {"mode": "local", "port": 18789}})).is_empty());
        assert_eq!(
            validate(&json!({"gateway": {"port": "x"}}))[0].message,
            "must be an integer from 1 to 65535"
        );
    }
}
