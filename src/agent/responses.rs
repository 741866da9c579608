//! `POST /v1/responses` (enabled by `gateway.http.endpoints.responses.enabled`): JSON or SSE
//! `response.*` events.
// Validation helpers return a ready error `Response` (the handler returns it as is); its size
// only matters on the error path.
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::config;
use super::http::*;
use super::run::{Finished, RunKind, RunRequest, StopReason};
use crate::sys::time::now_ms;

/// `input` of `/v1/responses` as (role, text) items.
pub(super) fn responses_items(input: Option<&Value>) -> Result<Vec<(String, String)>, Response> {
    match input {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(vec![("user".into(), s.clone())]),
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut out = Vec::new();
            for (i, it) in items.iter().enumerate() {
                let kind = it.get("type").and_then(Value::as_str).unwrap_or("message");
                match kind {
                    "message" => {
                        let Some(role) = it.get("role").and_then(Value::as_str) else {
                            return Err(invalid(format!("input.{i}.role: Invalid input")));
                        };
                        out.push((
                            role.to_string(),
                            content_of(it.get("content"), &format!("input.{i}.content"))?,
                        ));
                    }
                    "reasoning" | "item_reference" => {}
                    "function_call" | "function_call_output" => {
                        return Err(invalid(format!(
                            "input.{i}: {kind} items are not supported by this gateway (no client tools)"
                        )));
                    }
                    other => {
                        return Err(invalid(format!(
                            "input.{i}: item type \"{other}\" is not supported by this gateway"
                        )));
                    }
                }
            }
            Ok(out)
        }
        _ => Err(invalid("input: Invalid input")),
    }
}

pub(super) fn response_object(
    id: &str,
    created: u64,
    model: &str,
    status: &str,
    output: Value,
    usage: Value,
    error: Value,
) -> Value {
    json!({
        "id": id, "object": "response", "created_at": created, "status": status, "model": model,
        "output": output, "usage": usage, "error": error,
        "incomplete_details": if status == "incomplete" { json!({"reason": "max_output_tokens"}) } else { Value::Null },
    })
}

pub(super) fn message_item(id: &str, status: &str, text: Option<&str>) -> Value {
    let content = match text {
        Some(t) => json!([{"type": "output_text", "text": t, "annotations": []}]),
        None => json!([]),
    };
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

pub(super) async fn responses(State(state): State<AppState>, req: Request) -> Response {
    let cfg = state.config();
    let (body, headers) = match gate(&state, config::responses_enabled(&cfg), req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let model_name = body
        .get("model")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or("openclaw")
        .to_string();
    let items = match responses_items(body.get("input")) {
        Ok(i) => i,
        Err(r) => return r,
    };
    if body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty())
    {
        return invalid("tools: client tools are not supported by this gateway");
    }
    let mut conv = match split_conversation(items) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Some(i) = body.get("instructions").and_then(Value::as_str) {
        conv.system.insert(0, i.to_string());
    }
    let sampling = match sampling(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let agent = match agent_for_model(&cfg, &model_name, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let session_key = match session_for(
        &cfg,
        &agent,
        &headers,
        body.get("user").and_then(Value::as_str),
        "responses",
    ) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let id = format!("resp_{}", uuid::Uuid::new_v4());
    let msg_id = format!("msg_{}", uuid::Uuid::new_v4());
    let mut rreq = RunRequest::new(&id, &agent, &session_key, conv.current, RunKind::Http);
    rreq.model = header_str(&headers, "x-openclaw-model").map(str::to_string);
    rreq.extra_system = (!conv.system.is_empty()).then(|| conv.system.join("\n\n"));
    rreq.history = (!conv.history.is_empty()).then_some(conv.history);
    rreq.sampling = sampling;
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let created = now_ms() / 1000;
    let (run, mut deltas, handle) = match spawn_run(&state, rreq) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let usage_of = |f: &Finished| {
        let u = f.usage.unwrap_or_default();
        json!({"input_tokens": u.input, "output_tokens": u.output, "total_tokens": u.total})
    };
    if !stream {
        let fin = match finished(run, handle).await {
            Ok(fin) => fin,
            Err(r) => return r,
        };
        let status = if fin.finish_reason.as_deref() == Some("length") {
            "incomplete"
        } else {
            "completed"
        };
        return json_response(
            StatusCode::OK,
            response_object(
                &id,
                created,
                &model_name,
                status,
                json!([message_item(&msg_id, status, Some(&fin.text))]),
                usage_of(&fin),
                Value::Null,
            ),
        );
    }
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let mut seq = 0u64;
    let mut emit = move |tx: &mpsc::UnboundedSender<Bytes>, kind: &str, mut v: Value| {
        v["type"] = kind.into();
        v["sequence_number"] = seq.into();
        seq += 1;
        let mut ordered = Map::new();
        ordered.insert("type".into(), kind.into());
        if let Value::Object(o) = v {
            for (k, x) in o {
                if k != "type" {
                    ordered.insert(k, x);
                }
            }
        }
        let _ = tx.send(Bytes::from(format!(
            "event: {kind}\ndata: {}\n\n",
            Value::Object(ordered)
        )));
    };
    let pending = response_object(
        &id,
        created,
        &model_name,
        "in_progress",
        json!([]),
        Value::Null,
        Value::Null,
    );
    emit(&tx, "response.created", json!({"response": pending}));
    emit(&tx, "response.in_progress", json!({"response": pending}));
    emit(
        &tx,
        "response.output_item.added",
        json!({"output_index": 0, "item": message_item(&msg_id, "in_progress", None)}),
    );
    emit(
        &tx,
        "response.content_part.added",
        json!({"item_id": msg_id, "output_index": 0, "content_index": 0,
               "part": {"type": "output_text", "text": "", "annotations": []}}),
    );
    state.shutdown.tracker().spawn(async move {
        let mut handle = handle;
        let delta_event = |d: String| {
            json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "delta": d})
        };
        let fin = loop {
            tokio::select! {
                biased;
                Some(d) = deltas.recv() => emit(&tx, "response.output_text.delta", delta_event(d)),
                _ = tx.closed() => {
                    run.abort(StopReason::ClientGone);
                    break join(&mut handle).await;
                }
                f = &mut handle => break f.ok(),
            }
        };
        while let Ok(d) = deltas.try_recv() {
            emit(&tx, "response.output_text.delta", delta_event(d));
        }
        match fin.as_deref().map(|f| (f, run_error(f))) {
            Some((f, None)) => {
                let status = if f.finish_reason.as_deref() == Some("length") {
                    "incomplete"
                } else {
                    "completed"
                };
                let part = json!({"type": "output_text", "text": f.text, "annotations": []});
                emit(
                    &tx,
                    "response.output_text.done",
                    json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "text": f.text}),
                );
                emit(
                    &tx,
                    "response.content_part.done",
                    json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "part": part}),
                );
                let item = message_item(&msg_id, status, Some(&f.text));
                emit(
                    &tx,
                    "response.output_item.done",
                    json!({"output_index": 0, "item": item}),
                );
                let done = response_object(&id, created, &model_name, status, json!([item]), usage_of(f), Value::Null);
                let kind = if status == "incomplete" {
                    "response.incomplete"
                } else {
                    "response.completed"
                };
                emit(&tx, kind, json!({"response": done}));
            }
            other => {
                let (kind, msg) = match other {
                    Some((_, Some((_, kind, msg)))) => (kind, msg),
                    _ => ("api_error", "the run failed".to_string()),
                };
                let failed = response_object(
                    &id,
                    created,
                    &model_name,
                    "failed",
                    json!([]),
                    Value::Null,
                    json!({"code": kind, "message": msg}),
                );
                emit(&tx, "response.failed", json!({"response": failed}));
            }
        }
        let _ = tx.send(done_frame());
    });
    sse_headers(Response::new(sse_body(rx)))
}
