//! `POST /v1/chat/completions` (enabled by `gateway.http.endpoints.chatCompletions.enabled`):
//! JSON, or SSE (role chunk, content deltas, final chunk, `[DONE]`).
// Validation helpers return a ready error `Response` (the handler returns it as is); its size
// only matters on the error path.
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::config;
use super::http::*;
use super::run::{RunKind, RunRequest, StopReason};
use crate::sys::time::now_ms;

pub(super) async fn chat_completions(State(state): State<AppState>, req: Request) -> Response {
    let cfg = state.config();
    let (body, headers) = match gate(&state, config::chat_completions_enabled(&cfg), req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let model_name = match body.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.trim().to_string(),
        other => {
            return invalid(format!(
                "model: Invalid input: expected string, received {}",
                type_name(other)
            ));
        }
    };
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return invalid(format!(
            "messages: Invalid input: expected array, received {}",
            type_name(body.get("messages"))
        ));
    };
    if body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty())
    {
        return invalid("tools: client tools are not supported by this gateway");
    }
    let mut items = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let Some(role) = m.get("role").and_then(Value::as_str) else {
            return invalid(format!(
                "messages.{i}.role: Invalid input: expected string, received {}",
                type_name(m.get("role"))
            ));
        };
        match content_of(m.get("content"), &format!("messages.{i}.content")) {
            Ok(t) => items.push((role.to_string(), t)),
            Err(r) => return r,
        }
    }
    let conv = match split_conversation(items) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let sampling = match sampling(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let agent = match agent_for_model(&cfg, &model_name, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let user = body.get("user").and_then(Value::as_str);
    let session_key = match session_for(&cfg, &agent, &headers, user, "openai") {
        Ok(k) => k,
        Err(r) => return r,
    };
    let id = format!("chatcmpl_{}", uuid::Uuid::new_v4());
    let mut rreq = RunRequest::new(&id, &agent, &session_key, conv.current, RunKind::Http);
    rreq.model = header_str(&headers, "x-openclaw-model").map(str::to_string);
    rreq.extra_system = (!conv.system.is_empty()).then(|| conv.system.join("\n\n"));
    rreq.history = (!conv.history.is_empty()).then_some(conv.history);
    rreq.sampling = sampling;
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let include_usage = body.pointer("/stream_options/include_usage") == Some(&Value::Bool(true));
    let created = now_ms() / 1000;
    let (run, mut deltas, handle) = match spawn_run(&state, rreq) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !stream {
        let fin = match finished(run, handle).await {
            Ok(fin) => fin,
            Err(r) => return r,
        };
        let u = fin.usage.unwrap_or_default();
        return json_response(
            StatusCode::OK,
            json!({
                "id": id, "object": "chat.completion", "created": created, "model": model_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": fin.text},
                             "finish_reason": fin.finish_reason.clone().unwrap_or_else(|| "stop".into())}],
                "usage": {"prompt_tokens": u.input, "completion_tokens": u.output, "total_tokens": u.total},
            }),
        );
    }
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let chunk = move |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model_name,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let _ = tx.send(data_frame(&chunk(
        json!({"role": "assistant"}),
        Value::Null,
    )));
    state.shutdown.tracker().spawn(async move {
        let mut handle = handle;
        let fin = loop {
            tokio::select! {
                biased;
                Some(d) = deltas.recv() => {
                    let _ = tx.send(data_frame(&chunk(json!({"content": d}), Value::Null)));
                }
                _ = tx.closed() => {
                    run.abort(StopReason::ClientGone);
                    break join(&mut handle).await;
                }
                f = &mut handle => break f.ok(),
            }
        };
        while let Ok(d) = deltas.try_recv() {
            let _ = tx.send(data_frame(&chunk(json!({"content": d}), Value::Null)));
        }
        match fin.as_deref().map(|f| (f, run_error(f))) {
            Some((f, None)) => {
                let finish = f.finish_reason.clone().unwrap_or_else(|| "stop".into());
                let mut last = chunk(json!({}), finish.into());
                if include_usage {
                    let u = f.usage.unwrap_or_default();
                    last["usage"] = json!({"prompt_tokens": u.input, "completion_tokens": u.output, "total_tokens": u.total});
                }
                let _ = tx.send(data_frame(&last));
            }
            Some((_, Some((_, kind, msg)))) => {
                let _ = tx.send(data_frame(&json!({"error": {"message": msg, "type": kind}})));
            }
            None => {
                let _ = tx.send(data_frame(
                    &json!({"error": {"message": "the run failed", "type": "api_error"}}),
                ));
            }
        }
        let _ = tx.send(done_frame());
    });
    sse_headers(Response::new(sse_body(rx)))
}
